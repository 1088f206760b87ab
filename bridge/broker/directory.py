"""The broker's configuration directory, made and kept by ``powerbridge broker``.

One directory (``/etc/mosquitto/powerbridge`` by default) holds everything the
shipped ``powerbridge.conf`` names, plus what a person needs to hand out::

    powerbridge.conf   the shipped configuration, paths pointing into this directory
    acl                the shipped role section + one ``user`` block per bridge/client
    passwd             Mosquitto ``$7$`` hashes (broker-readable, 0640 root:mosquitto)
    ca.crt  ca.key     the local CA (ca.key 0600: only needed to issue server certs)
    server.crt server.key   the broker's TLS certificate (key 0640 root:mosquitto)
    credentials/<user>.password   one plaintext password per user (0600, dir 0700)

Rules: nothing that exists is overwritten without being asked (``rotate``,
``new_server_cert``); everything kept is reported as kept; lines and blocks a
person added to ``passwd`` or ``acl`` are preserved.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from bridge.broker import passwd, tls
from bridge.broker.acl import (
    IDENTITY_MARKER,
    ROLES,
    acl_topics,
    acl_users,
    check_bridge_id,
    check_client_id,
    render_acl,
)
from bridge.errors import PowerbridgeError, UsageError
from bridge.mqtt.contract import (
    ARCHIVER_USER,
    DEFAULT_BASE,
    DEFAULT_DISCOVERY_PREFIX,
    HOMEASSISTANT_USER,
)

SHIPPED_DIR = "/etc/mosquitto/powerbridge/"
"""The directory the shipped ``powerbridge.conf`` refers to."""
FIXED_USERS = (HOMEASSISTANT_USER, ARCHIVER_USER)
BROKER_GROUP = "mosquitto"
"""Mosquitto 2.0 reads its password file and TLS key *after* dropping root privileges."""
SERVER_CERT_WARN_DAYS = 30


class BrokerSetupError(PowerbridgeError):
    """The broker directory cannot be made or updated (permissions, broken files)."""


@dataclass(frozen=True, slots=True)
class Action:
    """One thing ``init``/``add-*`` did or deliberately did not do."""

    subject: str
    outcome: str
    """``created``, ``kept``, ``restored``, ``rotated``, ``added``, ``updated`` or ``warning``."""
    detail: str = ""

    def __str__(self) -> str:
        text = f"{self.outcome:>8}  {self.subject}"
        return f"{text}: {self.detail}" if self.detail else text


@dataclass
class Report:
    actions: list[Action] = field(default_factory=list)

    def add(self, subject: str, outcome: str, detail: str = "") -> None:
        self.actions.append(Action(subject, outcome, detail))

    @property
    def warnings(self) -> list[Action]:
        return [a for a in self.actions if a.outcome == "warning"]

    def outcome(self, subject: str) -> str | None:
        """The first outcome recorded for ``subject`` (tests and callers)."""
        return next((a.outcome for a in self.actions if a.subject == subject), None)


def render_conf(template: str, directory: Path) -> str:
    """The shipped configuration with its file paths pointing into ``directory``."""
    target = str(directory.resolve())
    return template.replace(SHIPPED_DIR, target.rstrip("/") + "/")


def _as_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def _group_id(name: str | None) -> int | None:
    if name is None or not _as_root():
        return None
    try:
        import grp
    except ImportError:  # Windows
        return None
    try:
        return grp.getgrnam(name).gr_gid
    except KeyError:
        return None


class _File:
    """One file (or folder) of a :class:`BrokerDirectory`, by name: ``directory.path / name``."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __get__(self, directory: BrokerDirectory, owner: object = None) -> Path:
        return directory.path / self.name


class BrokerDirectory:
    """Make and extend one broker directory; every method returns what it did."""

    def __init__(self, path: Path, *, group: str | None = BROKER_GROUP) -> None:
        self.path = path
        self._gid = _group_id(group)
        self.group = group if self._gid is not None else None
        self._missing_group = group if group is not None and _as_root() and not self.group else None

    # -- paths ---------------------------------------------------------------------------
    conf = _File("powerbridge.conf")
    acl = _File("acl")
    passwd = _File("passwd")
    ca_crt = _File("ca.crt")
    ca_key = _File("ca.key")
    server_crt = _File("server.crt")
    server_key = _File("server.key")
    credentials = _File("credentials")

    def credential_file(self, user: str) -> Path:
        return self.credentials / f"{user}.password"

    def password(self, user: str) -> str | None:
        """The plaintext password kept for ``user``, if its credentials file exists."""
        try:
            lines = self.credential_file(user).read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise BrokerSetupError(f"cannot read {self.credential_file(user)}: {exc}") from None
        return lines[0].strip() if lines and lines[0].strip() else None

    def topics(self) -> tuple[str, str]:
        """Base topic and discovery prefix this directory's ACL was made for."""
        return acl_topics(self._read(self.acl) or "")

    # -- whole directory -----------------------------------------------------------------
    def init(
        self,
        *,
        conf_template: str,
        acl_template: str,
        bridges: Iterable[str] = (),
        clients: Iterable[str] = (),
        base: str = DEFAULT_BASE,
        prefix: str = DEFAULT_DISCOVERY_PREFIX,
        with_tls: bool = True,
        hosts: list[str] | None = None,
        new_server_cert: bool = False,
    ) -> Report:
        """Create what is missing; keep (and report) everything that exists."""
        bridges = [check_bridge_id(b) for b in bridges]
        clients = [check_client_id(c) for c in clients]
        if with_tls:
            tls.require()  # before anything is written: all or nothing on a fresh machine
            try:
                hosts = [tls.check_host(h) for h in hosts] if hosts else None
            except ValueError as exc:
                raise UsageError(str(exc)) from None
        report = Report()
        if self._missing_group is not None:
            report.add(
                f"group {self._missing_group}",
                "warning",
                "not found: passwd, acl and server.key are readable by root only, and "
                "Mosquitto reads them after switching to its own user. Install mosquitto "
                "first and run this again, or name its group with --group",
            )
        self._mkdir(self.path, 0o755)
        self._mkdir(self.credentials, 0o700)
        self._init_conf(conf_template, report)
        self._init_acl(acl_template, base, prefix, report)
        for user in FIXED_USERS:
            self.ensure_user(user, None, report)
        for device_id in bridges:
            self.add_bridge(device_id, report=report)
        for client_id in clients:
            self.add_client(client_id, report=report)
        if with_tls:
            self.ensure_tls(hosts or tls.default_hosts(), report, new_server_cert=new_server_cert)
        self._fix_access(report)
        return report

    def _fix_access(self, report: Report) -> None:
        """Files the broker reads: group-readable by its group, never by others."""
        if self._gid is None:
            return
        for path in (self.passwd, self.acl, self.server_key):
            try:
                info = path.stat()
                if (info.st_gid, info.st_mode & 0o777) != (self._gid, 0o640):
                    os.chown(path, 0, self._gid)
                    path.chmod(0o640)
                    report.add(str(path), "updated", f"mode 0640, group {self.group}")
            except FileNotFoundError:
                continue
            except OSError as exc:
                raise BrokerSetupError(f"cannot set access to {path}: {exc}") from None

    def _init_conf(self, template: str, report: Report) -> None:
        wanted = render_conf(template, self.path)
        current = self._read(self.conf)
        if current is None:
            self._write(self.conf, wanted, 0o644)
            report.add(str(self.conf), "created")
        elif current == wanted:
            report.add(str(self.conf), "kept")
        else:
            report.add(
                str(self.conf),
                "kept",
                "differs from the shipped configuration (your edits are left alone)",
            )

    def _init_acl(self, template: str, base: str, prefix: str, report: Report) -> None:
        if IDENTITY_MARKER not in template:
            raise BrokerSetupError("the shipped ACL lacks its identity marker line")
        current = self._read(self.acl)
        if current is None:
            self._write(self.acl, render_acl(template, base, prefix), 0o640, broker_reads=True)
            report.add(str(self.acl), "created", f"base topic {base}, discovery prefix {prefix}")
            return
        if IDENTITY_MARKER not in current:
            raise BrokerSetupError(
                f"{self.acl} exists but was not made by powerbridge (no identity marker line); "
                "move it away or add the marker line"
            )
        made_for = acl_topics(current)
        if made_for != (base, prefix):
            report.add(
                str(self.acl),
                "warning",
                f"made for base topic {made_for[0]} and discovery prefix {made_for[1]}; "
                "kept as is (identities are added with its topics)",
            )
        head = current.split(IDENTITY_MARKER)[0]
        shipped_head = render_acl(template, *made_for).split(IDENTITY_MARKER)[0]
        detail = "" if head == shipped_head else "its role section differs from the shipped one"
        report.add(str(self.acl), "kept", detail)

    # -- identities ----------------------------------------------------------------------
    def add(
        self, kind: str, ident: str, *, rotate: bool = False, report: Report | None = None
    ) -> Report:
        """Add one identity of ``kind`` (``bridge`` or ``client``): its ACL block and password."""
        role = ROLES[kind]
        ident = role.check_id(ident)
        base, prefix = self.topics()
        report = report if report is not None else Report()
        self.ensure_user(role.user(ident), role.block(ident, base, prefix), report, rotate)
        return report

    def add_bridge(
        self, device_id: str, *, rotate: bool = False, report: Report | None = None
    ) -> Report:
        return self.add("bridge", device_id, rotate=rotate, report=report)

    def add_client(
        self, client_id: str, *, rotate: bool = False, report: Report | None = None
    ) -> Report:
        return self.add("client", client_id, rotate=rotate, report=report)

    def ensure_user(
        self, user: str, block: str | None, report: Report, rotate: bool = False
    ) -> None:
        """Give ``user`` a password (kept if one exists) and, if given, its ACL block."""
        if not self.acl.exists():
            raise BrokerSetupError(
                f"{self.acl} does not exist: run `powerbridge broker init {self.path}` first"
            )
        self._mkdir(self.credentials, 0o700)
        if block is not None:
            self._ensure_block(user, block, report)
        self._ensure_password(user, report, rotate)

    def _ensure_block(self, user: str, block: str, report: Report) -> None:
        text = self._read(self.acl) or ""
        if user in acl_users(text):
            report.add(f"acl: user {user}", "kept")
            return
        text = text.rstrip("\n") + "\n\n" + block.rstrip("\n") + "\n"
        self._write(self.acl, text, 0o640, broker_reads=True)
        report.add(f"acl: user {user}", "added")

    def _ensure_password(self, user: str, report: Report, rotate: bool) -> None:
        subject = f"password: {user}"
        entries = self._passwd_lines()
        index = next((i for i, line in enumerate(entries) if line.partition(":")[0] == user), None)
        kept = self.password(user)
        if rotate:
            new = passwd.new_password()
            self._write_credential(user, new)
            self._set_entry(entries, index, passwd.hash_entry(user, new))
            report.add(subject, "rotated", f"new password in {self.credential_file(user)}")
            return
        if index is None and kept is None:
            new = passwd.new_password()
            self._write_credential(user, new)
            self._set_entry(entries, index, passwd.hash_entry(user, new))
            report.add(subject, "created", str(self.credential_file(user)))
        elif index is None and kept is not None:
            self._set_entry(entries, index, passwd.hash_entry(user, kept))
            report.add(subject, "restored", f"hash rebuilt from {self.credential_file(user)}")
        elif kept is None:
            report.add(
                subject,
                "warning",
                f"kept the existing password; its credentials file {self.credential_file(user)} "
                "is missing, so rotate it to hand it out again",
            )
        elif index is not None and not passwd.verify_entry(entries[index], user, kept):
            report.add(
                subject,
                "warning",
                f"{self.credential_file(user)} does not match the hash in {self.passwd}; "
                "both kept as they are: rotate to make them agree",
            )
        else:
            report.add(subject, "kept", "not rotated")

    def _passwd_lines(self) -> list[str]:
        text = self._read(self.passwd)
        return [] if text is None else text.splitlines()

    def _set_entry(self, entries: list[str], index: int | None, line: str) -> None:
        if index is None:
            entries.append(line)
        else:
            entries[index] = line
        self._write(self.passwd, "\n".join(entries) + "\n", 0o640, broker_reads=True)

    def _write_credential(self, user: str, password: str) -> None:
        self._write(self.credential_file(user), password + "\n", 0o600)

    # -- TLS -----------------------------------------------------------------------------
    def ensure_tls(
        self, hosts: list[str], report: Report, *, new_server_cert: bool = False
    ) -> None:
        """A local CA and a server certificate for ``hosts``; existing ones are kept."""
        hosts = tls.unique([tls.check_host(h) for h in hosts])
        had_ca = self.ca_crt.exists()
        ca = self._ensure_ca(report)
        have = self.server_crt.exists() and self.server_key.exists()
        if have and not had_ca:
            # A certificate from a CA that is gone is useless to clients holding the new ca.crt.
            new_server_cert = True
            report.add(str(self.server_crt), "warning", "the CA is new: issuing a new one")
        if have and not new_server_cert:
            info = tls.describe(self.server_crt.read_bytes())
            report.add(str(self.server_crt), "kept", f"for {', '.join(info.hosts)}")
            missing = [h for h in hosts if h.lower() not in {x.lower() for x in info.hosts}]
            if missing:
                report.add(
                    str(self.server_crt),
                    "warning",
                    f"does not name {', '.join(missing)}; issue a new one with "
                    "--new-server-cert (clients keep working: they trust the CA)",
                )
            days = info.days_left()
            if days < SERVER_CERT_WARN_DAYS:
                report.add(
                    str(self.server_crt),
                    "warning",
                    f"expires in {days:.0f} days; renew it with --new-server-cert",
                )
            if ca is not None and not tls.signed_by(self.server_crt.read_bytes(), ca.cert_pem):
                report.add(str(self.server_crt), "warning", f"not signed by {self.ca_crt}")
            return
        if ca is None:
            raise BrokerSetupError(
                f"cannot issue a server certificate: {self.ca_key} is missing "
                f"(only {self.ca_crt} is there). Put the CA key back, or move ca.crt away to "
                "make a new CA (every client then needs the new ca.crt)"
            )
        server = tls.make_server_cert(ca, hosts)
        self._write(self.server_key, server.key_pem.decode(), 0o640, broker_reads=True)
        self._write(self.server_crt, server.cert_pem.decode(), 0o644)
        outcome = "rotated" if have else "created"
        report.add(str(self.server_crt), outcome, f"for {', '.join(hosts)}")

    def _ensure_ca(self, report: Report) -> tls.KeyAndCert | None:
        cert = self._read(self.ca_crt)
        key = self._read(self.ca_key)
        if cert is None:
            if key is not None:
                raise BrokerSetupError(
                    f"{self.ca_key} exists without {self.ca_crt}; move the key away or restore "
                    "the certificate"
                )
            ca = tls.make_ca()
            self._write(self.ca_key, ca.key_pem.decode(), 0o600)
            self._write(self.ca_crt, ca.cert_pem.decode(), 0o644)
            report.add(str(self.ca_crt), "created", "copy it to every PC and to Home Assistant")
            return ca
        report.add(str(self.ca_crt), "kept", "not rotated")
        return None if key is None else tls.KeyAndCert(key.encode(), cert.encode())

    # -- file primitives -----------------------------------------------------------------
    def make_dir(self, path: Path, mode: int) -> None:
        """Create ``path`` (and parents) with ``mode``; errors become :class:`BrokerSetupError`."""
        self._mkdir(path, mode)

    def write_file(self, path: Path, text: str, mode: int) -> None:
        """Write ``path`` atomically with ``mode``; errors become :class:`BrokerSetupError`."""
        self._write(path, text, mode)

    def _read(self, path: Path) -> str | None:
        try:
            return path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise BrokerSetupError(f"cannot read {path}: {exc}{_sudo_hint(exc)}") from None

    def _mkdir(self, path: Path, mode: int) -> None:
        """Create ``path`` with exactly ``mode`` (not narrowed by the umask); keep existing ones."""
        try:
            if not path.is_dir():
                path.mkdir(parents=True, exist_ok=True, mode=mode)
                path.chmod(mode)
        except OSError as exc:
            raise BrokerSetupError(f"cannot create {path}: {exc}{_sudo_hint(exc)}") from None

    def _write(self, path: Path, text: str, mode: int, *, broker_reads: bool = False) -> None:
        """Write atomically with ``mode``; broker-read secrets are group-owned by mosquitto."""
        gid = self._gid if broker_reads else None
        if broker_reads and gid is None:
            mode &= 0o600  # no broker group: only the owner (the broker runs as this user)
        try:
            fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as handle:
                    handle.write(text)
                os.chmod(tmp, mode)
                if gid is not None:
                    os.chown(tmp, 0, gid)
                os.replace(tmp, path)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise
        except OSError as exc:
            raise BrokerSetupError(f"cannot write {path}: {exc}{_sudo_hint(exc)}") from None


def _sudo_hint(exc: OSError) -> str:
    return " (run it with sudo)" if isinstance(exc, PermissionError) else ""
