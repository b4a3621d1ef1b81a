"""Webhook deliveries: Zammad's headers, signature, default payload, retries and give-up."""

from __future__ import annotations

import base64
import json
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from connector.sandbox.fake_helpdesk import wait_until
from connector.sandbox.zammad import ADMIN_TOKEN, ZammadSandbox
from tests.clock import Clock
from tests.sandbox.zammad import (
    HOOK_SECRET,
    QUICK,
    START,
    Api,
    Received,
    Sink,
    assert_signed,
    customer_ticket,
    due_attribute,
    license_attribute,
)

CREATED = "SLA 010 – ticket created → sla-service"
CREATE = {"ticket.action": {"operator": "is", "value": "create"}}
UPDATE = {"ticket.action": {"operator": "is", "value": "update"}}


@pytest.fixture
def zammad() -> Iterator[ZammadSandbox]:
    with ZammadSandbox(clock=Clock(START), retry_schedule=QUICK) as sandbox:
        yield sandbox


@pytest.fixture
def sink() -> Iterator[Sink]:
    receiver = Sink()
    yield receiver
    receiver.close()


def hook(zammad: ZammadSandbox, sink: Sink, *, name: str = CREATED, **fields: Any) -> int:
    """A webhook to ``sink`` (signed unless told otherwise) and a create trigger using it."""
    fields.setdefault("signature_token", HOOK_SECRET)
    webhook = zammad.add_webhook("sla-service", sink.url, **fields)
    zammad.add_trigger(name, CREATE, webhook_id=webhook["id"])
    return int(webhook["id"])


def one(sink: Sink, count: int = 1) -> Received:
    wait_until(lambda: len(sink.received) >= count)
    return sink.received[count - 1]


def test_headers_and_signature(zammad: ZammadSandbox, sink: Sink) -> None:
    hook(zammad, sink)
    customer_ticket(zammad)
    got = one(sink)
    assert (got.method, got.path) == ("POST", "/hook")
    assert got.headers["Content-Type"] == "application/json; charset=utf-8"
    assert got.headers["User-Agent"] == "Zammad User Agent"
    assert uuid.UUID(got.headers["X-Zammad-Delivery"])
    assert_signed(got)
    assert got.headers["X-Hub-Signature"].startswith("sha1=")
    # Ruby sends the trigger name as raw UTF-8; a WSGI server hands it over as Latin-1.
    assert got.headers["X-Zammad-Trigger"].encode("latin-1").decode("utf-8") == CREATED


def test_no_signature_without_a_token(zammad: ZammadSandbox, sink: Sink) -> None:
    hook(zammad, sink, name="plain", signature_token=None)
    customer_ticket(zammad)
    got = one(sink)
    assert "X-Hub-Signature" not in got.headers
    assert got.headers["X-Zammad-Trigger"] == "plain"


def test_default_payload_shape(zammad: ZammadSandbox, sink: Sink) -> None:
    license_attribute(zammad)
    due_attribute(zammad)
    org = zammad.add_organization("Studio", bitrix_license_type="partner")
    ana = zammad.add_customer("ana@studio.example", firstname="Ana", organization=org["id"])
    webhook = hook(zammad, sink)
    zammad.add_trigger("update", UPDATE, webhook_id=webhook)
    ticket = zammad.create_ticket("VPN drops", customer=ana["id"], body="<div>Since 9</div>")
    payload = json.loads(one(sink).body)
    assert set(payload) == {"ticket", "article"}
    data = payload["ticket"]
    assert list(data) == sorted(data)
    assert (data["id"], data["number"], data["title"]) == (
        ticket["id"],
        ticket["number"],
        "VPN drops",
    )
    assert data["state"] == "new" and data["sla_due_at"] is None
    assert data["customer"]["login"] == "ana@studio.example"
    assert data["customer"]["organization"] == "Studio"
    assert {"preferences", "last_login", "login_failed", "group_ids"}.isdisjoint(data["customer"])
    assert data["organization"]["bitrix_license_type"] == "partner"
    assert data["organization"]["members"] == ["ana@studio.example"]
    assert (data["priority"]["name"], data["group"]["name"]) == ("2 normal", "Users")
    assert data["owner"]["login"] == "-" and data["created_by"]["id"] == ana["id"]
    assert data["created_at"] == "2026-03-02T09:00:00.000Z"
    article = payload["article"]
    assert (article["sender"], article["type"], article["body"]) == (
        "Customer",
        "email",
        "<div>Since 9</div>",
    )
    assert article["created_by"]["login"] == "ana@studio.example"
    assert article["accounted_time"] == 0
    zammad.update_ticket(ticket["id"], title="attribute-only update")
    assert json.loads(one(sink, 2).body)["article"] == {}


def test_body_is_escaped_like_rails(zammad: ZammadSandbox, sink: Sink) -> None:
    hook(zammad, sink)
    customer_ticket(zammad, "<b>Cart & checkout</b> – broken")
    got = one(sink)
    assert b"\\u003cb\\u003eCart \\u0026 checkout\\u003c/b\\u003e \xe2\x80\x93 broken" in got.body
    assert json.loads(got.body)["ticket"]["title"] == "<b>Cart & checkout</b> – broken"
    assert_signed(got)


def test_retries_reuse_the_delivery_id_and_rebuild_the_payload(
    zammad: ZammadSandbox, sink: Sink
) -> None:
    hook(zammad, sink)
    ticket_id = customer_ticket(zammad, "before")
    sink.statuses = [500]

    def change_ticket(got: Received) -> None:
        zammad.update_ticket(ticket_id, title="after")

    sink.on_request = change_ticket
    wait_until(lambda: zammad.webhooks_sent == 1)
    first, second = sink.received[0], sink.received[1]
    assert first.headers["X-Zammad-Delivery"] == second.headers["X-Zammad-Delivery"]
    assert json.loads(first.body)["ticket"]["title"] == "before"
    assert json.loads(second.body)["ticket"]["title"] == "after"
    assert_signed(second)
    attempts = zammad.deliveries()
    assert [(a.attempt, a.status, a.event) for a in attempts] == [
        (1, 500, CREATED),
        (2, 200, CREATED),
    ]


def test_gives_up_silently_after_five_attempts(zammad: ZammadSandbox, sink: Sink) -> None:
    sink.statuses = [404] * 10
    hook(zammad, sink)
    customer_ticket(zammad)
    wait_until(lambda: zammad.webhooks_abandoned == 1)
    assert len(sink.received) == 5
    assert len({got.headers["X-Zammad-Delivery"] for got in sink.received}) == 1
    assert [a.attempt for a in zammad.deliveries()] == [1, 2, 3, 4, 5]
    assert (zammad.webhooks_failed, zammad.webhooks_sent, zammad.webhooks_pending) == (5, 0, 0)


def test_redirects_count_as_failures_and_are_not_followed(
    zammad: ZammadSandbox, sink: Sink
) -> None:
    sink.statuses = [301]
    hook(zammad, sink)
    customer_ticket(zammad)
    wait_until(lambda: zammad.webhooks_sent == 1)
    assert [a.status for a in zammad.deliveries()] == [301, 200]
    assert [got.path for got in sink.received] == ["/hook", "/hook"]


def test_timeouts_and_refused_connections_are_failures(zammad: ZammadSandbox) -> None:
    slow = Sink()
    slow.gate = threading.Event()
    zammad.webhook_timeouts = (1.0, 0.2)
    hook(zammad, slow)
    customer_ticket(zammad)
    wait_until(lambda: zammad.webhooks_failed >= 1)
    assert zammad.deliveries()[0].error == "ReadTimeout"
    slow.gate.set()
    slow.gate = None
    wait_until(lambda: zammad.webhooks_sent == 1)
    slow.close()
    customer_ticket(zammad)
    wait_until(lambda: zammad.webhooks_abandoned == 1)
    assert [a.error for a in zammad.deliveries()][-5:] == ["ConnectionError"] * 5


def test_delivery_never_blocks_the_request(zammad: ZammadSandbox, sink: Sink) -> None:
    sink.gate = threading.Event()
    hook(zammad, sink)
    customer = zammad.add_customer("quick@example.org")
    body = {"title": "t", "group": "Users", "customer_id": customer["id"], "article": {"body": "b"}}
    with Api(zammad.base_url) as api:
        assert api("POST", "/api/v1/tickets", json=body).status_code == 201
        one(sink)  # the first delivery is now stuck in the receiver
        assert api("POST", "/api/v1/tickets", json=body).status_code == 201
    assert (zammad.webhooks_pending, len(sink.received)) == (2, 1)
    sink.gate.set()
    wait_until(lambda: zammad.webhooks_sent == 2)


def test_deliveries_follow_trigger_order(zammad: ZammadSandbox, sink: Sink) -> None:
    webhook = zammad.add_webhook("svc", sink.url)
    for name in ("B second", "A first"):
        zammad.add_trigger(name, CREATE, webhook_id=webhook["id"])
    customer_ticket(zammad)
    wait_until(lambda: zammad.webhooks_sent == 2)
    assert [got.headers["X-Zammad-Trigger"] for got in sink.received] == ["A first", "B second"]
    assert len({got.headers["X-Zammad-Delivery"] for got in sink.received}) == 2


def test_basic_auth_bearer_and_http_method(zammad: ZammadSandbox, sink: Sink) -> None:
    basic = zammad.add_webhook(
        "basic", sink.url, basic_auth_username="zammad", basic_auth_password="pw"
    )
    bearer = zammad.add_webhook("bearer", sink.url, bearer_token="tok", http_method="put")
    zammad.add_trigger("1 basic", CREATE, webhook_id=basic["id"])
    zammad.add_trigger("2 bearer", CREATE, webhook_id=bearer["id"])
    customer_ticket(zammad)
    wait_until(lambda: zammad.webhooks_sent == 2)
    assert sink.received[0].authorization == "Basic emFtbWFkOnB3"
    assert (sink.received[1].method, sink.received[1].authorization) == ("PUT", "Bearer tok")


@pytest.mark.parametrize("password", ["пароль", "päss"])
def test_basic_auth_credentials_are_sent_as_utf8(
    zammad: ZammadSandbox, sink: Sink, password: str
) -> None:
    """Ruby's ``Net::HTTP#basic_auth`` base64-encodes the UTF-8 string; ``requests``' ``auth=``
    encoded Latin-1 (``päss`` as other bytes) or raised on Cyrillic."""
    hook(zammad, sink, basic_auth_username="zammad", basic_auth_password=password)
    customer_ticket(zammad)
    wait_until(lambda: zammad.webhooks_sent == 1)  # accepted, not failed in the sender
    credentials = base64.b64encode(f"zammad:{password}".encode()).decode()
    assert [got.authorization for got in sink.received] == [f"Basic {credentials}"]


def test_webhooks_over_rest_mask_secrets(zammad: ZammadSandbox, sink: Sink) -> None:
    admin = Api(zammad.base_url, ADMIN_TOKEN)
    body = {"name": "svc", "endpoint": sink.url, "signature_token": HOOK_SECRET, "ssl_verify": True}
    created = admin("POST", "/api/v1/webhooks", json=body)
    assert (created.status_code, created.json()["signature_token"]) == (201, "**********")
    webhook_id = created.json()["id"]
    admin("PUT", f"/api/v1/webhooks/{webhook_id}", json={**body, "signature_token": "**********"})
    zammad.add_trigger("svc", CREATE, webhook_id=webhook_id)
    customer_ticket(zammad)
    got = one(sink)
    assert_signed(got)
    bad = admin("POST", "/api/v1/webhooks", json={"name": "x", "endpoint": "ftp://host/x"})
    assert bad.status_code == 422
    admin.close()


def test_inactive_webhook_and_deleted_ticket_end_the_job(zammad: ZammadSandbox, sink: Sink) -> None:
    webhook_id = hook(zammad, sink)
    zammad.automation.update_webhook(webhook_id, {"active": False}, zammad.admin_user_id)
    customer_ticket(zammad)
    wait_until(lambda: zammad.webhooks_discarded == 1)
    zammad.automation.update_webhook(webhook_id, {"active": True}, zammad.admin_user_id)
    ticket_id = customer_ticket(zammad)
    sink.statuses = [500]

    def delete_ticket(got: Received) -> None:
        zammad.delete_ticket(ticket_id)

    sink.on_request = delete_ticket
    wait_until(lambda: zammad.webhooks_discarded == 2)
    assert len(sink.received) == 1 and zammad.webhooks_pending == 0


def test_custom_payload_placeholders(zammad: ZammadSandbox, sink: Sink) -> None:
    license_attribute(zammad)
    template = {
        "id": "#{ticket.id}",
        "text_id": "ticket #{ticket.id}",
        "license": "#{ticket.organization.bitrix_license_type}",
        "created": "#{ticket.created_at}",
        "who": "#{ticket.customer.fullname}",
        "typo": "#{ticket.nope}",
        "empty": "#{ticket.pending_time}",
    }
    hook(zammad, sink, customized_payload=True, custom_payload=json.dumps(template))
    org = zammad.add_organization("Studio", bitrix_license_type="partner")
    ana = zammad.add_customer(
        "ana@s.example", firstname="Ana", lastname="Silva", organization="Studio"
    )
    ticket = zammad.create_ticket("x", customer=ana["id"])
    assert json.loads(one(sink).body) == {
        "id": ticket["id"],
        "text_id": f"ticket {ticket['id']}",
        "license": "partner",
        "created": "2026-03-02 09:00:00 UTC",
        "who": "Ana Silva",
        "typo": "#{ticket.nope / no such method}",
        "empty": "",
    }
    assert org["id"] == ticket["organization_id"]


def test_double_fire_on_create_delivers_a_second_update(sink: Sink) -> None:
    with ZammadSandbox(retry_schedule=QUICK, double_fire_on_create=True) as zammad:
        webhook = zammad.add_webhook("svc", sink.url)
        zammad.add_trigger("SLA 010 created", CREATE, webhook_id=webhook["id"])
        zammad.add_trigger("SLA 020 updated", UPDATE, webhook_id=webhook["id"])
        ticket_id = customer_ticket(zammad)
        wait_until(lambda: zammad.webhooks_sent == 2)
    triggers = [got.headers["X-Zammad-Trigger"] for got in sink.received]
    assert triggers == ["SLA 010 created", "SLA 020 updated"]
    second = json.loads(sink.received[1].body)["ticket"]
    assert second["id"] == ticket_id
    assert second["preferences"]["escalation_calculation"]["calculated_at"].endswith("Z")
