"""``powerbridge demo``: the whole system on one machine, with no Pi and no meter.

``stack`` starts a private Mosquitto, the real bridge (simulated meter behind a
pseudo-terminal, mock mains pin) and the real shutdown client (dry run) from
generated configurations; ``scenario`` holds the timings, what each phase must
produce and the comparison; ``runner`` plays it with the live view of
:mod:`bridge.tui`.
"""

from bridge.demo.runner import DemoOptions, run_demo
from bridge.demo.scenario import Timings

__all__ = ["DemoOptions", "Timings", "run_demo"]
