"""Times for people: a number of seconds in the unit that suits its size.

A *scale* is a table of ``(below, seconds per unit, format)`` rows, smallest first: the
first row whose ``below`` the value is under formats it.  Pages and screens declare
their own scale (how precise each range is) instead of repeating the ``if`` ladder.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Final

Scale = Sequence[tuple[float, float, str]]

AGE: Final[Scale] = (
    (120, 1, "{:.0f} s"),
    (7200, 60, "{:.0f} min"),
    (172_800, 3600, "{:.1f} h"),
    (math.inf, 86400, "{:.1f} d"),
)
"""How long ago: ``42 s``, ``17 min``, ``5.5 h``, ``3.2 d``."""


def scaled(seconds: float, scale: Scale) -> str:
    """``seconds`` in the first unit of ``scale`` it is below (the last one otherwise)."""
    for below, unit, fmt in scale:
        if seconds < below:
            return fmt.format(seconds / unit)
    _, unit, fmt = scale[-1]
    return fmt.format(seconds / unit)
