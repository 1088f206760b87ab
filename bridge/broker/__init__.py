"""Broker tooling: Mosquitto password hashes, ACL role blocks, credentials and a runner."""

from pathlib import Path

DEFAULT_DIR = Path("/etc/mosquitto/powerbridge")
"""Where `powerbridge broker init` writes the broker's files by default."""
