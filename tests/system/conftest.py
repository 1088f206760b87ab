"""Fixtures of the system tier: booted Debian 12 containers (see ``_container.py``).

A machine that cannot boot a container skips the tier with the exact reason (printed by
``-ra``); with ``CI=true`` that is a failure instead, so CI cannot pass without the tier.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.system._container import (
    Container,
    Image,
    Netns,
    UnavailableError,
    prepare_guide_image,
    prepare_image,
)

Boot = Callable[..., Container]


def unavailable(reason: str) -> None:
    message = f"system tier: cannot boot a container: {reason}"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{message} (CI=true: the tier must run in CI)", pytrace=False)
    pytest.skip(message)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.system)


@pytest.fixture(scope="session")
def image(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Image]:
    scratch = tmp_path_factory.mktemp("system-image")
    try:
        prepared = prepare_image(scratch)
    except UnavailableError as exc:
        unavailable(str(exc))
    yield prepared
    shutil.rmtree(scratch / "session", ignore_errors=True)


@pytest.fixture
def netns() -> Iterator[Netns]:
    try:
        ns = Netns()
    except UnavailableError as exc:
        unavailable(str(exc))
    yield ns
    ns.delete()


@pytest.fixture(scope="session")
def guide_image(tmp_path_factory: pytest.TempPathFactory) -> Image:
    """Nothing of powerbridge installed: the install guide installs it (``_container.py``)."""
    try:
        return prepare_guide_image(tmp_path_factory.mktemp("guide-image"))
    except UnavailableError as exc:
        unavailable(str(exc))
        raise  # unreachable: unavailable() skips or fails


def _booter(image: Image, netns: Netns, tmp_path: Path) -> Iterator[Boot]:
    started: list[Container] = []

    def _boot(
        name: str, *, binds: list[str] | None = None, masked: list[str] | None = None
    ) -> Container:
        try:
            box = Container(
                image,
                tmp_path / name,
                name=name,
                netns=netns,
                binds=binds or [],
                masked=masked or [],
            )
        except UnavailableError as exc:
            unavailable(str(exc))
        started.append(box)
        try:
            box.boot()
        except UnavailableError as exc:
            unavailable(str(exc))
        return box

    yield _boot
    for box in reversed(started):
        box.close()


@pytest.fixture
def boot(image: Image, netns: Netns, tmp_path: Path) -> Iterator[Boot]:
    """``boot(name, binds=[...])``: a booted container in the test's network namespace."""
    yield from _booter(image, netns, tmp_path)


@pytest.fixture
def boot_bare(guide_image: Image, netns: Netns, tmp_path: Path) -> Iterator[Boot]:
    """As ``boot``, from the stack without powerbridge (for the install guide)."""
    yield from _booter(guide_image, netns, tmp_path)
