"""Bridges' ``samples`` batches for the archive benchmarks, published from a child process.

``python -m tests.benchmarks.archive_feed SPEC.json`` publishes, for every device in the
spec, samples ``1..count`` (one second apart, ending at ``end``) in batches of
``batch`` at QoS 1, as the bridges' spools replay them: byte for byte the canonical
JSON of :func:`bridge.mqtt.contract.encode_sample_batch`, built from a template (the
feeder must outrun the archive it measures).  ``rate`` > 0 paces the devices to that
many samples per second in total (live batches, every ``interval`` s); 0 floods.
Prints one JSON line when every batch is acknowledged by the broker.
"""

from __future__ import annotations

import json
import math
import sys
import threading
import time
from datetime import datetime, timedelta
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from bridge.clock import isoformat_utc
from bridge.mqtt.contract import encode_sample_batch


def bodies(first: int, last: int, stamps: list[str], offset: int) -> list[bytes]:
    out = []
    for seq in range(first, last + 1):
        power = 180.0 + 70.0 * math.sin(seq / 13751.0) + (seq * 7919 % 13)
        out.append(
            b'{"ch":1,"current_a":%.3f,"energy_wh":%.1f,"power_w":%.1f,"seq":%d,'
            b'"ts":"%s","voltage_v":%.2f}'
            % (power / 230, 1000 + seq * 0.05, power, seq, stamps[seq - offset].encode(),
               230.0 + (seq % 7) / 20)
        )  # fmt: skip
    return out


def main(spec_path: str) -> int:
    spec = json.loads(Path(spec_path).read_text())
    count, batch, rate = int(spec["count"]), int(spec["batch"]), float(spec["rate"])
    devices: list[str] = spec["devices"]
    end = datetime.fromisoformat(spec["end"])
    first_ts = end - timedelta(seconds=count - 1)
    stamps = [isoformat_utc(first_ts + timedelta(seconds=i)) for i in range(count)]
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2, client_id=f"feed-{spec['name']}", protocol=mqtt.MQTTv311
    )
    client.username_pw_set(spec["username"], spec["password"])
    client.max_inflight_messages_set(int(spec.get("inflight", 50)))
    client.max_queued_messages_set(0)
    acked = threading.Semaphore(0)
    client.on_publish = lambda *_a: acked.release()
    client.connect(spec["host"], int(spec["port"]), 60)
    client.loop_start()
    started = time.monotonic()
    published = 0
    interval = float(spec.get("interval", 0.5))
    per_tick = max(1, round(rate * interval / len(devices))) if rate > 0 else batch
    next_tick = time.monotonic()
    for first in range(1, count + 1, per_tick):
        last = min(count, first + per_tick - 1)
        chunk = bodies(first, last, stamps, 1)
        for device in devices:
            for i in range(0, len(chunk), batch):
                payload = encode_sample_batch(device, chunk[i : i + batch])
                client.publish(f"powerbridge/{device}/samples", payload, qos=1)
                published += 1
        if rate > 0:
            next_tick += interval
            time.sleep(max(0.0, next_tick - time.monotonic()))
    for _ in range(published):
        acked.acquire()
    done = time.monotonic()
    client.disconnect()
    client.loop_stop()
    print(json.dumps({"messages": published, "samples": count * len(devices),
                      "publish_s": round(done - started, 3)}), flush=True)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
