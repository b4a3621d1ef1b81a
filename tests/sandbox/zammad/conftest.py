"""Fixtures shared by the Zammad sandbox tests; a module overrides ``zammad`` when it needs a
hand-moved clock or fast webhook retries."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from connector.sandbox.zammad import ZammadSandbox
from tests.clock import Clock
from tests.sandbox.zammad import START, Api


@pytest.fixture
def clock() -> Clock:
    return Clock(START)


@pytest.fixture
def zammad() -> Iterator[ZammadSandbox]:
    with ZammadSandbox() as sandbox:
        yield sandbox


@pytest.fixture
def api(zammad: ZammadSandbox) -> Iterator[Api]:
    client = Api(zammad.base_url)
    yield client
    client.close()
