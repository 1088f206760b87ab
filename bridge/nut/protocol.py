"""NUT's network protocol (``docs/net-protocol.txt`` of Network UPS Tools), as pure functions.

A line is split into words the way upsd does: blanks separate words, double quotes group
them, a backslash escapes the next character.  Commands are case-insensitive.  A
:class:`Session` answers one parsed line at a time from a :class:`Directory` (what is
served) and its own login state; it never touches a socket, so every reply, every error
and every piece of list framing is tested here without a network.

The server is read-only: ``SET``, ``INSTCMD``, ``FSD`` and ``PRIMARY``/``MASTER`` are
refused with ``ERR ACCESS-DENIED`` (after the same ``USERNAME``/``PASSWORD`` checks upsd
makes first).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final, Protocol

MAX_LINE: Final = 1024
"""Longest request line accepted, newline included; a longer one closes the connection."""
MAX_WORDS: Final = 16
NETVER: Final = "1.3"
"""Protocol version we speak (upsd 2.8 answers the same)."""


class NutError(enum.StrEnum):
    """The error codes of the protocol (each sent as ``ERR <code>``)."""

    ACCESS_DENIED = "ACCESS-DENIED"
    UNKNOWN_UPS = "UNKNOWN-UPS"
    VAR_NOT_SUPPORTED = "VAR-NOT-SUPPORTED"
    CMD_NOT_SUPPORTED = "CMD-NOT-SUPPORTED"
    INVALID_ARGUMENT = "INVALID-ARGUMENT"
    READONLY = "READONLY"
    TOO_LONG = "TOO-LONG"
    FEATURE_NOT_SUPPORTED = "FEATURE-NOT-SUPPORTED"
    FEATURE_NOT_CONFIGURED = "FEATURE-NOT-CONFIGURED"
    ALREADY_SSL_MODE = "ALREADY-SSL-MODE"
    DRIVER_NOT_CONNECTED = "DRIVER-NOT-CONNECTED"
    DATA_STALE = "DATA-STALE"
    ALREADY_LOGGED_IN = "ALREADY-LOGGED-IN"
    INVALID_PASSWORD = "INVALID-PASSWORD"  # noqa: S105 - an error code, not a password
    ALREADY_SET_PASSWORD = "ALREADY-SET-PASSWORD"  # noqa: S105 - an error code
    INVALID_USERNAME = "INVALID-USERNAME"
    ALREADY_SET_USERNAME = "ALREADY-SET-USERNAME"
    USERNAME_REQUIRED = "USERNAME-REQUIRED"
    PASSWORD_REQUIRED = "PASSWORD-REQUIRED"  # noqa: S105 - an error code
    UNKNOWN_COMMAND = "UNKNOWN-COMMAND"
    INVALID_VALUE = "INVALID-VALUE"


class ProtocolError(Exception):
    def __init__(self, code: NutError) -> None:
        super().__init__(code.value)
        self.code = code


def error_line(code: NutError) -> str:
    return f"ERR {code.value}\n"


# --------------------------------------------------------------------------- words


def split_words(line: str) -> list[str]:
    """Words of one request line (without its newline); raise on a bad quote or escape."""
    words: list[str] = []
    current: list[str] = []
    in_word = in_quotes = escaped = False
    for char in line:
        if escaped:
            current.append(char)
            escaped = False
        elif char == "\\":
            escaped = in_word = True
        elif char == '"':
            if in_quotes:
                in_quotes = False
            else:
                in_quotes = in_word = True
        elif char in " \t" and not in_quotes:
            if in_word:
                words.append("".join(current))
                current, in_word = [], False
        else:
            current.append(char)
            in_word = True
        if len(words) > MAX_WORDS:
            raise ProtocolError(NutError.INVALID_ARGUMENT)
    if escaped or in_quotes:
        raise ProtocolError(NutError.INVALID_ARGUMENT)
    if in_word:
        words.append("".join(current))
    return words


def quote(value: str) -> str:
    """A value as the protocol quotes it: in double quotes, ``"`` and ``\\`` escaped."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def decode_line(raw: bytes) -> str:
    """One raw line (without ``\\n``; a trailing ``\\r`` is dropped) as text; raise on garbage.

    Only printable ASCII, blanks and tabs are accepted: NUT names and values are ASCII,
    and anything else is a client speaking another protocol.
    """
    if raw.endswith(b"\r"):
        raw = raw[:-1]
    if any((b < 0x20 and b != 0x09) or b > 0x7E for b in raw):
        raise ProtocolError(NutError.INVALID_ARGUMENT)
    return raw.decode("ascii")


def list_block(kind: str, lines: Sequence[str]) -> str:
    """``BEGIN LIST <kind>`` … ``END LIST <kind>``, each line newline-terminated."""
    return "".join((f"BEGIN LIST {kind}\n", *(f"{line}\n" for line in lines), f"END LIST {kind}\n"))


# --------------------------------------------------------------------------- what is served


@dataclass(frozen=True, slots=True)
class Variable:
    """A read-only variable: its value, and for ``GET TYPE`` whether it is a number."""

    value: str
    number: bool = False


class Directory(Protocol):
    """What a :class:`Session` serves; implemented by the server over the MQTT feed."""

    def ups_names(self) -> Sequence[str]: ...

    def description(self, ups: str) -> str:
        """``KeyError`` for an unknown UPS."""
        ...

    def variables(self, ups: str) -> Mapping[str, Variable] | None:
        """The UPS's variables, ``None`` while its data is stale; ``KeyError``: unknown UPS."""
        ...

    def clients(self, ups: str) -> Sequence[str]:
        """Addresses of the connections logged in to ``ups``."""
        ...

    def check_password(self, username: str, password: str) -> bool: ...

    @property
    def tls_available(self) -> bool: ...

    @property
    def version(self) -> str: ...


DESCRIPTIONS: Final[Mapping[str, str]] = {
    "ups.status": "UPS status",
    "ups.mfr": "UPS manufacturer",
    "ups.model": "UPS model",
    "ups.serial": "UPS serial number",
    "ups.realpower": "Current value of real power (W)",
    "ups.timer.shutdown": "Time before the load will be shutdown (seconds)",
    "input.voltage": "Input voltage (V)",
    "input.frequency": "Input line frequency (Hz)",
    "input.current": "Input current (A)",
    "input.realpower": "Current sum value of all (phases) real power (W)",
    "battery.charge": "Battery charge (percent)",
    "battery.charge.low": "Remaining battery level when UPS switches to LB (percent)",
    "battery.runtime": "Battery runtime (seconds)",
    "battery.runtime.low": "Remaining battery runtime when UPS switches to LB (seconds)",
    "device.mfr": "Device manufacturer",
    "device.model": "Device model",
    "device.serial": "Device serial number",
    "device.type": "Device type",
    "driver.name": "Driver name",
    "driver.version": "Driver version",
}
NO_DESCRIPTION: Final = "Description unavailable"
STRING_LENGTH: Final = 64
HELP_TEXT: Final = (
    "Commands: HELP VER GET LIST SET INSTCMD LOGIN LOGOUT USERNAME PASSWORD STARTTLS\n"
)


class Action(enum.Enum):
    NONE = enum.auto()
    CLOSE = enum.auto()
    """Send the reply, then close the connection (``LOGOUT``)."""
    STARTTLS = enum.auto()
    """Send the reply, then start the TLS handshake as the server."""


@dataclass(frozen=True, slots=True)
class Reply:
    text: str
    action: Action = Action.NONE


def _err(code: NutError) -> Reply:
    return Reply(error_line(code))


@dataclass(slots=True, eq=False)
class Session:
    """One connection's login state, and the answer to each of its lines."""

    peer: str
    username: str | None = None
    password: str | None = None
    logged_in: str | None = None
    """The UPS this connection is logged in to (``LOGIN``)."""
    tls: bool = False

    def handle_line(self, raw: bytes, directory: Directory) -> Reply:
        """Answer one raw request line (without its ``\\n``)."""
        try:
            words = split_words(decode_line(raw))
        except ProtocolError as exc:
            return _err(exc.code)
        if not words:
            return Reply("")
        return self.handle(words, directory)

    def handle(self, words: Sequence[str], d: Directory) -> Reply:  # noqa: PLR0911 - one branch per command
        command, args = words[0].upper(), list(words[1:])
        try:
            if command == "VER":
                return Reply(f"{d.version}\n") if not args else _err(NutError.INVALID_ARGUMENT)
            if command in ("NETVER", "PROTVER"):
                return Reply(f"{NETVER}\n") if not args else _err(NutError.INVALID_ARGUMENT)
            if command == "HELP":
                return Reply(HELP_TEXT) if not args else _err(NutError.INVALID_ARGUMENT)
            if command == "GET":
                return self._get(args, d)
            if command == "LIST":
                return self._list(args, d)
            if command == "USERNAME":
                return self._username(args)
            if command == "PASSWORD":
                return self._password(args)
            if command == "LOGIN":
                return self._login(args, d)
            if command == "LOGOUT":
                return Reply("OK Goodbye\n", Action.CLOSE)
            if command == "STARTTLS":
                return self._starttls(d)
            if command in ("SET", "INSTCMD", "FSD", "PRIMARY", "MASTER"):
                return self._write(args)
        except ProtocolError as exc:
            return _err(exc.code)
        return _err(NutError.UNKNOWN_COMMAND)

    # -- GET -------------------------------------------------------------------------
    def _get(self, args: list[str], d: Directory) -> Reply:
        if len(args) < 2:
            raise ProtocolError(NutError.INVALID_ARGUMENT)
        what, ups = args[0].upper(), args[1]
        if what == "UPSDESC":
            return Reply(f"UPSDESC {ups} {quote(_description(d, ups))}\n")
        if what == "NUMLOGINS":
            _description(d, ups)
            return Reply(f"NUMLOGINS {ups} {len(d.clients(ups))}\n")
        if what not in ("VAR", "TYPE", "DESC", "CMDDESC") or len(args) < 3:
            raise ProtocolError(NutError.INVALID_ARGUMENT)
        name = args[2]
        if what == "CMDDESC":
            _description(d, ups)
            return Reply(f"CMDDESC {ups} {name} {quote(NO_DESCRIPTION)}\n")
        if what == "DESC":
            _description(d, ups)
            return Reply(f"DESC {ups} {name} {quote(DESCRIPTIONS.get(name, NO_DESCRIPTION))}\n")
        variable = _variables(d, ups).get(name)
        if variable is None:
            raise ProtocolError(NutError.VAR_NOT_SUPPORTED)
        if what == "TYPE":
            kind = "NUMBER" if variable.number else f"STRING:{STRING_LENGTH}"
            return Reply(f"TYPE {ups} {name} {kind}\n")
        return Reply(f"VAR {ups} {name} {quote(variable.value)}\n")

    # -- LIST ------------------------------------------------------------------------
    def _list(self, args: list[str], d: Directory) -> Reply:
        if not args:
            raise ProtocolError(NutError.INVALID_ARGUMENT)
        what = args[0].upper()
        if what == "UPS":
            return Reply(
                list_block("UPS", [f"UPS {u} {quote(d.description(u))}" for u in d.ups_names()])
            )
        if what not in ("VAR", "RW", "CMD", "CLIENT", "ENUM", "RANGE") or len(args) < 2:
            raise ProtocolError(NutError.INVALID_ARGUMENT)
        ups = args[1]
        if what == "VAR":
            variables = _variables(d, ups)
            lines = [f"VAR {ups} {k} {quote(v.value)}" for k, v in sorted(variables.items())]
            return Reply(list_block(f"VAR {ups}", lines))
        if what == "CLIENT":
            _description(d, ups)
            return Reply(list_block(f"CLIENT {ups}", [f"CLIENT {ups} {c}" for c in d.clients(ups)]))
        if what in ("RW", "CMD"):
            _description(d, ups)
            return Reply(list_block(f"{what} {ups}", []))
        if len(args) < 3:
            raise ProtocolError(NutError.INVALID_ARGUMENT)
        name = args[2]
        if name not in _variables(d, ups):
            raise ProtocolError(NutError.VAR_NOT_SUPPORTED)
        return Reply(list_block(f"{what} {ups} {name}", []))

    # -- login -----------------------------------------------------------------------
    def _username(self, args: list[str]) -> Reply:
        self.username = _set_once(args, self.username, NutError.ALREADY_SET_USERNAME)
        return Reply("OK\n")

    def _password(self, args: list[str]) -> Reply:
        self.password = _set_once(args, self.password, NutError.ALREADY_SET_PASSWORD)
        return Reply("OK\n")

    def _authenticated(self, d: Directory) -> None:
        """upsd's order: a user name first, then a password, then both must match."""
        if self.username is None:
            raise ProtocolError(NutError.USERNAME_REQUIRED)
        if self.password is None:
            raise ProtocolError(NutError.PASSWORD_REQUIRED)
        if not d.check_password(self.username, self.password):
            raise ProtocolError(NutError.ACCESS_DENIED)

    def _login(self, args: list[str], d: Directory) -> Reply:
        if len(args) != 1:
            raise ProtocolError(NutError.INVALID_ARGUMENT)
        if self.logged_in is not None:
            raise ProtocolError(NutError.ALREADY_LOGGED_IN)
        if self.username is None:
            raise ProtocolError(NutError.USERNAME_REQUIRED)
        if self.password is None:
            raise ProtocolError(NutError.PASSWORD_REQUIRED)
        _description(d, args[0])
        self._authenticated(d)
        self.logged_in = args[0]
        return Reply("OK\n")

    def _write(self, args: list[str]) -> Reply:
        del args
        if self.username is None:
            raise ProtocolError(NutError.USERNAME_REQUIRED)
        if self.password is None:
            raise ProtocolError(NutError.PASSWORD_REQUIRED)
        raise ProtocolError(NutError.ACCESS_DENIED)

    def _starttls(self, d: Directory) -> Reply:
        if self.tls:
            raise ProtocolError(NutError.ALREADY_SSL_MODE)
        if not d.tls_available:
            raise ProtocolError(NutError.FEATURE_NOT_CONFIGURED)
        self.tls = True
        return Reply("OK STARTTLS\n", Action.STARTTLS)


def _description(d: Directory, ups: str) -> str:
    try:
        return d.description(ups)
    except KeyError:
        raise ProtocolError(NutError.UNKNOWN_UPS) from None


def _variables(d: Directory, ups: str) -> Mapping[str, Variable]:
    try:
        variables = d.variables(ups)
    except KeyError:
        raise ProtocolError(NutError.UNKNOWN_UPS) from None
    if variables is None:
        raise ProtocolError(NutError.DATA_STALE)
    return variables


def _set_once(args: list[str], current: str | None, already: NutError) -> str:
    """``USERNAME`` or ``PASSWORD``: exactly one argument, and only once a connection."""
    if len(args) != 1:
        raise ProtocolError(NutError.INVALID_ARGUMENT)
    if current is not None:
        raise ProtocolError(already)
    return args[0]
