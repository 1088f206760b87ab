"""The broker check: connect as the bridge, then publish and read back on its own topics."""

from __future__ import annotations

import time
import uuid

from bridge.deployment.checks._base import CheckContext, CheckResult, fail, passed
from bridge.mqtt.contract import BridgeTopics
from bridge.mqtt.session import BrokerProblemError, BrokerSession


def _acl_fix(username: str | None, device_id: str, root: str) -> str:
    """What to do when the ACL refuses the bridge its topics."""
    expected = f"bridge-{device_id}"
    if username and username.startswith("bridge-") and username != expected:
        other = username.removeprefix("bridge-")
        return (
            f"user {username} is the broker's user for device id {other}, not {device_id}: "
            f"set device.id: {other} in the configuration (or, for a new id, create its user "
            f"with `powerbridge broker add-bridge {device_id}` and use mqtt.username: {expected})"
        )
    return (
        f"give {username} readwrite on {root}/# in the broker's ACL "
        f"(`powerbridge broker add-bridge {device_id}` writes it for user {expected})"
    )


def check_broker(ctx: CheckContext) -> CheckResult:
    topics = BridgeTopics(ctx.cfg.mqtt.base_topic, ctx.did)
    session = BrokerSession(ctx.cfg, ctx.did)
    started = time.monotonic()
    try:
        session.connect(ctx.broker_timeout)
    except BrokerProblemError as exc:
        return fail("broker", str(exc), exc.fix, problem=exc.kind, user=session.username)
    try:
        token = uuid.uuid4().hex.encode()
        if not session.subscribe(topics.check):
            return fail(
                "broker",
                f"connected as {session.username}, but the ACL refuses it {topics.check}",
                _acl_fix(session.username, ctx.did, topics.root),
                problem="denied",
            )
        session.publish(topics.check, token, qos=1)
        if not session.expect(topics.check, token, timeout=3.0):
            return fail(
                "broker",
                f"connected as {session.username}, but a message published on {topics.check} "
                "never came back: the ACL does not let this bridge publish its topics",
                _acl_fix(session.username, ctx.did, topics.root),
                problem="denied",
            )
    except BrokerProblemError as exc:
        return fail("broker", str(exc), exc.fix, problem=exc.kind)
    finally:
        session.close()
    elapsed_ms = (time.monotonic() - started) * 1000
    tls = " over TLS" if ctx.cfg.mqtt.tls.enabled else ""
    return passed(
        "broker",
        f"{session.where}{tls} accepts {session.username}; published and read back on "
        f"{topics.root}/ in {elapsed_ms:.0f} ms",
        user=session.username,
        round_trip_ms=round(elapsed_ms, 1),
    )
