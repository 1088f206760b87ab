"""Typed errors and the process exit codes they map to.

Errors are raised as these types inside the package and translated into a
message and an exit code at one boundary: :func:`bridge.cli.main`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class ExitCode(enum.IntEnum):
    """Exit codes of every ``powerbridge`` command (documented in ``docs/cli.md``)."""

    OK = 0
    """The command did what was asked; for checks: everything healthy."""
    FAILURE = 1
    """A runtime failure: a device did not answer, a check failed, the broker refused."""
    USAGE = 2
    """The command line or a configuration file is wrong, or the feature is not available."""


class PowerbridgeError(Exception):
    """Base of every error this package raises on purpose."""

    exit_code: ExitCode = ExitCode.FAILURE


@dataclass(frozen=True, slots=True)
class ConfigProblem:
    """One thing wrong in a configuration file, located by file, line and dotted key."""

    file: str
    line: int | None
    key: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line is not None else self.file
        key = self.key or "(top level)"
        return f"{where}: {key}: {self.message}"


class ConfigError(PowerbridgeError):
    """A configuration file is invalid; carries every problem found, not just the first."""

    exit_code = ExitCode.USAGE

    def __init__(self, problems: list[ConfigProblem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class UsageError(PowerbridgeError):
    """The command line asks for something impossible or not available."""

    exit_code = ExitCode.USAGE


class NotAvailableError(UsageError):
    """A command exists in the interface but is not part of this release."""


class MeterError(PowerbridgeError):
    """Base of errors from a power meter driver."""


class MeterTimeoutError(MeterError):
    """The meter did not answer (in full) within the timeout."""


class MeterProtocolError(MeterError):
    """The meter answered with something that is not a valid reply (checksum, length, NACK)."""


class MeterDisconnectedError(MeterError):
    """The serial port is gone or cannot be opened (unplugged, wrong path, no permission)."""


class BrokerError(PowerbridgeError):
    """The MQTT broker could not be reached or refused us."""


class PayloadError(PowerbridgeError):
    """An MQTT payload did not match the contract (bad JSON, wrong type, unknown version)."""
