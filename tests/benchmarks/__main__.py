"""Run the benchmarks: ``./dev bench [NAME ...] [--smoke]``.

Each ``tests/benchmarks/bench_<name>.py`` exposes ``run(smoke: bool) -> dict`` returning
JSON-ready figures.  Results are merged into ``bench-results.json`` (one key per
benchmark, plus the machine description), so one benchmark can be re-run alone.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]


def available() -> list[str]:
    return sorted(p.stem.removeprefix("bench_") for p in HERE.glob("bench_*.py"))


def machine() -> dict[str, object]:
    cpu = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "system": f"{platform.system()} {platform.release()}",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="./dev bench", description=__doc__)
    parser.add_argument("names", nargs="*", help=f"benchmarks to run (default all: {available()})")
    parser.add_argument("--smoke", action="store_true", help="tiny counts: check they still work")
    parser.add_argument("--out", type=Path, default=ROOT / "bench-results.json")
    args = parser.parse_args(argv)
    names = args.names or available()
    results: dict[str, object] = {}
    if args.out.exists() and not args.smoke:
        results = json.loads(args.out.read_text())
    results["machine"] = machine()
    for name in names:
        module = importlib.import_module(f"tests.benchmarks.bench_{name}")
        print(f"== {name}", file=sys.stderr, flush=True)
        started = time.monotonic()
        results[name] = module.run(smoke=args.smoke)
        print(f"   done in {time.monotonic() - started:.1f} s", file=sys.stderr, flush=True)
        print(json.dumps(results[name], indent=2), file=sys.stderr)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.out}", file=sys.stderr)
    render = HERE / "render.py"
    if render.exists() and not args.smoke:
        renderer = importlib.import_module("tests.benchmarks.render")
        # The archive's figures have a block of their own: `./dev bench archive` alone
        # must not turn the other figures into "not measured".
        if {t.source for t in renderer.TARGETS} & set(results):
            renderer.main(args.out)
        if "archive" in results:
            importlib.import_module("tests.benchmarks.render_archive").main(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
