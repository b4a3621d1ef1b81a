"""Triggers run like Zammad's: on create and update transactions, in name order, selectively."""

from __future__ import annotations

from typing import Any

from connector.sandbox.zammad import ADMIN_TOKEN, ZammadSandbox
from tests.sandbox.zammad import Api, customer_ticket, idle_webhook, tier_attribute

CREATE = {"ticket.action": {"operator": "is", "value": "create"}}
UPDATE = {"ticket.action": {"operator": "is", "value": "update"}}


def trigger(zammad: ZammadSandbox, name: str, condition: dict[str, Any], **fields: Any) -> None:
    zammad.add_trigger(name, condition, webhook_id=idle_webhook_id(zammad), **fields)


def idle_webhook_id(zammad: ZammadSandbox) -> int:
    hooks = zammad.store.tables["Webhook"]
    return next(iter(hooks)) if hooks else idle_webhook(zammad)


def fired(zammad: ZammadSandbox) -> list[tuple[int, str, str]]:
    return [(f.ticket_id, f.trigger, f.action) for f in zammad.fired()]


def not_by(user_id: int) -> dict[str, Any]:
    return {
        "ticket.updated_by_id": {
            "operator": "is not",
            "pre_condition": "specific",
            "value": [str(user_id)],
        }
    }


def test_create_and_update_triggers_fire_on_their_action(zammad: ZammadSandbox, api: Api) -> None:
    trigger(zammad, "on create", CREATE)
    trigger(zammad, "on update", UPDATE)
    ticket_id = customer_ticket(zammad)
    zammad.update_ticket(ticket_id, priority="3 high")
    api("PUT", f"/api/v1/tickets/{ticket_id}", json={"title": "by the integration user"})
    assert fired(zammad) == [
        (ticket_id, "on create", "create"),
        (ticket_id, "on update", "update"),
        (ticket_id, "on update", "update"),
    ]


def test_triggers_run_in_alphabetical_order(zammad: ZammadSandbox) -> None:
    for name in ("SLA 020 b", "SLA 010 a", "Auto reply", "SLA 100 c"):
        trigger(zammad, name, CREATE)
    customer_ticket(zammad)
    assert [name for _, name, _ in fired(zammad)] == [
        "Auto reply",
        "SLA 010 a",
        "SLA 020 b",
        "SLA 100 c",
    ]


def test_updated_by_guard_keeps_the_integration_users_writes_quiet(
    zammad: ZammadSandbox, api: Api
) -> None:
    trigger(zammad, "guarded", {**UPDATE, **not_by(zammad.integration_user_id)})
    trigger(zammad, "naive", UPDATE)
    ticket_id = customer_ticket(zammad)
    api("PUT", f"/api/v1/tickets/{ticket_id}", json={"title": "written back"})
    assert fired(zammad) == [(ticket_id, "naive", "update")]
    zammad.update_ticket(ticket_id, priority="1 low")
    zammad.update_ticket(ticket_id, priority="3 high")
    names = [name for _, name, _ in fired(zammad)]
    assert names == ["naive", "guarded", "naive", "guarded", "naive"]


def test_selective_fires_only_when_a_named_attribute_changed(zammad: ZammadSandbox) -> None:
    high = {"ticket.priority_id": {"operator": "is", "value": ["3"]}}
    trigger(zammad, "selective high", {**UPDATE, **high})
    trigger(zammad, "always high", {**UPDATE, **high}, execution_condition_mode="always")
    ticket_id = customer_ticket(zammad)
    zammad.update_ticket(ticket_id, priority="3 high")
    zammad.update_ticket(ticket_id, title="renamed while high")
    assert [name for _, name, _ in fired(zammad)] == [
        "always high",
        "selective high",
        "always high",
    ]
    zammad.add_article(ticket_id, "a new article counts as a change")
    assert [name for _, name, _ in fired(zammad)][-2:] == ["always high", "selective high"]


def test_attribute_changed_conditions(zammad: ZammadSandbox, api: Api) -> None:
    tier_attribute(zammad)
    watched = ("customer_id", "organization_id", "priority_id", "title", "sla_tier")
    changed = {
        "operator": "OR",
        "conditions": [
            {"name": f"ticket.{column}", "operator": "has changed"} for column in watched
        ],
    }
    condition = {
        "operator": "AND",
        "conditions": [
            {"name": "ticket.action", "operator": "is", "value": "update"},
            changed,
        ],
    }
    trigger(zammad, "recompute", condition)
    ticket_id = customer_ticket(zammad)
    other = zammad.add_customer(
        "other@example.org", organization=zammad.add_organization("O")["id"]
    )
    zammad.update_ticket(ticket_id, state="open")
    assert fired(zammad) == []
    for change in (
        {"customer_id": other["id"]},
        {"priority": "1 low"},
        {"title": "new title"},
        {"sla_tier": "partner"},
    ):
        zammad.update_ticket(ticket_id, **change)
    assert len(fired(zammad)) == 4
    assert zammad.ticket(ticket_id)["organization_id"] == other["organization_id"]


def test_article_conditions_need_a_new_article(zammad: ZammadSandbox) -> None:
    from_customer = {"article.sender_id": {"operator": "is", "value": ["2"]}}
    trigger(
        zammad, "customer wrote", {**UPDATE, **from_customer}, execution_condition_mode="always"
    )
    ticket_id = customer_ticket(zammad)
    zammad.update_ticket(ticket_id, title="no article")
    zammad.add_article(
        ticket_id, "internal note", sender="Agent", article_type="note", internal=True
    )
    assert fired(zammad) == []
    zammad.add_article(ticket_id, "still broken")
    assert fired(zammad) == [(ticket_id, "customer wrote", "update")]


def test_inactive_and_time_triggers_never_run(zammad: ZammadSandbox) -> None:
    trigger(zammad, "inactive", CREATE, active=False)
    trigger(zammad, "timed", CREATE, activator="time")
    customer_ticket(zammad)
    assert fired(zammad) == []


def test_double_fire_on_create_sends_a_second_update() -> None:
    with ZammadSandbox(double_fire_on_create=True) as zammad:
        trigger(zammad, "SLA 010 created", CREATE)
        trigger(zammad, "SLA 020 updated", {**UPDATE, **not_by(zammad.integration_user_id)})
        ticket_id = customer_ticket(zammad)
        assert fired(zammad) == [
            (ticket_id, "SLA 010 created", "create"),
            (ticket_id, "SLA 020 updated", "update"),
        ]


def test_selective_ignores_can_track_updated_by(zammad: ZammadSandbox) -> None:
    zammad.selective_ignores.discard("ticket.updated_by_id")
    trigger(zammad, "guarded", {**UPDATE, **not_by(zammad.integration_user_id)})
    ticket_id = customer_ticket(zammad)
    zammad.update_ticket(ticket_id, title="admin takes over")
    zammad.update_ticket(ticket_id, title="admin again: updated_by unchanged")
    assert len(fired(zammad)) == 1


def test_triggers_over_rest(zammad: ZammadSandbox, api: Api) -> None:
    admin = Api(zammad.base_url, ADMIN_TOKEN)
    webhook = admin(
        "POST", "/api/v1/webhooks", json={"name": "svc", "endpoint": "http://127.0.0.1:9/x"}
    ).json()
    body = {
        "name": "SLA 010",
        "condition": CREATE,
        "perform": {"notification.webhook": {"webhook_id": webhook["id"]}},
        "activator": "action",
        "execution_condition_mode": "selective",
        "active": True,
    }
    assert api("POST", "/api/v1/triggers", json=body).status_code == 403
    created = admin("POST", "/api/v1/triggers", json=body)
    assert created.status_code == 201
    assert admin("GET", "/api/v1/triggers").json()[0]["name"] == "SLA 010"
    assert admin("POST", "/api/v1/triggers", json=body).json()["error_human"] == (
        "Name has already been taken"
    )
    bad = admin("POST", "/api/v1/triggers", json={**body, "name": "x", "activator": "sometimes"})
    assert (bad.status_code, bad.json()["error_human"]) == (
        422,
        "Activator is not included in the list",
    )
    broken = {**body, "name": "y", "condition": {"ticket.action": {"operator": "equals"}}}
    assert admin("POST", "/api/v1/triggers", json=broken).status_code == 422
    trigger_id = created.json()["id"]
    assert admin("PUT", f"/api/v1/triggers/{trigger_id}", json={"active": False}).status_code == 200
    customer_ticket(zammad)
    assert fired(zammad) == []
    assert admin("DELETE", f"/api/v1/triggers/{trigger_id}").status_code == 200
    assert admin("GET", f"/api/v1/triggers/{trigger_id}").status_code == 404
    admin.close()
