"""powerbridge: a power-monitoring bridge for UPS-protected machines.

The package is laid out as the architecture: *sources* (``meters``, ``mains``,
``health``) produce typed facts (``model``); *sinks* (``mqtt``, ``leds``)
publish them; ``shutdown`` is the client side that decides; ``daemon`` only
wires things together.  See ``docs/architecture.md``.
"""

from importlib import metadata as _metadata

try:
    __version__ = _metadata.version("powerbridge")
except _metadata.PackageNotFoundError:  # pragma: no cover - running from a bare source tree
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
