"""`powerbridge simulate`: drive a simulation-mode bridge (cut or restore its mains)."""

from __future__ import annotations

import argparse
import secrets
import sys
import time
from typing import Any

from bridge.cli._common import add_command, add_config_option
from bridge.errors import BrokerError, ExitCode, PayloadError, UsageError

DESCRIPTION = """\
Cut or restore the mains of a bridge running with `simulation.enabled: true`, from
outside its process: a `simulate` command is published on the bridge's
`<base>/<device_id>/cmd/simulate` topic with the broker settings (and signing key)
of the configuration. A bridge without simulation refuses the command and logs it,
so a real bridge's mains reading can never be cut this way.

  powerbridge simulate mains off -c sim.yaml            # cut
  powerbridge simulate mains on  -c sim.yaml --wait 10  # restore; wait for the announcement

With --wait, the command waits until the bridge announces the new state on its
`mains` topic (after its confirmation window) and exits 1 if it does not.
"""


def register(subparsers: Any) -> None:
    parser = add_command(
        subparsers,
        "simulate",
        "drive a simulation-mode bridge (cut or restore its mains)",
        _usage,
        description=DESCRIPTION,
    )
    targets = parser.add_subparsers(dest="target", metavar="TARGET", title="targets")
    mains = add_command(
        targets,
        "mains",
        "cut (off) or restore (on) the simulated mains",
        run_mains,
        description=DESCRIPTION,
    )
    mains.add_argument("state", choices=("off", "on"), help="the mains state to simulate")
    mains.add_argument(
        "--device",
        metavar="ID",
        help="the bridge to drive (default: the device id of the configuration)",
    )
    mains.add_argument(
        "--wait",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="wait up to SECONDS for the bridge to announce the new state (default: don't)",
    )
    add_config_option(mains)


def _usage(_args: argparse.Namespace) -> int:
    raise UsageError("say what to simulate: `powerbridge simulate mains off|on`")


def build_command(topic: str, state: str, *, key_file: str | None, now: Any = None) -> bytes:
    """The ``simulate`` command for ``topic``, signed over payload and topic with a key."""
    from datetime import UTC, datetime

    from bridge.mqtt.contract import CommandPayload, dumps
    from bridge.mqtt.signing import SigningKeyError, load_key, sign

    command = CommandPayload(
        name="simulate",
        args={"mains": state},
        ts=now or datetime.now(UTC),
        nonce=secrets.token_hex(8),
    )
    body = command.to_dict()
    if key_file:
        try:
            body = sign(load_key(key_file), body, topic=topic)
        except SigningKeyError as exc:
            raise UsageError(f"signing.key_file: {exc}") from None
    return dumps(body)


def run_mains(args: argparse.Namespace) -> int:
    from bridge.config import load_bridge_config
    from bridge.identity import device_id
    from bridge.mqtt.contract import QOS_CMD, BridgeTopics
    from bridge.mqtt.session import BrokerProblemError, BrokerSession

    if args.wait < 0:
        raise UsageError("--wait must be 0 or more seconds")
    config = load_bridge_config(args.config)
    own_id = device_id(config)
    target = args.device or own_id
    topics = BridgeTopics(config.mqtt.base_topic, target)
    payload = build_command(topics.cmd("simulate"), args.state, key_file=config.signing.key_file)
    try:
        with BrokerSession(config, own_id, purpose="simulate").connect() as session:
            previous: tuple[int, str] | None = None
            if args.wait:
                if not session.subscribe(topics.mains):
                    raise UsageError(
                        f"user {session.username} may not read {topics.mains}; run without"
                        " --wait, or with the configuration of that bridge"
                    )
                previous = _current(session, topics.mains)
            session.publish(topics.cmd("simulate"), payload, qos=QOS_CMD)
            print(f"sent: simulate mains {args.state} → {topics.cmd('simulate')}", flush=True)
            if not args.wait:
                return int(ExitCode.OK)
            if previous is not None and previous[1] == args.state:
                print(f"bridge {target} already announces mains {args.state} (seq {previous[0]})")
                return int(ExitCode.OK)
            after = previous[0] if previous is not None else None
            seq = _wait_for(session, topics.mains, args.state, after, args.wait)
    except BrokerProblemError as exc:
        raise BrokerError(f"{exc}\n  fix: {exc.fix}") from None
    if seq is None:
        print(
            f"powerbridge: bridge {target} did not announce mains {args.state} within"
            f" {args.wait:g} s (is it running with simulation.enabled: true? otherwise it"
            " refuses the command and logs it)",
            file=sys.stderr,
        )
        return int(ExitCode.FAILURE)
    print(f"bridge {target} announced mains {args.state} (seq {seq})", flush=True)
    return int(ExitCode.OK)


def _current(session: Any, topic: str) -> tuple[int, str] | None:
    """``seq`` and state of the retained ``mains`` message, if there is one."""
    from bridge.mqtt.contract import MainsPayload

    deadline = time.monotonic() + 0.5
    while (left := deadline - time.monotonic()) > 0:
        msg = _next(session, left)
        if msg is not None and msg.topic == topic:
            try:
                mains = MainsPayload.decode(msg.payload)
            except PayloadError:
                return None
            return mains.seq, mains.state.value
    return None


def _wait_for(
    session: Any, topic: str, state: str, previous: int | None, timeout: float
) -> int | None:
    """Wait for a ``mains`` message announcing ``state`` newer than ``previous``."""
    from bridge.mqtt.contract import MainsPayload

    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        msg = _next(session, left)
        if msg is None or msg.topic != topic:
            continue
        try:
            mains = MainsPayload.decode(msg.payload)
        except PayloadError:
            continue
        if mains.state.value == state and (previous is None or mains.seq > previous):
            return mains.seq
    return None


def _next(session: Any, timeout: float) -> Any:
    import queue

    try:
        return session.messages.get(timeout=timeout)
    except queue.Empty:
        return None
