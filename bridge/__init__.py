"""powerbridge: a power-monitoring bridge for UPS-protected machines.

The package is laid out as the architecture: *sources* (``meters``, ``mains``,
``health``) produce typed facts (``model``); *sinks* (``mqtt``, ``leds``)
publish them; ``shutdown`` is the client side that decides; ``daemon`` only
wires things together.  See ``docs/architecture.md``.
"""

# The single source of the version: pyproject.toml reads it from here. A literal (not
# importlib.metadata) keeps start-up light: the shutdown client on a PC imports this.
__version__ = "0.1.0"

__all__ = ["__version__"]
