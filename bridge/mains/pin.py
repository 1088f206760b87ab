"""The mains-sense GPIO pin, and mains simulation on a mock pin.

:class:`MainsPin` opens a gpiozero ``DigitalInputDevice`` (``bounce_time``, pull and
polarity from ``mains.*``) and reports each change of level as "mains present or
not" through ``when_activated``/``when_deactivated`` — never by polling.  With
``simulation.enabled`` the pin is a gpiozero ``MockFactory`` pin that starts with
mains present and that :meth:`MainsPin.drive` moves.  :func:`simulate_command` is the
``cmd/simulate`` handler: it drives the simulated pin and every simulated source that
follows the mains (the simulated meter), and it is refused on a bridge without
simulation, so a real bridge's mains reading cannot be cut from the network.

Wiring of the classic sensor: a USB phone charger on the *unprotected* side feeds
5 V through an 18 kΩ / 33 kΩ divider (≈3.2 V) into GPIO 4 with the pull-down on;
never put 5 V on a GPIO pin.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from bridge.config.bridge import MainsConfig
from bridge.errors import PowerbridgeError, UsageError
from bridge.model import MainsState

log = logging.getLogger(__name__)


class MainsPinError(PowerbridgeError):
    """The mains-sense GPIO pin cannot be opened (no GPIO here, busy, no permission)."""


class MainsPin:
    """One open mains-sense input; ``on_level(present)`` is called on gpiozero's thread."""

    def __init__(
        self, config: MainsConfig, *, pin_factory: Any | None = None, simulation: bool = False
    ) -> None:
        self.config = config
        self.simulation = simulation
        self._factory = pin_factory
        self._device: Any | None = None
        self._invert = False

    def open(self, on_level: Callable[[bool], None]) -> bool:
        """Open the pin, report its changes to ``on_level``; return whether mains is present."""
        from gpiozero import DigitalInputDevice, GPIOZeroError

        factory = self._factory
        if self.simulation and factory is None:
            from gpiozero.pins.mock import MockFactory

            factory = MockFactory()
        config = self.config
        pull_up = {"up": True, "down": False, "none": None}[config.pull]
        kwargs: dict[str, Any] = {
            "pull_up": pull_up,
            "bounce_time": config.bounce_time or None,
            "pin_factory": factory,
        }
        if pull_up is None:
            kwargs["active_state"] = config.active_high
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # gpiozero's fallback warnings: we report below
                device = DigitalInputDevice(config.pin, **kwargs)
        except (GPIOZeroError, OSError, RuntimeError, ImportError) as exc:
            raise MainsPinError(
                f"cannot open the mains-sense pin GPIO{config.pin}: "
                f"{exc or type(exc).__name__}"
                " (is another powerbridge running? on a machine without GPIO, set"
                " simulation.enabled: true)"
            ) from exc
        # gpiozero fixes the polarity for pulled pins (pull-up ⇒ active low); ours is free.
        gpio_active_high = config.active_high if pull_up is None else not pull_up
        self._invert = gpio_active_high != config.active_high
        self._device = device
        if self.simulation:
            self.drive(MainsState.ON)  # a simulated bridge starts with mains present
        device.when_activated = lambda: on_level(not self._invert)
        device.when_deactivated = lambda: on_level(self._invert)
        return bool(device.is_active) != self._invert

    def drive(self, state: MainsState) -> None:
        """Move the (mock) pin to the level that means ``state``."""
        device = self._device
        if device is None:
            raise UsageError("the mains sensor is not started")
        if (state is MainsState.ON) == self.config.active_high:
            device.pin.drive_high()
        else:
            device.pin.drive_low()

    def close(self) -> None:
        """Detach the callbacks and release the pin (idempotent)."""
        device, self._device = self._device, None
        if device is not None:
            device.when_activated = None
            device.when_deactivated = None
            device.close()


def simulated_state(state: MainsState | str, *, enabled: bool) -> MainsState:
    """The state a ``simulate`` request asks for; refused (logged) without simulation."""
    if not enabled:
        log.warning(
            "refused a request to simulate mains %s: simulation is not enabled on this bridge",
            state,
        )
        raise UsageError("mains simulation refused: simulation.enabled is false on this bridge")
    try:
        target = MainsState(state)
    except ValueError:
        raise UsageError(f"cannot simulate mains {state!r}: use 'on' or 'off'") from None
    if target is MainsState.UNKNOWN:
        raise UsageError("cannot simulate mains 'unknown': use 'on' or 'off'")
    return target


class Simulated(Protocol):
    """A mains input that simulation can drive (:class:`~bridge.mains.sensor.MainsSensor`)."""

    def simulate(self, state: MainsState | str) -> None: ...


def simulate_command(
    sensor: Simulated, followers: Sequence[Callable[[bool], None]] = ()
) -> Callable[[dict[str, Any]], None]:
    """The ``cmd/simulate`` handler: drive the mains pin, then each follower (mains present?).

    A simulated meter follows the simulated mains (0 V, or a silent PZEM), so that
    ``mains.source: meter|any|all`` can be tried without hardware too.
    """

    def handle(args: dict[str, Any]) -> None:
        state = args.get("mains")
        if not isinstance(state, str):
            raise UsageError("simulate needs args.mains = 'on' or 'off'")
        sensor.simulate(state)
        for follow in followers:
            follow(state == "on")

    return handle
