"""Deployment start, stop and status: the steps behind ``powerbridge deployment``.

``start``: health checks (stop on failure) → install the unit, the service user and
the udev rules (udev skipped where it does not run, e.g. in a container) → enable and
(re)start ``powerbridge.service`` → record the deployment in the bridge database
(a repeated start with the same details keeps the open record) → publish it retained.
Nothing is recorded or published unless the service runs; a failed step says what
the steps before it changed.  ``stop``: stop and disable
the service → close the record → publish the closed record.  ``status``: what the
service, the broker, the meter, the spool and the record say, as one health verdict.

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
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Final, TextIO

from bridge import __version__, identity
from bridge.clock import Clock, SystemClock, isoformat_utc
from bridge.config import BridgeConfig, load_bridge_config
from bridge.db import db_path
from bridge.deployment import records, systemd
from bridge.deployment.checks import CHECK_NAMES, CheckContext, CheckResult, run_checks
from bridge.errors import PayloadError, UsageError
from bridge.mqtt.contract import (
    QOS_DEPLOYMENT,
    BridgeTopics,
    HealthPayload,
    StatePayload,
    loads_object,
)
from bridge.mqtt.session import BrokerProblemError, BrokerSession
from bridge.mqtt.spool import read_figures, read_newest_sample_created

DEPLOYMENT_QOS: Final = QOS_DEPLOYMENT
SAMPLE_MAX_AGE_MIN_S: Final = 10.0
"""A newest reading older than ``max(3 × meter.interval, this)`` counts as stale."""


class StepFailedError(Exception):
    """A step failed; the message says why (already printed)."""


@dataclass
class Deployer:
    """Options shared by start, stop and status."""

    config_path: Path
    root: Path = Path("/")
    dry_run: bool = False
    out: TextIO = field(default_factory=lambda: sys.stdout)
    host: systemd.Host = field(default_factory=systemd.Host)
    clock: Clock = field(default_factory=SystemClock)
    exec_argv: list[str] | None = None
    skip: frozenset[str] = frozenset()
    broker_timeout: float = 5.0
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
    def load(self) -> tuple[BridgeConfig, str]:
        config = load_bridge_config(self.config_path)
        return config, identity.identify(config.device.id)[0]

    def data_dir(self, config: BridgeConfig) -> Path:
        return systemd.under(self.root, config.device.data_dir)

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
                session.publish(topic, payload, qos=DEPLOYMENT_QOS, retain=True)
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
            conn = records.open_db_readonly(directory)
            current = records.current(conn) if conn is not None else None
            if conn is not None:
                conn.close()
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
        conn = records.open_db_readonly(directory)
        if conn is None:
            return None
        try:
            return records.latest(conn)
        finally:
            conn.close()

    # ============================================================================ status
    def unreadable(self) -> bool:
        """The configuration exists but this user may not read it (mode 0640, group powerbridge)."""
        return self.config_path.is_file() and not os.access(self.config_path, os.R_OK)

    def status_reduced(self) -> tuple[dict[str, Any], bool]:
        """What a user who may not read the configuration can see: the service, from systemd."""
        problems: list[str] = []
        doc: dict[str, Any] = {
            "v": 1,
            "device_id": None,
            "checked_at": isoformat_utc(self.clock.utcnow()),
            "reduced": True,
            "detail": (
                f"{self.config_path} is not readable by this user: only the service is shown. "
                "For the full status run it with sudo, or join the powerbridge group "
                "(`sudo usermod -aG powerbridge $USER`, then log in again)"
            ),
            "service": self._status_service(problems),
        }
        problems.append("broker, meter and spool not checked: the configuration is not readable")
        doc["healthy"] = False
        doc["problems"] = problems
        return doc, False

    def status(self) -> tuple[dict[str, Any], bool]:
        """The status document (see docs/deployment.md) and whether the bridge is healthy."""
        if self.unreadable():
            return self.status_reduced()
        config, device_id = self.load()
        doc: dict[str, Any] = {
            "v": 1,
            "device_id": device_id,
            "checked_at": isoformat_utc(self.clock.utcnow()),
        }
        problems: list[str] = []
        doc["service"] = self._status_service(problems)
        retained, doc["broker"] = self._status_broker(config, device_id, problems)
        health = _health_or_none(retained.get("health"))
        doc["meter"] = self._status_meter(config, health)
        stopped = doc["service"].get("state") in ("inactive", "failed", "not-installed")
        if stopped and doc["meter"]["link"] is not None:
            # The retained health report is the stopped service's last word, not the meter's.
            last = "answering" if doc["meter"]["link"] else "not answering"
            doc["meter"]["link"] = None
            doc["meter"]["detail"] = (
                f"not read: the service is {doc['service']['state']} (it last reported {last})"
            )
        doc["last_sample"] = self._status_last_sample(config, retained.get("state"))
        doc["spool"] = self._status_spool(config, health)
        doc["deployment"] = self._status_deployment(config, retained.get("deployment"))
        if doc["deployment"] is not None:
            doc["deployment"]["config_changed"] = self._config_changed(doc["deployment"])
        self._judge(config, doc, problems)
        doc["healthy"] = not problems
        doc["problems"] = problems
        return doc, not problems

    def _config_changed(self, deployment: dict[str, Any]) -> bool | None:
        """Whether the configuration file differs from the one deployed (``None``: unknown)."""
        recorded = deployment.get("config_sha256")
        try:
            current = records.config_sha256(self.config_path)
        except OSError:
            return None
        return None if not isinstance(recorded, str) else current != recorded

    def _status_service(self, problems: list[str]) -> dict[str, Any]:
        unit_file = systemd.installed_unit(self.root)
        out: dict[str, Any] = {"unit": systemd.UNIT_NAME, "unit_file": None}
        if unit_file is not None:
            out["unit_file"] = str(unit_file)
        if self.offline or not self.host.systemd_running:
            out["state"] = "unknown"
            out["enabled"] = (
                ("enabled" if systemd.enabled_offline(self.root) else "disabled")
                if unit_file is not None
                else "not-found"
            )
            why = "--root" if self.offline else "systemd is not running here"
            out["detail"] = f"whether it runs is not known ({why})"
            problems.append(f"service state unknown ({why})")
            return out
        out["enabled"] = self.host.enabled_state()
        out["state"] = self.host.active_state() if out["enabled"] != "not-found" else "inactive"
        if out["enabled"] == "not-found":
            out["state"] = "not-installed"
        out["detail"] = f"{out['state']}, {out['enabled']}"
        if out["state"] != "active":
            problems.append(f"service {out['state']}")
        return out

    def _status_broker(
        self, config: BridgeConfig, device_id: str, problems: list[str]
    ) -> tuple[dict[str, bytes], dict[str, Any]]:
        topics = BridgeTopics(config.mqtt.base_topic, device_id)
        wanted = [topics.status, topics.state, topics.health, topics.deployment]
        out: dict[str, Any] = {
            "address": f"{config.mqtt.host}:{config.mqtt.effective_port}",
            "reachable": False,
            "bridge_status": None,
            "detail": "",
        }
        try:
            with BrokerSession(config, device_id, purpose="status").connect(
                self.broker_timeout
            ) as session:
                found = session.retained(wanted, wait=1.0)
        except BrokerProblemError as exc:
            out["detail"] = str(exc)
            out["fix"] = exc.fix
            problems.append(f"broker: {exc}")
            return {}, out
        out["reachable"] = True
        status = found.get(topics.status)
        out["bridge_status"] = status.decode("utf-8", "replace") if status is not None else None
        if out["bridge_status"] != "online":
            out["detail"] = (
                "the broker has never seen this bridge"
                if status is None
                else f"the broker says the bridge is {out['bridge_status']}"
            )
            problems.append(f"bridge {out['bridge_status'] or 'never seen'} on the broker")
        else:
            out["detail"] = "the bridge is connected (online)"
        names = {topics.state: "state", topics.health: "health", topics.deployment: "deployment"}
        return {names[t]: v for t, v in found.items() if t in names}, out

    @staticmethod
    def _status_meter(config: BridgeConfig, health: dict[str, Any] | None) -> dict[str, Any]:
        out: dict[str, Any] = {"type": config.meter.type, "port": config.meter.port, "link": None}
        if config.meter.type == "none":
            out["detail"] = "no meter configured"
            return out
        if health is not None and isinstance(health.get("meter_link"), bool):
            out["link"] = health["meter_link"]
            out["detail"] = "answering" if out["link"] else "not answering"
            if not out["link"] and health.get("last_reading_age_s") is None:
                # A bridge that has just (re)started reports before its first read: not a
                # verdict on the meter.  The newest reading's age is judged instead.
                out["link"] = None
                out["detail"] = "no reading yet since the bridge started"
        else:
            out["detail"] = "unknown (no health report from the bridge)"
        return out

    def _status_last_sample(self, config: BridgeConfig, raw_state: bytes | None) -> dict[str, Any]:
        out: dict[str, Any] = {"ts": None, "age_s": None, "source": None}
        if config.meter.type == "none":
            return out
        ts: datetime | None = None
        if raw_state is not None:
            try:
                ts = StatePayload.decode(raw_state).ts
                out["source"] = "broker"
            except PayloadError:
                ts = None
        if ts is None:
            ts = self._spool_newest_sample(config)
            out["source"] = "spool" if ts is not None else None
        if ts is not None:
            out["ts"] = isoformat_utc(ts)
            out["age_s"] = round((self.clock.utcnow() - ts).total_seconds(), 1)
        return out

    def _spool_newest_sample(self, config: BridgeConfig) -> datetime | None:
        from datetime import UTC

        try:
            conn = records.open_db_readonly(self.data_dir(config))
            if conn is None:
                return None
            try:
                created = read_newest_sample_created(conn)
            finally:
                conn.close()
        except sqlite3.Error:
            return None
        return None if created is None else datetime.fromtimestamp(created, UTC)

    def _status_spool(self, config: BridgeConfig, health: dict[str, Any] | None) -> dict[str, Any]:
        out: dict[str, Any] = {"depth": None, "dropped": None, "oldest_age_s": None, "source": None}
        directory = self.data_dir(config)
        try:
            conn = records.open_db_readonly(directory)
            if conn is not None:
                try:
                    figures = read_figures(conn)
                finally:
                    conn.close()
                out["depth"] = figures.depth
                out["dropped"] = figures.dropped
                if figures.oldest_created is not None:
                    age = self.clock.utcnow().timestamp() - figures.oldest_created
                    out["oldest_age_s"] = round(max(0.0, age), 1)
                out["source"] = "database"
                return out
        except sqlite3.Error as exc:
            out["detail"] = f"cannot read {db_path(directory)}: {exc}"
        if health is not None and isinstance(health.get("spool_depth"), int):
            out["depth"] = health["spool_depth"]
            dropped_h = health.get("spool_dropped")
            out["dropped"] = dropped_h if isinstance(dropped_h, int) else None
            out["source"] = "health"
        return out

    def _status_deployment(
        self, config: BridgeConfig, retained: bytes | None
    ) -> dict[str, Any] | None:
        directory = self.data_dir(config)
        try:
            conn = records.open_db_readonly(directory)
            if conn is not None:
                try:
                    latest = records.latest(conn)
                finally:
                    conn.close()
                if latest is not None:
                    out = latest.to_dict()
                    out["source"] = "database"
                    return out
        except sqlite3.Error:
            pass  # not readable by this user: fall back to what the broker keeps
        data = _json_or_none(retained)
        if data is not None:
            data.pop("v", None)
            data["source"] = "broker"
            return data
        return None

    def _judge(self, config: BridgeConfig, doc: dict[str, Any], problems: list[str]) -> None:
        if config.meter.type == "none":
            return
        if doc["meter"]["link"] is False:
            problems.append("meter not answering")
        age = doc["last_sample"]["age_s"]
        allowed = max(3 * config.meter.interval, SAMPLE_MAX_AGE_MIN_S)
        if age is None:
            problems.append("no reading known")
        elif age > allowed:
            problems.append(f"newest reading {age:.0f} s old (more than {allowed:.0f} s)")


def _same_deployment(kept: records.Deployment, new: records.Deployment) -> bool:
    """A repeated ``start`` with the same details: the open record stays as it is."""
    return (
        kept.name,
        kept.latitude,
        kept.longitude,
        kept.device_id,
        kept.software_version,
        kept.config_sha256,
        kept.config_path,
    ) == (
        new.name,
        new.latitude,
        new.longitude,
        new.device_id,
        new.software_version,
        new.config_sha256,
        new.config_path,
    )


def _to_ms(value: datetime) -> datetime:
    """Millisecond precision: what the database and the payload keep."""
    return value.replace(microsecond=value.microsecond // 1000 * 1000)


def _health_or_none(raw: bytes | None) -> dict[str, Any] | None:
    if raw is None:
        return None
    try:
        return HealthPayload.decode(raw).to_dict()
    except PayloadError:
        return None


def _json_or_none(raw: bytes | None) -> dict[str, Any] | None:
    if raw is None:
        return None
    try:
        return loads_object(raw)
    except PayloadError:
        return None


def format_status(doc: dict[str, Any]) -> str:
    """The status document as lines for people."""
    if doc.get("reduced"):
        svc = doc["service"]
        lines = ["bridge: reduced view (cannot tell whether it is healthy)"]
        lines.append(f"  service      {svc['state']} ({svc['enabled']})")
        lines.append(f"  note         {doc['detail']}")
        lines.extend(f"  ✗ {problem}" for problem in doc["problems"])
        return "\n".join(lines)
    lines = [f"bridge {doc['device_id']}: {'healthy' if doc['healthy'] else 'NOT HEALTHY'}"]
    svc = doc["service"]
    lines.append(f"  service      {svc['state']} ({svc['enabled']})")
    broker = doc["broker"]
    link = "reachable" if broker["reachable"] else "unreachable"
    lines.append(f"  broker       {broker['address']} {link}; {broker['detail']}")
    meter = doc["meter"]
    port = f" on {meter['port']}" if meter["port"] else ""
    lines.append(f"  meter        {meter['type']}{port} — {meter['detail']}")
    sample = doc["last_sample"]
    if sample["age_s"] is not None:
        lines.append(
            f"  last sample  {sample['age_s']:.1f} s ago ({sample['ts']}, {sample['source']})"
        )
    else:
        lines.append("  last sample  unknown")
    spool = doc["spool"]
    depth = "unknown" if spool["depth"] is None else f"{spool['depth']} undelivered"
    dropped = "" if not spool["dropped"] else f", {spool['dropped']} dropped"
    lines.append(f"  spool        {depth}{dropped}")
    dep = doc["deployment"]
    if dep is None:
        lines.append("  deployment   none recorded")
    else:
        state = "since" if dep.get("active", dep.get("ended") is None) else "ended"
        when = dep.get("started") if state == "since" else dep.get("ended")
        lines.append(
            f'  deployment   "{dep.get("name")}" at {dep.get("latitude")}, {dep.get("longitude")}'
            f" {state} {when}"
        )
        if dep.get("config_changed"):
            lines.append("               the configuration file has changed since it started")
    lines.extend(f"  ✗ {problem}" for problem in doc["problems"])
    return "\n".join(lines)
