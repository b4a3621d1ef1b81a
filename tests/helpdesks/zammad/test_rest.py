"""rest.py: authentication as Zammad checks it, over a real socket to the sandbox."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from connector.errors import PermanentError
from connector.helpdesks.zammad import ZammadApi, load_options
from connector.sandbox.zammad import ZammadSandbox
from connector.sandbox.zammad.server import INTEGRATION_LOGIN

from .conftest import zammad_instance

PASSWORDS = ["пароль-интеграции", "päss wörd", "plain-ascii:with:colons"]


class KeepingSession(requests.Session):
    """A real session that also remembers the headers of every request it sent."""

    def __init__(self) -> None:
        super().__init__()
        self.authorizations: list[str | bytes | None] = []

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        self.authorizations.append(request.headers.get("Authorization"))
        return super().send(request, **kwargs)


@pytest.fixture
def session() -> Iterator[KeepingSession]:
    with KeepingSession() as kept:
        yield kept


def basic_api(zammad: ZammadSandbox, password: str, session: requests.Session) -> ZammadApi:
    instance = zammad_instance(zammad.base_url, api_auth="basic", api_user=INTEGRATION_LOGIN)
    options = load_options(instance, {})
    return ZammadApi("main", zammad.base_url, password, options, timeout=5, session=session)


@pytest.mark.parametrize("password", PASSWORDS)
def test_basic_auth_sends_the_credentials_as_utf8(
    zammad: ZammadSandbox, session: KeepingSession, password: str
) -> None:
    """RFC 7617: Zammad compares the decoded bytes with the UTF-8 password. ``requests``' own
    basic auth encodes Latin-1: Cyrillic raised UnicodeEncodeError, ``ä`` was a wrong byte."""
    zammad.set_password(INTEGRATION_LOGIN, password)
    api = basic_api(zammad, password, session)
    me = api.get_json("/api/v1/users/me")
    assert me["id"] == zammad.integration_user_id
    credentials = base64.b64encode(f"{INTEGRATION_LOGIN}:{password}".encode()).decode()
    assert session.authorizations == [f"Basic {credentials}"]


def test_a_wrong_basic_password_is_permanent_and_not_echoed(
    zammad: ZammadSandbox, session: KeepingSession
) -> None:
    zammad.set_password(INTEGRATION_LOGIN, "правильный")
    api = basic_api(zammad, "неправильный-пароль", session)
    with pytest.raises(PermanentError, match=r"-> 401 .*Invalid BasicAuth credentials") as caught:
        api.get_json("/api/v1/users/me")
    assert "неправильный-пароль" not in str(caught.value)
