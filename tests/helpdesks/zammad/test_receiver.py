"""ZammadReceiver: one line per captured event, then authentication, then the real edge.

The edge tests run the real Flask app (``create_app``) on a real SQLite file and count rows in
the real tables, so "nothing stored" means no event and no job row exists.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from pydantic import SecretStr
from werkzeug.datastructures import Headers

from connector.errors import AuthError, PayloadError
from connector.helpdesks.base import WebhookReceiver
from connector.helpdesks.signatures import sign
from connector.helpdesks.zammad import ZammadReceiver, build
from connector.helpdesks.zammad.options import ZammadOptions
from connector.service import Service
from connector.settings import Settings
from tests.webhooks.conftest import close_app, row_counts
from webhooks.app import create_app
from webhooks.responses import current_service

from .conftest import MAPPINGS, SECRET, fixture, rails_json, signed, zammad_instance

URL = "/webhooks/zammad/main"


def receiver(**options: object) -> ZammadReceiver:
    return ZammadReceiver("main", ZammadOptions.model_validate(options), SecretStr(SECRET))


def event(name: str) -> tuple[str, str, str]:
    headers, body = signed(name)
    hook = receiver()
    hook.authenticate(headers, body)
    parsed = hook.parse(headers, body)
    return parsed.ticket_id, parsed.delivery_id, parsed.event


def refusal(name: str) -> str:
    headers, body = signed(name)
    with pytest.raises(PayloadError) as caught:
        receiver().parse(headers, body)
    return str(caught.value)


# --- one line per fixture ------------------------------------------------------------------

TRIGGER_CREATED = "Bitrix SLA (main) 010 ticket created"
TRIGGER_CHANGED = "Bitrix SLA (main) 020 ticket changed"


def test_ticket_created() -> None:
    assert event("ticket__created") == (
        "4711",
        "3f6c1b9e-8a51-4c2e-9d0a-6b7e2f41c0aa",
        TRIGGER_CREATED,
    )


def test_ticket_updated_no_article() -> None:
    assert event("ticket__updated_no_article")[::2] == ("4711", TRIGGER_CHANGED)


def test_ticket_organization_changed() -> None:
    assert event("ticket__organization_changed")[::2] == ("4711", TRIGGER_CHANGED)


def test_ticket_customer_changed() -> None:
    assert event("ticket__customer_changed")[::2] == ("4711", TRIGGER_CHANGED)


def test_ticket_override_set() -> None:
    assert event("ticket__override_set")[::2] == ("4711", TRIGGER_CHANGED)


def test_ticket_customer_replied() -> None:
    assert event("ticket__customer_replied")[::2] == ("4711", TRIGGER_CHANGED)


def test_ticket_updated_by_integration() -> None:
    assert event("ticket__updated_by_integration")[0] == "4711"  # accepted: the job is a no-op


def test_unknown_shape() -> None:
    assert "pre-defined chat webhook" in refusal("unknown_shape")


def test_missing_ticket_id() -> None:
    assert refusal("missing_ticket_id") == "missing ticket.id"


def test_ticket_id_not_integer() -> None:
    assert refusal("ticket_id_not_integer").startswith("ticket.id: ")


def test_not_json() -> None:
    with pytest.raises(PayloadError, match="not valid JSON"):
        receiver().parse({}, b"<html>")


# --- delivery ids ---------------------------------------------------------------------------


def test_without_x_zammad_delivery_the_id_is_derived_and_stable() -> None:
    headers, body = signed("ticket__updated_no_article")
    del headers["X-Zammad-Delivery"]
    first = receiver().parse(headers, body).delivery_id
    assert first.startswith("derived:")
    assert receiver().parse(dict(headers), body).delivery_id == first


def test_a_later_change_gets_another_derived_id() -> None:
    data = fixture("ticket__updated_no_article")["body"]
    before = receiver().parse({}, rails_json(data)).delivery_id
    data["ticket"]["updated_at"] = "2025-03-04T09:45:00.000Z"
    assert receiver().parse({}, rails_json(data)).delivery_id != before


def test_an_overlong_delivery_header_is_hashed() -> None:
    headers, body = signed("ticket__created")
    headers["X-Zammad-Delivery"] = "x" * 500
    assert receiver().parse(headers, body).delivery_id.startswith("sha256:")


def test_headers_may_be_werkzeug_headers_in_any_case() -> None:
    headers, body = signed("ticket__created")
    lowered = Headers([(key.lower(), value) for key, value in headers.items()])
    receiver().authenticate(lowered, body)
    assert receiver().parse(lowered, body).event == TRIGGER_CREATED


# --- authentication ------------------------------------------------------------------------


def test_a_good_signature_passes() -> None:
    headers, body = signed("ticket__created")
    receiver().authenticate(headers, body)


def test_the_signature_covers_the_raw_bytes_not_the_parsed_json() -> None:
    headers, body = signed("ticket__created")
    assert b"\\u003c" in body  # Rails escaped '<'; json.dumps would not
    resigned = rails_json(fixture("ticket__created")["body"]).replace(b"\\u003c", b"<")
    with pytest.raises(AuthError, match="does not match"):
        receiver().authenticate(headers, resigned)


@pytest.mark.parametrize(
    ("signature", "message"),
    [
        (None, "missing X-Hub-Signature"),
        ("", "missing X-Hub-Signature"),
        ("sha1=" + "0" * 40, "does not match"),
        ("sha256=" + "0" * 64, "expected one of: sha1"),
        ("deadbeef", "not of the form"),
    ],
)
def test_bad_or_missing_signatures_are_refused(signature: str | None, message: str) -> None:
    headers, body = signed("ticket__created")
    del headers["X-Hub-Signature"]
    if signature is not None:
        headers["X-Hub-Signature"] = signature
    with pytest.raises(AuthError, match=message):
        receiver().authenticate(headers, body)


def test_a_signature_with_another_secret_is_refused() -> None:
    headers, body = signed("ticket__created", secret="someone-else")
    with pytest.raises(AuthError, match="does not match"):
        receiver().authenticate(headers, body)


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_basic_auth_is_checked_in_addition_to_the_signature() -> None:
    hook = receiver(webhook_basic_user="zammad", webhook_basic_password="pw-1")
    headers, body = signed("ticket__created")
    with pytest.raises(AuthError, match="missing basic"):
        hook.authenticate(headers, body)
    with pytest.raises(AuthError, match="does not match"):
        hook.authenticate({**headers, "Authorization": _basic("zammad", "pw-2")}, body)
    with pytest.raises(AuthError, match="malformed"):
        hook.authenticate({**headers, "Authorization": "Basic %%%"}, body)
    hook.authenticate({**headers, "Authorization": _basic("zammad", "pw-1")}, body)


def test_bearer_alone_when_the_signature_check_is_off() -> None:
    options = ZammadOptions(verify_signature=False, webhook_bearer_token=SecretStr("b-7"))
    hook = ZammadReceiver("main", options, None)
    headers, body = signed("ticket__created")
    del headers["X-Hub-Signature"]
    with pytest.raises(AuthError, match="missing bearer"):
        hook.authenticate(headers, body)
    with pytest.raises(AuthError, match="does not match"):
        hook.authenticate({**headers, "Authorization": "Bearer b-8"}, body)
    hook.authenticate({**headers, "Authorization": "Bearer b-7"}, body)


def test_a_receiver_without_any_authentication_cannot_be_made() -> None:
    with pytest.raises(ValueError, match="authentication"):
        ZammadReceiver("main", ZammadOptions(verify_signature=False), None)
    with pytest.raises(ValueError, match="must not be empty"):
        ZammadReceiver("main", ZammadOptions(), "")


def test_build_gives_the_ports() -> None:
    adapter, hook = build(zammad_instance())
    port: WebhookReceiver = hook
    assert (adapter.kind, port.kind, port.instance) == ("zammad", "zammad", "main")
    assert port.success == (202, {"status": "accepted"})
    adapter.close()


# --- through the real edge -----------------------------------------------------------------


@pytest.fixture
def app(tmp_path: Path) -> Iterator[Flask]:
    settings = Settings.model_validate(
        {
            "database_url": SecretStr(f"sqlite:///{tmp_path / 'edge.sqlite'}"),
            "mappings_dir": MAPPINGS,
            "settle_seconds": 0.0,
            "max_body_bytes": 64 * 1024,
            "instances": (zammad_instance(),),
        }
    )
    built = create_app(settings=settings)
    built.testing = True
    yield built
    close_app(built)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def counts(app: Flask) -> Callable[[], dict[str, int]]:
    service: Service = current_service(app)
    return lambda: row_counts(service)


def post(client: FlaskClient, headers: dict[str, str], body: bytes) -> tuple[int, object]:
    response = client.post(URL, data=body, headers=headers)
    return response.status_code, response.get_json()


def test_edge_stores_a_signed_webhook(
    client: FlaskClient, counts: Callable[[], dict[str, int]]
) -> None:
    status, answer = post(client, *signed("ticket__created"))
    assert (status, answer) == (202, {"status": "accepted"})
    assert counts() == {"events": 1, "jobs": 1}


@pytest.mark.parametrize("damage", ["unsigned", "bad signature", "other secret"])
def test_edge_refuses_unauthenticated_webhooks_and_stores_nothing(
    client: FlaskClient, counts: Callable[[], dict[str, int]], damage: str
) -> None:
    headers, body = signed(
        "ticket__created", secret="other" if damage == "other secret" else SECRET
    )
    if damage == "unsigned":
        del headers["X-Hub-Signature"]
    if damage == "bad signature":
        headers["X-Hub-Signature"] = sign(SECRET, body + b" ", "sha1")
    status, answer = post(client, headers, body)
    assert status == 401
    assert isinstance(answer, dict)
    assert answer["error"] == "unauthenticated"
    assert SECRET not in str(answer)
    assert counts() == {"events": 0, "jobs": 0}


def test_edge_deduplicates_x_zammad_delivery(
    client: FlaskClient, counts: Callable[[], dict[str, int]]
) -> None:
    headers, body = signed("ticket__created")
    assert post(client, headers, body)[0] == 202
    # Zammad's retry rebuilds the payload from the current state: other bytes, same delivery id
    data = fixture("ticket__created")["body"]
    data["ticket"]["updated_at"] = "2025-03-04T08:13:00.000Z"
    retry = rails_json(data)
    assert (
        post(client, {**headers, "X-Hub-Signature": sign(SECRET, retry, "sha1")}, retry)[0] == 202
    )
    assert counts() == {"events": 1, "jobs": 1}


def test_edge_refuses_an_oversized_body(
    client: FlaskClient, counts: Callable[[], dict[str, int]]
) -> None:
    data = fixture("ticket__created")["body"]
    data["article"]["body"] = "x" * (64 * 1024)
    body = rails_json(data)
    headers = {
        **fixture("ticket__created")["headers"],
        "X-Hub-Signature": sign(SECRET, body, "sha1"),
    }
    assert post(client, headers, body)[0] == 413
    assert counts() == {"events": 0, "jobs": 0}


@pytest.mark.parametrize("name", ["unknown_shape", "missing_ticket_id", "ticket_id_not_integer"])
def test_edge_answers_422_for_payloads_it_cannot_use(
    client: FlaskClient, counts: Callable[[], dict[str, int]], name: str
) -> None:
    status, answer = post(client, *signed(name))
    assert status == 422
    assert isinstance(answer, dict)
    assert answer["error"] == "invalid_payload"
    assert counts() == {"events": 0, "jobs": 0}


def test_a_utf8_trigger_name_read_as_latin1_is_repaired() -> None:
    headers, body = signed("ticket__created")
    name = "SLA 010 – ticket created → sla-service"
    headers["X-Zammad-Trigger"] = name.encode("utf-8").decode("latin-1")
    assert receiver().parse(headers, body).event == name
    headers["X-Zammad-Trigger"] = name
    assert receiver().parse(headers, body).event == name
