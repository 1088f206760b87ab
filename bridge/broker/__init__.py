"""Broker tooling: Mosquitto password hashes, ACL role blocks, credentials and a runner."""
