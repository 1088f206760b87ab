"""``powerbridge deployment status``: what the service, the broker, the meter, the spool and
the record say, as one health verdict.

Read-only: the retained topics are read with one short broker session, the JSON
ones decoded through the contract's typed payloads; the bridge database is opened read-only
(the daemon may be writing it) and read only through its owners' accessors
(:mod:`bridge.mqtt.spool` for the spool, :mod:`bridge.deployment.records` for the
record).  What the database does not show (a user who may not read it) is taken
from the broker's retained copies.
"""

from __future__ import annotations

import os
import sqlite3
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from bridge import identity
from bridge.clock import Clock, SystemClock, isoformat_utc
from bridge.config import BridgeConfig, load_bridge_config
from bridge.db import db_path
from bridge.deployment import records, systemd
from bridge.errors import PayloadError
from bridge.mqtt.contract import BridgeTopics, DeploymentPayload, HealthPayload, StatePayload
from bridge.mqtt.session import BrokerProblemError, BrokerSession
from bridge.mqtt.spool import read_figures, read_newest_sample_created

SAMPLE_MAX_AGE_MIN_S: Final = 10.0
"""A newest reading older than ``max(3 × meter.interval, this)`` counts as stale."""


@dataclass
class StatusReader:
    """What start, stop and status share (where the configuration is, the host, the
    clock), and the status itself.  :class:`~bridge.deployment.lifecycle.Deployer`
    extends it with the steps that change the system."""

    config_path: Path
    root: Path = Path("/")
    host: systemd.Host = field(default_factory=systemd.Host)
    clock: Clock = field(default_factory=SystemClock)
    broker_timeout: float = 5.0

    @property
    def offline(self) -> bool:
        """No host tool is asked (``--root``)."""
        return self.root.resolve() != Path("/")

    def load(self) -> tuple[BridgeConfig, str]:
        """The bridge's configuration and the device id it resolves to."""
        config = load_bridge_config(self.config_path)
        return config, identity.identify(config.device.id)[0]

    def data_dir(self, config: BridgeConfig) -> Path:
        return systemd.under(self.root, config.device.data_dir)

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
        try:
            with records.reading(self.data_dir(config)) as conn:
                created = None if conn is None else read_newest_sample_created(conn)
        except sqlite3.Error:
            return None
        return None if created is None else datetime.fromtimestamp(created, UTC)

    def _status_spool(self, config: BridgeConfig, health: dict[str, Any] | None) -> dict[str, Any]:
        out: dict[str, Any] = {"depth": None, "dropped": None, "oldest_age_s": None, "source": None}
        directory = self.data_dir(config)
        try:
            with records.reading(directory) as conn:
                figures = None if conn is None else read_figures(conn)
            if figures is not None:
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
            with records.reading(directory) as conn:
                latest = None if conn is None else records.latest(conn)
            if latest is not None:
                out = latest.to_dict()
                out["source"] = "database"
                return out
        except sqlite3.Error:
            pass  # not readable by this user: fall back to what the broker keeps
        if retained is None:
            return None
        try:
            data = DeploymentPayload.decode(retained).to_dict()
        except PayloadError:
            return None
        data.pop("v", None)
        data["source"] = "broker"
        return data

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


def _health_or_none(raw: bytes | None) -> dict[str, Any] | None:
    if raw is None:
        return None
    try:
        return HealthPayload.decode(raw).to_dict()
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
