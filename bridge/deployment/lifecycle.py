"""Deployment start and stop: the steps behind ``powerbridge deployment``.

``start``: health checks (stop on failure) → install the unit, the service user and
the udev rules (udev skipped where it does not run, e.g. in a container) → enable and
(re)start ``powerbridge.service`` → record the deployment in the bridge database
(a repeated start with the same details keeps the open record) → publish it retained.
Nothing is recorded or published unless the service runs; a failed step says what
the steps before it changed.  ``stop``: stop and disable
the service → close the record → publish the closed record.  ``status`` changes
nothing and lives apart, in :class:`bridge.deployment.status.StatusReader`, which
:class:`Deployer` extends with the steps that do.

Every step prints one line as it happens.  ``root`` other than ``/`` writes the
files (and the database) under that prefix and never runs a host tool; ``dry_run``
prints what would be done and writes nothing.
"""

from __future__ import annotations

import json
import os
import pwd
import sqlite3
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import TextIO

from bridge import __version__
from bridge.clock import isoformat_utc
from bridge.config import BridgeConfig, load_bridge_config
from bridge.db import db_path
from bridge.deployment import records, systemd
from bridge.deployment.checks import CHECK_NAMES, CheckContext, CheckResult, run_checks
from bridge.deployment.status import StatusReader
from bridge.errors import UsageError
from bridge.mqtt.contract import (
    QOS_DEPLOYMENT,
    BridgeTopics,
)
from bridge.mqtt.session import BrokerProblemError, BrokerSession


class StepFailedError(Exception):
    """A step failed; the message says why (already printed)."""


@dataclass
class Deployer(StatusReader):
    """``start`` and ``stop``, with the options they add to what status reads."""

    dry_run: bool = False
    out: TextIO = field(default_factory=lambda: sys.stdout)
    exec_argv: list[str] | None = None
    skip: frozenset[str] = frozenset()
    host_tools: bool | None = None
    """Run systemctl & co.: by default only without a root prefix.  ``True`` with a prefix
    is for tests, with fake tools from ``POWERBRIDGE_TOOL_PATH``."""
    _step: int = 0
    _steps: int = 0
    _failures: int = 0
    _done: list[str] = field(default_factory=list)
    """What ``start`` changed on this system so far (said when a later step fails)."""

    @property
    def staged(self) -> bool:
        """Files go under a prefix (``--root``), not onto this system."""
        return self.root.resolve() != Path("/")

    @property
    def offline(self) -> bool:
        """No host tools are run (``--root`` without ``host_tools``)."""
        if self.host_tools is not None:
            return not self.host_tools
        return self.root.resolve() != Path("/")

    # -- output -------------------------------------------------------------------------
    def say(self, text: str = "") -> None:
        print(text, file=self.out, flush=True)

    @contextmanager
    def step(self, title: str) -> Iterator[Callable[[str], None]]:
        """``[n/N] title`` … then ``✓ result`` or ``✗ error``; failures are counted."""
        self._step += 1
        prefix = f"[{self._step}/{self._steps}]"
        self.say(f"{prefix} {title}")
        results: list[str] = []
        try:
            yield results.append
        except StepFailedError as exc:
            self._failures += 1
            self.say(f"      ✗ {exc}")
            raise
        for line in results:
            self.say(f"      {line}")

    # -- shared -------------------------------------------------------------------------
    def _require_privileges(self, what: str) -> None:
        if self.offline or self.dry_run:
            return
        if not self.host.systemd_running:
            raise UsageError(
                f"systemd is not running on this machine, so it cannot {what}; "
                "use --root DIR to write the files for another system, or --dry-run"
            )
        if hasattr(os, "geteuid") and os.geteuid() != 0:
            raise UsageError(f"to {what}, run as root: sudo powerbridge deployment ...")

    def _publish(self, config: BridgeConfig, device_id: str, payload: bytes) -> str:
        topic = BridgeTopics(config.mqtt.base_topic, device_id).deployment
        try:
            with BrokerSession(config, device_id, purpose="deploy").connect(
                self.broker_timeout
            ) as session:
                session.publish(topic, payload, qos=QOS_DEPLOYMENT, retain=True)
        except BrokerProblemError as exc:
            raise StepFailedError(f"{exc} — fix: {exc.fix}") from None
        return topic

    def _chown_state(self, config: BridgeConfig) -> None:
        """Files created as root in the data directory must belong to the service user."""
        if self.offline or not hasattr(os, "geteuid") or os.geteuid() != 0:
            return
        try:
            user = pwd.getpwnam(systemd.SERVICE_USER)
        except KeyError:
            return  # created by systemd-sysusers later; StateDirectory= chowns on start
        directory = self.data_dir(config)
        base = db_path(directory)
        for path in (directory, base, *(base.with_name(base.name + s) for s in ("-wal", "-shm"))):
            if path.exists():
                os.chown(path, user.pw_uid, user.pw_gid)

    # ============================================================================ start
    def start(self, name: str, latitude: float, longitude: float) -> int:
        config, device_id = self.load()
        self._require_privileges("install and start the service")
        argv = self.exec_argv or systemd.default_exec()
        problem = systemd.exec_problem(argv)
        if problem:
            message = (
                f"the service could not run {argv[0]}: {problem}; install powerbridge outside "
                "/home, /root and /tmp (e.g. a venv in /opt/powerbridge), or pass --exec"
            )
            if not self.staged:
                raise UsageError(message)
            # Units staged under --root are for another system or an image: say it loudly,
            # but the path that matters is the one on the target.
            self.say(f"warning: {message}")
        try:
            records.check_coordinates(latitude, longitude)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        options = systemd.UnitOptions.for_config(config, self.config_path, argv)
        plan = systemd.install_plan(options)
        sha = records.config_sha256(self.config_path)
        now = _to_ms(self.clock.utcnow())
        record = records.Deployment(
            name=name,
            latitude=latitude,
            longitude=longitude,
            started=now,
            device_id=device_id,
            software_version=__version__,
            config_sha256=sha,
            config_path=str(self.config_path.absolute()),
        )
        mode = " (dry run: nothing is written)" if self.dry_run else ""
        where = f" under {self.root}" if self.root.resolve() != Path("/") else ""
        self.say(
            f'Deploying bridge {device_id} as "{name}" at {latitude:g}, {longitude:g}{where}{mode}'
        )
        self._steps = 5
        self._step = 0
        self._done = []
        try:
            self._start_checks(config)
            self._start_install(plan)
            self._start_service()
            record = self._start_record(config, record)
            self._start_publish(config, device_id, record)
        except StepFailedError:
            if self._done:
                self.say("Done before the failure (running it again repeats them safely):")
                for line in self._done:
                    self.say(f"  - {line}")
            if self._step <= 4:
                self.say("Nothing was recorded or published: the deployment is not active.")
            self.say("Deployment not completed: fix the step marked ✗ and run it again.")
            return 1
        if self.dry_run:
            self.say("Dry run: nothing was written.")
        else:
            self.say(f'Deployment "{name}" started.')
        return 0

    def _start_checks(self, config: BridgeConfig) -> None:
        names = [n for n in CHECK_NAMES if n != "service"]
        with self.step("health checks") as done:
            if self.dry_run:
                done(f"would run: {', '.join(names)}; and stop here if one fails")
                return
            ctx = CheckContext(
                config_path=self.config_path,
                root=self.root,
                skip=self.skip,
                host=self.host,
                clock=self.clock,
                broker_timeout=self.broker_timeout,
            )

            def show(result: CheckResult) -> None:
                symbol = {"pass": "✓", "fail": "✗", "skip": "–"}[result.outcome.value]
                self.say(f"      {symbol} {result.title:<15} {result.detail}")
                if result.fix:
                    self.say(f"        {'':<15} fix: {result.fix}")

            report = run_checks(ctx, names, on_result=show)
            if not report.ok:
                raise StepFailedError(f"{report.summary()}: the deployment stops here")
            done(f"✓ {report.summary()}")

    def _start_record(self, config: BridgeConfig, record: records.Deployment) -> records.Deployment:
        """The record now open (a new one, or the one kept because nothing changed)."""
        directory = self.data_dir(config)
        with self.step(f"record the deployment in {db_path(directory)}") as done:
            if self.dry_run:
                done(f"would record: {json.dumps(record.to_dict(), ensure_ascii=False)}")
                return record
            try:
                conn = records.open_db(directory)
                try:
                    kept = records.current(conn)
                    if kept is not None and _same_deployment(kept, record):
                        done(
                            f"✓ deployment #{kept.id} is already recorded with these details "
                            f"(since {isoformat_utc(kept.started)}): kept"
                        )
                        return kept
                    opened, previous = records.start(conn, record)
                finally:
                    conn.close()
                self._chown_state(config)
            except (OSError, sqlite3.Error) as exc:
                raise StepFailedError(f"cannot write {db_path(directory)}: {exc}") from None
            self._done.append(f"recorded deployment #{opened.id} in {db_path(directory)}")
            if previous is not None:
                done(
                    f'closed the previous deployment #{previous.id} "{previous.name}" '
                    f"({isoformat_utc(previous.started)} – {isoformat_utc(record.started)})"
                )
            done(f"✓ deployment #{opened.id} started {isoformat_utc(opened.started)}")
        return opened

    def _start_publish(
        self, config: BridgeConfig, device_id: str, record: records.Deployment
    ) -> None:
        topic = BridgeTopics(config.mqtt.base_topic, device_id).deployment
        payload = record.to_payload().encode()
        with self.step(f"publish it, retained, on {topic}") as done:
            if self.dry_run:
                done(f"would publish: {payload.decode()}")
                return
            self._publish(config, device_id, payload)
            done("✓ published")

    def _start_install(self, plan: list[systemd.PlannedFile]) -> None:
        with self.step("install the service, its user and the udev rules") as done:
            for planned in plan:
                target = systemd.under(self.root, planned.path)
                if self.dry_run:
                    done(f"would write {target}:")
                    for line in planned.text.rstrip("\n").splitlines():
                        done(f"  | {line}")
                    continue
                try:
                    systemd.write_file(self.root, planned)
                except OSError as exc:
                    raise StepFailedError(f"cannot write {target}: {exc}") from None
                done(f"✓ wrote {target}")
                if not self.dry_run:
                    self._done.append(f"wrote {target}")
            if self.offline or self.dry_run:
                verb = "would run" if self.dry_run else "left to the target system (--root):"
                done(
                    f"{verb} systemd-sysusers, udevadm control --reload-rules, "
                    "udevadm trigger, systemctl daemon-reload"
                )
                return
            udev = self.host.udev_running
            for tool, args in (
                ("systemd-sysusers", (str(systemd.SYSUSERS_PATH),)),
                ("udevadm", ("control", "--reload-rules")),
                (
                    "udevadm",
                    ("trigger", "--subsystem-match=tty", "--subsystem-match=leds", "--action=add"),
                ),
                ("systemctl", ("daemon-reload",)),
            ):
                if tool == "udevadm" and not udev:
                    continue
                self._tool(tool, *args)
                done(f"✓ {tool} {' '.join(args)}")
                if tool == "systemd-sysusers":
                    self._done.append(f"created the {systemd.SERVICE_USER} user (systemd-sysusers)")
            if not udev:
                done(
                    "– udev is not running here (a container?): the rules are installed for "
                    "when it does; udevadm skipped"
                )
            self._grant_secrets()

    def _grant_secrets(self) -> None:
        """The service user must read its configuration and secrets (group read, 0640)."""
        try:
            group = pwd.getpwnam(systemd.SERVICE_USER).pw_gid
        except KeyError:
            return
        config = load_bridge_config(self.config_path)
        paths = [self.config_path, config.mqtt.password_file, config.signing.key_file]
        paths += [config.mqtt.tls.ca_file, config.mqtt.tls.cert_file, config.mqtt.tls.key_file]
        for raw in paths:
            if not raw:
                continue
            path = Path(raw)
            try:
                st = path.stat()
                if st.st_uid == 0 and st.st_gid != group:
                    os.chown(path, 0, group)
                    os.chmod(path, (st.st_mode & 0o700) | 0o040)
            except OSError:
                continue  # reported by the service itself if it cannot read the file

    def _tool(self, tool: str, *args: str) -> None:
        try:
            self.host.check(tool, *args)
        except systemd.HostToolError as exc:
            raise StepFailedError(str(exc)) from None

    def _start_service(self) -> None:
        unit = systemd.UNIT_NAME
        with self.step(f"enable and start {unit}") as done:
            if self.dry_run:
                done(
                    "would enable it"
                    + (" (link under --root)" if self.offline else f" and restart it: {unit}")
                )
                return
            if self.offline:
                link = systemd.enable_offline(self.root)
                done(f"✓ enabled: {link}; not started (--root)")
                return
            self._tool("systemctl", "enable", unit)
            self._done.append(f"enabled {unit} (`sudo powerbridge deployment stop` undoes it)")
            result = self.host.run("systemctl", "restart", unit)
            state = self.host.active_state(unit)
            if result.returncode != 0 or state != "active":
                raise StepFailedError(
                    f"{unit} did not start ({state}): see `journalctl -u {unit} -n 50`"
                )
            done(f"✓ {unit} is enabled and running")

    # ============================================================================ stop
    def stop(self) -> int:
        config, device_id = self.load()
        self._require_privileges("stop the service")
        self._steps = 3
        self._step = 0
        unit = systemd.UNIT_NAME
        closed: records.Deployment | None = None
        try:
            with self.step(f"stop and disable {unit}") as done:
                if self.dry_run:
                    done("would stop and disable it")
                elif self.offline:
                    removed = systemd.disable_offline(self.root)
                    done("✓ disabled (--root)" if removed else "✓ was not enabled (--root)")
                else:
                    self._tool("systemctl", "disable", "--now", unit)
                    done(f"✓ stopped and disabled ({self.host.active_state(unit)})")
                    unit_file = systemd.under(self.root, systemd.UNIT_PATH)
                    if unit_file.exists():
                        try:
                            unit_file.unlink()
                        except OSError as exc:
                            raise StepFailedError(f"cannot remove {unit_file}: {exc}") from None
                        self._tool("systemctl", "daemon-reload")
                        done(f"✓ removed {unit_file} (`deployment start` installs it again)")
            directory = self.data_dir(config)
            with self.step(f"close the deployment record in {db_path(directory)}") as done:
                closed = self._close_record(config, done)
        except StepFailedError:
            return 1
        try:
            with self.step("publish the closed record, retained") as done:
                if closed is None:
                    done("nothing to publish")
                elif self.dry_run:
                    done(f"would publish: {closed.to_payload().encode().decode()}")
                else:
                    topic = self._publish(config, device_id, closed.to_payload().encode())
                    done(f"✓ published on {topic}")
        except StepFailedError:
            self.say("The service is stopped and the record closed, but the broker still shows")
            self.say("the deployment as active; run `deployment stop` again once it is reachable.")
            return 1
        self.say("Deployment stopped." if not self.dry_run else "Dry run: nothing was written.")
        return 0

    def _close_record(
        self, config: BridgeConfig, done: Callable[[str], None]
    ) -> records.Deployment | None:
        directory = self.data_dir(config)
        if self.dry_run:
            with records.reading(directory) as conn:
                current = None if conn is None else records.current(conn)
            done(
                f'would close #{current.id} "{current.name}"'
                if current
                else "no open deployment to close"
            )
            return current
        if not db_path(directory).exists():
            done("no deployment was ever recorded here")
            return self._latest_closed(directory)
        try:
            conn = records.open_db(directory)
            try:
                now = self.clock.utcnow()
                closed = records.close(
                    conn, now.replace(microsecond=now.microsecond // 1000 * 1000)
                )
                latest = records.latest(conn)
            finally:
                conn.close()
        except (OSError, sqlite3.Error) as exc:
            raise StepFailedError(f"cannot write {db_path(directory)}: {exc}") from None
        if closed is None:
            done("no open deployment (already stopped)")
            return latest  # republish the last closed record: the broker may have missed it
        done(f'✓ closed #{closed.id} "{closed.name}" at {isoformat_utc(closed.ended or now)}')
        return closed

    @staticmethod
    def _latest_closed(directory: Path) -> records.Deployment | None:
        with records.reading(directory) as conn:
            return None if conn is None else records.latest(conn)


def _same_deployment(kept: records.Deployment, new: records.Deployment) -> bool:
    """A repeated ``start`` with the same details: the open record stays as it is.

    Everything but the record's id and times: name, coordinates, device id,
    software version and the configuration file (path and hash).
    """
    return replace(kept, id=new.id, started=new.started, ended=new.ended) == new


def _to_ms(value: datetime) -> datetime:
    """Millisecond precision: what the database and the payload keep."""
    return value.replace(microsecond=value.microsecond // 1000 * 1000)
