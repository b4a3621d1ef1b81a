"""Fixtures shared by the Zammad sandbox tests; a module overrides ``zammad`` when it needs a
hand-moved clock or fast webhook retries."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from connector.sandbox.zammad import ZammadSandbox
from tests.sandbox.zammad import Api, Clock


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def zammad() -> Iterator[ZammadSandbox]:
    with ZammadSandbox() as sandbox:
        yield sandbox


@pytest.fixture
def api(zammad: ZammadSandbox) -> Iterator[Api]:
    client = Api(zammad.base_url)
    yield client
    client.close()
