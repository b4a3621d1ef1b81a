"""Property tests of the webhook route for every helpdesk kind, through the real app and store.

Whatever an authenticated sender posts, the edge either stores it and answers 2xx, or stores
nothing and answers a 4xx with a JSON ``{"error", "detail"}`` body; never a 5xx, which a
helpdesk would retry for as long as it retries (Zammad four times, Znuny as configured) and
which would page an operator for what is bad input. Every request here passes authentication
(the body is signed or the credentials are right), so hypothesis reaches the parsers and the
store: arbitrary JSON, valid payloads with one value replaced or removed, raw bytes, and the
same JSON in other encodings.
"""

from __future__ import annotations

import copy
import json
import sys
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from sqlalchemy import select

from connector.helpdesks.signatures import sign
from connector.pipeline.db import events
from connector.service import Service
from connector.settings import Settings
from tests.helpdesks.zammad.conftest import SECRET as ZAMMAD_SECRET
from tests.helpdesks.zammad.conftest import fixture as zammad_fixture
from tests.helpdesks.zammad.conftest import rails_json, zammad_instance
from tests.helpdesks.znuny import basic, znuny_instance
from tests.helpdesks.znuny import fixture as znuny_fixture
from tests.strategies import json_values, one_change

from .conftest import ADMIN_TOKEN, WEBHOOK_SECRET, make_settings, row_counts

EXAMPLES = hypothesis_settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@dataclass(frozen=True)
class Kind:
    """How one helpdesk kind's webhooks are addressed and authenticated."""

    name: str
    url: str
    #: a valid body as the helpdesk sends it
    payload: dict[str, Any]
    #: the headers that authenticate ``body`` (with a fresh delivery id where the kind has one)
    headers: Callable[[bytes], dict[str, str]]
    encode: Callable[[object], bytes]


def _fake_headers(body: bytes) -> dict[str, str]:
    return {"X-Fake-Token": WEBHOOK_SECRET, "X-Fake-Delivery": str(uuid.uuid4())}


def _zammad_headers(body: bytes) -> dict[str, str]:
    return {
        "X-Hub-Signature": sign(ZAMMAD_SECRET, body, "sha1"),
        "X-Zammad-Delivery": str(uuid.uuid4()),
        "X-Zammad-Trigger": "SLA fuzz",
    }


def _znuny_headers(body: bytes) -> dict[str, str]:
    return {"Authorization": basic()["Authorization"]}


def _compact(data: object) -> bytes:
    return json.dumps(data, ensure_ascii=False).encode("utf-8")


KINDS = {
    "fake": Kind(
        "fake",
        "/webhooks/fake/main",
        {"ticket_id": "42", "event": "ticket.updated"},
        _fake_headers,
        _compact,
    ),
    "zammad": Kind(
        "zammad",
        "/webhooks/zammad/zd",
        zammad_fixture("ticket__created")["body"],
        _zammad_headers,
        rails_json,
    ),
    "znuny": Kind(
        "znuny",
        "/webhooks/znuny/zn",
        znuny_fixture("TicketCreate"),
        _znuny_headers,
        _compact,
    ),
}


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """An instance of every kind, on a real SQLite file (the conftest's app is built on it)."""
    base = make_settings(tmp_path)
    instances = (*base.instances, zammad_instance(name="zd"), znuny_instance(name="zn"))
    return base.model_copy(update={"instances": instances})


def newest_body(service: Service) -> str:
    with service.store.engine.connect() as connection:
        query = select(events.c.body).order_by(events.c.id.desc()).limit(1)
        return str(connection.execute(query).scalar_one())


def post_checked(client: FlaskClient, service: Service, kind: Kind, body: bytes) -> int:
    """POST ``body`` as an authenticated webhook of ``kind`` and check the route's contract:
    a 2xx stored exactly these bytes (or recognised a redelivery), anything else is a 4xx JSON
    error that stored nothing. Returns the status."""
    before = row_counts(service)
    response = client.post(
        kind.url, data=body, headers=kind.headers(body), content_type="application/json"
    )
    after = row_counts(service)
    status = response.status_code
    text = response.get_data(as_text=True)
    assert status < 500, text
    if status >= 300:
        assert 400 <= status < 500, text
        data = response.get_json()
        assert isinstance(data, dict), text
        assert isinstance(data.get("error"), str), text
        assert isinstance(data.get("detail"), str), text
        assert data["detail"]
        assert after == before, text
        return status
    added = after["events"] - before["events"]
    assert added in (0, 1), (added, text)
    if added:
        assert newest_body(service) == body.decode("utf-8")
        assert after["jobs"] >= 1
    return status


@pytest.mark.parametrize("name", sorted(KINDS))
def test_valid_payload_is_stored(name: str, client: FlaskClient, service: Service) -> None:
    """The base payload of every kind is accepted, so the properties below start from a body
    the route stores (a fuzz test whose every example is refused would prove little)."""
    kind = KINDS[name]
    assert post_checked(client, service, kind, kind.encode(kind.payload)) in (200, 202)
    assert row_counts(service)["events"] == 1


@pytest.mark.parametrize("name", sorted(KINDS))
def test_any_json_document(name: str, client: FlaskClient, service: Service) -> None:
    kind = KINDS[name]

    @EXAMPLES
    @given(json_values)
    def run(document: object) -> None:
        post_checked(client, service, kind, kind.encode(document))

    run()


@pytest.mark.parametrize("name", sorted(KINDS))
def test_payload_with_one_value_changed(name: str, client: FlaskClient, service: Service) -> None:
    kind = KINDS[name]
    statuses: list[int] = []

    @EXAMPLES
    @given(one_change(kind.payload))
    def run(document: dict[str, Any]) -> None:
        statuses.append(post_checked(client, service, kind, kind.encode(document)))

    run()
    # many single changes leave a valid webhook, so the 2xx branch was checked too
    assert any(status < 300 for status in statuses)


@pytest.mark.parametrize("name", sorted(KINDS))
def test_any_bytes(name: str, client: FlaskClient, service: Service) -> None:
    kind = KINDS[name]

    @EXAMPLES
    @given(st.binary(max_size=256) | st.text(max_size=64).map(str.encode))
    def run(body: bytes) -> None:
        post_checked(client, service, kind, body)

    run()


@pytest.mark.parametrize("name", sorted(KINDS))
@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-be", "utf-32", "cp1251"])
def test_other_encodings_are_refused(
    name: str, encoding: str, client: FlaskClient, service: Service
) -> None:
    """JSON between systems is UTF-8 (RFC 8259 §8.1). Python's parser also reads UTF-16 and
    UTF-32, but the store keeps the body as text for audit and replay: such a body was kept
    garbled, and on PostgreSQL its NUL bytes were refused with a 503 "retry later"."""
    kind = KINDS[name]
    document = copy.deepcopy(kind.payload)
    document["note"] = "Ошибка обмена"  # so cp1251 differs from UTF-8
    body = json.dumps(document, ensure_ascii=False).encode(encoding)
    assert post_checked(client, service, kind, body) == 422
    response = client.post(kind.url, data=body, headers=kind.headers(body))
    assert "not UTF-8" in response.get_json()["detail"]


@pytest.mark.parametrize("name", sorted(KINDS))
def test_a_byte_order_mark_is_ignored(name: str, client: FlaskClient, service: Service) -> None:
    """RFC 8259 lets a parser ignore a leading BOM; the body is still stored as received."""
    kind = KINDS[name]
    body = b"\xef\xbb\xbf" + kind.encode(kind.payload)
    assert post_checked(client, service, kind, body) in (200, 202)
    assert newest_body(service) == "\ufeff" + kind.encode(kind.payload).decode()


@pytest.mark.parametrize("name", sorted(KINDS))
@pytest.mark.parametrize(("opening", "closing"), [("[", "]"), ('{"a":', "}")])
def test_deeply_nested_body_is_refused(
    name: str, opening: str, closing: str, client: FlaskClient, service: Service
) -> None:
    """Nesting deeper than Python's recursion limit made the parser raise RecursionError: a
    500, retried by the helpdesk, for a body that can never be stored."""
    kind = KINDS[name]
    body = (opening * 50_000 + "1" + closing * 50_000).encode()
    assert post_checked(client, service, kind, body) == 422
    response = client.post(kind.url, data=body, headers=kind.headers(body))
    assert "nested" in response.get_json()["detail"]


@pytest.mark.parametrize("name", sorted(KINDS))
def test_nul_in_a_stored_value_is_refused(name: str, client: FlaskClient, service: Service) -> None:
    """A NUL character (``\\u0000`` in the JSON) in the ticket id or event name: PostgreSQL
    refuses it in a text column, which made the route answer 503 "retry later" for input that
    can never be stored. It is bad input, so a 422 that names the field; on every engine."""
    kind = KINDS[name]
    document = copy.deepcopy(kind.payload)
    headers = kind.headers
    if name == "fake":
        document["ticket_id"] = "4\x002"
    elif name == "zammad":  # its stored values come from headers, which a server may pass on
        headers = lambda body: {**kind.headers(body), "X-Zammad-Delivery": "d\x00e"}  # noqa: E731
    else:
        document["Event"]["Event"] = "TicketDynamicFieldUpdate_Foo\x00"
    with_nul = Kind(kind.name, kind.url, document, headers, kind.encode)
    assert post_checked(client, service, with_nul, kind.encode(document)) == 422


@pytest.mark.parametrize("name", sorted(KINDS))
def test_a_deep_value_inside_a_valid_payload(
    name: str, client: FlaskClient, service: Service
) -> None:
    """A value nested just shallowly enough to parse can still exhaust the recursion limit in
    what reads the document next (Znuny's delivery id digests the dynamic fields): found at
    980 levels as a 500. Every depth around the limit is a 2xx or a 422."""
    kind = KINDS[name]
    limit = sys.getrecursionlimit()
    statuses = set()
    for depth in range(limit - 200, limit + 10, 3):
        document = copy.deepcopy(kind.payload)
        target = document["Ticket"] if name == "znuny" else document.get("ticket", document)
        target["DynamicField_Deep" if name == "znuny" else "deep"] = "@DEEP@"
        text = kind.encode(document).decode()
        body = text.replace('"@DEEP@"', "[" * depth + "]" * depth).encode()
        statuses.add(post_checked(client, service, kind, body))
    assert 422 in statuses  # the deepest ones are refused, not stored


#: header values as a WSGI server hands them over: Latin-1 text without line breaks
header_values = st.text(
    st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"),
    max_size=80,
)
AUTH_HEADERS = {
    "fake": ("X-Fake-Token", "X-Fake-Delivery"),
    "zammad": ("X-Hub-Signature", "Authorization", "X-Zammad-Delivery", "X-Zammad-Trigger"),
    "znuny": ("Authorization",),
}


@pytest.mark.parametrize("name", sorted(KINDS))
def test_any_header_values(name: str, client: FlaskClient, service: Service) -> None:
    """Any value of the headers a receiver reads (credentials, signature, delivery id, trigger
    name), with a valid body: a 2xx or a 4xx with nothing stored, never a 5xx."""
    kind = KINDS[name]
    body = kind.encode(kind.payload)

    @EXAMPLES
    @given(st.dictionaries(st.sampled_from(AUTH_HEADERS[name]), header_values, min_size=1))
    def run(changed: dict[str, str]) -> None:
        headers = {**kind.headers(body), **changed}
        varied = Kind(kind.name, kind.url, kind.payload, lambda _: headers, kind.encode)
        post_checked(client, service, varied, body)

    run()


ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def test_admin_api_any_query(client: FlaskClient) -> None:
    """The admin API answers 200 or a 4xx JSON error for any path under /admin/jobs, any query
    and any Authorization header; never a 5xx."""
    segment = st.text(
        st.characters(codec="ascii", exclude_characters="/?#%\x00"), min_size=1, max_size=24
    )
    paths = st.one_of(
        st.just("/admin/jobs"),
        st.integers(min_value=-(2**70), max_value=2**70).map(lambda n: f"/admin/jobs/{n}"),
        segment.map(lambda s: f"/admin/jobs/{s}"),
    )
    queries = st.dictionaries(
        st.sampled_from(["status", "limit", "page", "x"]), header_values, max_size=3
    )

    @EXAMPLES
    @given(paths, queries, st.one_of(st.just(ADMIN["Authorization"]), header_values))
    def run(path: str, query: dict[str, str], authorization: str) -> None:
        response = client.get(path, query_string=query, headers={"Authorization": authorization})
        text = response.get_data(as_text=True)
        assert response.status_code < 500, text
        assert response.mimetype == "application/json", text
        data = response.get_json()
        if response.status_code >= 400:
            assert isinstance(data["error"], str), text
            assert data["detail"], text

    run()
