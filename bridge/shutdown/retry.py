"""How the shutdown client tries again: the one place, for everything paho does not retry.

* The MQTT connection: paho's own exponential reconnect backoff, from
  ``mqtt.reconnect_min`` to ``mqtt.reconnect_max``
  (:func:`bridge.mqtt.paho.set_reconnect_backoff`); nothing here wraps it.
* Finding the broker by mDNS (``mqtt.host: auto``): :func:`until_found`, exponential
  from :data:`BROWSE_FIRST_S` to ``retry_max`` (60 s), driven by tenacity, until a
  broker is found or the client stops.
* A shutdown whose every command failed: tried again :data:`SHUTDOWN_AGAIN_S` later,
  for as long as it is due (the runtime's loop wakes for it; no thread sleeps).
* An unexpected error in the decision loop: logged, and the loop decides again after
  :data:`LOOP_ERROR_PAUSE_S` (a bug must never end the watch).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Final, TypeVar

T = TypeVar("T")

BROWSE_FIRST_S: Final = 2.0
"""First wait before browsing for the broker again; doubles up to ``retry_max``."""
SHUTDOWN_AGAIN_S: Final = 60.0
"""A shutdown whose every command failed is tried again this long after, while it is due."""
LOOP_ERROR_PAUSE_S: Final = 1.0
"""After an unexpected error in the decision loop, decide again this long after."""


def until_found(
    attempt: Callable[[], T | None], *, stop: threading.Event, first: float, most: float
) -> T | None:
    """Call ``attempt`` until it returns something, waiting ``first``, ``2 × first``, …
    up to ``most`` seconds in between; ``None`` once ``stop`` is set (checked before every
    attempt, and the waits end early when it is set)."""
    # Imported here: the runtime imports this module's constants, and the Home Assistant
    # test environment, which imports the runtime, has no tenacity.
    import tenacity

    def once() -> T | None:
        return None if stop.is_set() else attempt()

    def pause(seconds: float) -> None:
        stop.wait(seconds)

    retrying = tenacity.Retrying(
        retry=tenacity.retry_if_result(lambda result: result is None),
        wait=tenacity.wait_exponential(multiplier=first, min=first, max=most),
        stop=lambda _state: stop.is_set(),
        sleep=pause,
        retry_error_callback=lambda _state: None,
    )
    return retrying(once)
