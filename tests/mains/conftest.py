"""Fixtures of the mains tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from gpiozero.pins.mock import MockFactory


@pytest.fixture
def factory() -> Iterator[MockFactory]:
    """gpiozero's mock pins, closed after the test."""
    f = MockFactory()
    yield f
    f.close()
