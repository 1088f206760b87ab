"""`powerbridge version`: print the software version (and, with -v, the libraries')."""

from __future__ import annotations

import argparse
import platform
import sys
from typing import Any

from bridge import __version__
from bridge.cli._common import add_command

LIBRARIES = ("paho-mqtt", "pyserial", "gpiozero", "voluptuous", "PyYAML", "minimalmodbus")


def _version(args: argparse.Namespace) -> int:
    print(f"powerbridge {__version__}")
    if args.verbose:
        from importlib import metadata

        print(f"python {platform.python_version()} on {sys.platform}")
        for name in LIBRARIES:
            try:
                print(f"{name} {metadata.version(name)}")
            except metadata.PackageNotFoundError:
                print(f"{name} (not installed)")
    return 0


def register(subparsers: Any) -> None:
    add_command(subparsers, "version", "print the version (-v: and the libraries')", _version)
