"""PUT /api/v1/tickets/:id and the tag calls, as Zammad answers them (facts §4.4, §4.5)."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from connector.sandbox.zammad import ADMIN_TOKEN, ZammadSandbox
from connector.sandbox.zammad.errors import DEADLOCK
from tests.clock import Clock
from tests.sandbox.zammad import Api, customer_ticket, due_attribute, idle_webhook, tier_attribute

ALWAYS_UPDATE = {"ticket.action": {"operator": "is", "value": "update"}}


@pytest.fixture
def zammad(clock: Clock) -> Iterator[ZammadSandbox]:
    with ZammadSandbox(clock=clock) as sandbox:
        yield sandbox


def put(api: Api, ticket_id: int, body: dict[str, object], **params: str) -> tuple[int, dict]:  # type: ignore[type-arg]
    response = api("PUT", f"/api/v1/tickets/{ticket_id}", json=body, params=params)
    return response.status_code, response.json()


def test_unknown_keys_are_silently_dropped(zammad: ZammadSandbox, api: Api, clock: Clock) -> None:
    ticket_id = customer_ticket(zammad)
    clock.advance(minutes=5)
    status, body = put(api, ticket_id, {"title": "Renamed", "no_such_field": 1})
    assert (status, body["title"]) == (200, "Renamed")
    assert "no_such_field" not in body
    assert body["updated_at"] == "2026-03-02T09:05:00.000Z"
    assert body["updated_by_id"] == zammad.integration_user_id


def test_custom_attribute_is_usable_only_after_migration(zammad: ZammadSandbox, api: Api) -> None:
    ticket_id = customer_ticket(zammad)
    due_attribute(zammad, migrate=False)
    status, body = put(api, ticket_id, {"sla_due_at": "2026-03-02T12:00:00Z"})
    assert status == 200 and "sla_due_at" not in body
    zammad.execute_migrations()
    assert api("GET", f"/api/v1/tickets/{ticket_id}").json()["sla_due_at"] is None
    status, body = put(api, ticket_id, {"sla_due_at": "2026-03-02T12:00:00Z"})
    assert (status, body["sla_due_at"]) == (200, "2026-03-02T12:00:00.000Z")
    status, body = put(api, ticket_id, {"sla_due_at": "2026-03-02T15:00:00+03:00"})
    assert body["sla_due_at"] == "2026-03-02T12:00:00.000Z"


def test_past_date_is_422_when_the_attribute_forbids_it(zammad: ZammadSandbox, api: Api) -> None:
    ticket_id = customer_ticket(zammad)
    due_attribute(zammad, past=False)
    status, body = put(api, ticket_id, {"sla_due_at": "2026-03-01T09:00:00Z"})
    assert (status, body) == (
        422,
        {
            "error": "Validation failed: Sla due at does not allow past dates.",
            "error_human": "Sla due at does not allow past dates.",
        },
    )
    assert zammad.ticket(ticket_id)["sla_due_at"] is None
    assert put(api, ticket_id, {"sla_due_at": "2026-03-03T09:00:00Z"})[0] == 200


@pytest.mark.parametrize("value", ["tomorrow", "03.03.2026 10:00", "2026-13-45T99:00:00Z", 17])
def test_non_iso_datetime_is_422(zammad: ZammadSandbox, api: Api, value: object) -> None:
    ticket_id = customer_ticket(zammad)
    due_attribute(zammad)
    status, body = put(api, ticket_id, {"sla_due_at": value})
    assert status == 422
    assert body["error_human"].startswith("Sla due at is not a valid ISO 8601 time")


def test_select_value_outside_the_options_is_422(zammad: ZammadSandbox, api: Api) -> None:
    ticket_id = customer_ticket(zammad)
    tier_attribute(zammad)
    status, body = put(api, ticket_id, {"sla_tier": "gold", "title": "not applied"})
    assert status == 422
    assert body["error_human"] == "Sla tier has an invalid value 'gold'"
    assert zammad.ticket(ticket_id)["title"] == "Site down"
    assert put(api, ticket_id, {"sla_tier": "partner"})[1]["sla_tier"] == "partner"
    assert put(api, ticket_id, {"sla_tier": None})[1]["sla_tier"] is None


def test_required_field_left_empty_fails_any_change(zammad: ZammadSandbox, api: Api) -> None:
    ticket_id = customer_ticket(zammad)
    due_attribute(zammad)
    required = {"edit": {"ticket.agent": {"shown": True, "required": True}}}
    zammad.add_attribute(
        "Ticket", "product", "input", {"type": "text", "maxlength": 40}, screens=required
    )
    status, body = put(api, ticket_id, {"sla_due_at": "2026-03-03T09:00:00Z"})
    assert (status, body["error_human"]) == (422, "Product is required but missing.")
    assert put(api, ticket_id, {"sla_due_at": "2026-03-03T09:00:00Z", "product": "CMS"})[0] == 200


def test_names_are_converted_and_protected_columns_dropped(zammad: ZammadSandbox, api: Api) -> None:
    zammad.add_group("VIP")
    ticket_id = customer_ticket(zammad)
    change = {
        "priority": "3 high",
        "group": "VIP",
        "state": "open",
        "number": "1",
        "created_by_id": 1,
        "updated_by_id": 1,
        "id": 99,
    }
    status, body = put(api, ticket_id, change, expand="true")
    assert status == 200
    assert (body["priority"], body["group"], body["state"]) == ("3 high", "VIP", "open")
    assert (body["id"], body["number"]) == (ticket_id, f"31{ticket_id:06d}")
    assert body["updated_by"] == "sla-bot@example.com" and body["created_by_id"] != 1


def test_unknown_names_are_opaque_for_non_admins(zammad: ZammadSandbox, api: Api) -> None:
    ticket_id = customer_ticket(zammad)
    status, body = put(api, ticket_id, {"priority": "9 apocalyptic"})
    assert status == 422
    assert body["error"].startswith("Error ID ")
    assert body["error"].endswith(": Please contact your administrator.")
    admin = Api(zammad.base_url, ADMIN_TOKEN)
    answer = admin("PUT", f"/api/v1/tickets/{ticket_id}", json={"priority": "9 apocalyptic"})
    assert answer.json()["error"] == "No lookup value found for 'priority': '9 apocalyptic'"
    admin.close()


def test_a_lock_conflict_is_a_422_opaque_to_non_admins_and_writes_nothing(
    zammad: ZammadSandbox, api: Api
) -> None:
    ticket_id = customer_ticket(zammad)
    zammad.lock_conflict_next(2)
    zammad.update_ticket(ticket_id, title="an agent in the UI is not affected")
    status, body = put(api, ticket_id, {"title": "first try"})
    assert status == 422
    assert list(body) == ["error"]  # handles_errors.rb: no error_human
    assert re.fullmatch(r"Error ID [\w-]{8}: Please contact your administrator\.", body["error"])
    with Api(zammad.base_url, ADMIN_TOKEN) as admin:
        answer = admin("PUT", f"/api/v1/tickets/{ticket_id}", json={"title": "as admin"})
    assert (answer.status_code, answer.json()) == (
        422,
        {"error": DEADLOCK, "error_human": DEADLOCK},
    )
    assert zammad.ticket(ticket_id)["title"] == "an agent in the UI is not affected"
    assert put(api, ticket_id, {"title": "second try"})[0] == 200


def test_preferences_are_merged(zammad: ZammadSandbox, api: Api) -> None:
    ticket_id = customer_ticket(zammad)
    put(api, ticket_id, {"preferences": {"a": 1}})
    assert put(api, ticket_id, {"preferences": {"b": 2}})[1]["preferences"] == {"a": 1, "b": 2}


def test_a_put_that_changes_nothing_is_no_transaction(
    zammad: ZammadSandbox, api: Api, clock: Clock
) -> None:
    zammad.add_trigger(
        "any update",
        ALWAYS_UPDATE,
        webhook_id=idle_webhook(zammad),
        execution_condition_mode="always",
    )
    ticket_id = customer_ticket(zammad)
    put(api, ticket_id, {"title": "Same"})
    clock.advance(minutes=5)
    status, body = put(api, ticket_id, {"title": "Same", "unknown": 1})
    assert (status, body["updated_at"]) == (200, "2026-03-02T09:00:00.000Z")
    assert [firing.action for firing in zammad.fired()] == ["update"]


# --- tags -------------------------------------------------------------------------------------


def test_tag_add_is_201_true_and_remove_is_200_true(
    zammad: ZammadSandbox, api: Api, clock: Clock
) -> None:
    ticket_id = customer_ticket(zammad)
    tag = {"item": "sla:tier:partner", "object": "Ticket", "o_id": ticket_id}
    clock.advance(minutes=1)
    added = api("POST", "/api/v1/tags/add", json=tag)
    assert (added.status_code, added.json()) == (201, True)
    again = api("POST", "/api/v1/tags/add", json=tag)
    assert (again.status_code, again.json()) == (201, True)
    listed = api("GET", "/api/v1/tags", params={"object": "Ticket", "o_id": ticket_id})
    assert listed.json() == {"tags": ["sla:tier:partner"]}
    assert zammad.ticket(ticket_id)["updated_at"] == "2026-03-02T09:01:00.000Z"
    removed = api("DELETE", "/api/v1/tags/remove", json=tag)
    assert (removed.status_code, removed.json()) == (200, True)
    assert zammad.tags(ticket_id) == []


def test_tags_of_a_missing_ticket_are_404(api: Api) -> None:
    tag = {"item": "x", "object": "Ticket", "o_id": 4242}
    assert api("POST", "/api/v1/tags/add", json=tag).status_code == 404
    assert (
        api("POST", "/api/v1/tags/add", json={"object": "Ticket", "o_id": 4242}).status_code == 404
    )


def test_tag_changes_touch_the_ticket_but_fire_no_trigger(zammad: ZammadSandbox, api: Api) -> None:
    zammad.add_trigger(
        "every update",
        ALWAYS_UPDATE,
        webhook_id=idle_webhook(zammad),
        execution_condition_mode="always",
    )
    ticket_id = customer_ticket(zammad)
    tag = {"item": "sla:level:2", "object": "Ticket", "o_id": ticket_id}
    api("POST", "/api/v1/tags/add", json=tag)
    api("DELETE", "/api/v1/tags/remove", json=tag)
    zammad.add_tag(ticket_id, "vip")
    assert zammad.fired() == []
    put(api, ticket_id, {"title": "now it fires"})
    assert [firing.trigger for firing in zammad.fired()] == ["every update"]
