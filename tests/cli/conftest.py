"""Fixtures the CLI tests share with the packages they drive.

The meter commands (`powerbridge meter probe`) are tried against the wire-protocol simulator
on a real pseudo-terminal, the same fixture the meter drivers' tests use.
"""

from tests.meters.conftest import simulator

__all__ = ["simulator"]
