"""The object manager over REST: create (201, pending), migrate (200 {}), update, delete."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from connector.sandbox.zammad import ADMIN_TOKEN, ZammadSandbox
from tests.sandbox.zammad import Api, customer_ticket

DUE = {
    "name": "sla_due_at",
    "object": "Ticket",
    "display": "SLA due",
    "active": True,
    "position": 1600,
    "data_type": "datetime",
    "data_option": {"future": True, "past": True, "diff": None, "null": True},
    "screens": {"edit": {"ticket.agent": {"shown": True, "required": False}}},
}
TIER = {
    "name": "sla_tier",
    "object": "Ticket",
    "display": "SLA tier",
    "data_type": "select",
    "data_option": {"options": {"partner": "Partner"}, "default": "", "null": True},
}
MIGRATE = "/api/v1/object_manager_attributes_execute_migrations"


@pytest.fixture
def admin(zammad: ZammadSandbox) -> Iterator[Api]:
    client = Api(zammad.base_url, ADMIN_TOKEN)
    yield client
    client.close()


def named(admin: Api, name: str) -> dict[str, Any]:
    listed = admin("GET", "/api/v1/object_manager_attributes").json()
    return next(row for row in listed if row["name"] == name and row["object"] == "Ticket")


def test_create_is_201_pending_until_migrations_run(zammad: ZammadSandbox, admin: Api) -> None:
    ticket_id = customer_ticket(zammad)
    created = admin("POST", "/api/v1/object_manager_attributes", json=DUE)
    assert created.status_code == 201
    body = created.json()
    assert (body["to_create"], body["to_migrate"], body["editable"]) == (True, True, True)
    assert body["data_option"]["past"] is True
    assert "sla_due_at" not in admin("GET", f"/api/v1/tickets/{ticket_id}").json()
    migrated = admin("POST", MIGRATE)
    assert (migrated.status_code, migrated.json()) == (200, {})
    assert admin("GET", f"/api/v1/tickets/{ticket_id}").json()["sla_due_at"] is None
    assert (named(admin, "sla_due_at")["to_create"], named(admin, "sla_due_at")["to_migrate"]) == (
        False,
        False,
    )


def test_list_includes_builtin_attributes(admin: Api) -> None:
    listed = admin("GET", "/api/v1/object_manager_attributes").json()
    builtin = {(row["object"], row["name"]) for row in listed if not row["editable"]}
    assert {("Ticket", "title"), ("Ticket", "priority_id"), ("Organization", "name")} <= builtin
    shown = admin("GET", f"/api/v1/object_manager_attributes/{listed[0]['id']}").json()
    assert shown["name"] == listed[0]["name"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"name": "Bad Name"}, "Name 'Bad Name' is not allowed"),
        ({"object": "Planet"}, "Object is not one of"),
        ({"data_type": "colour"}, "Data type 'colour' is not one of"),
        ({"data_option": {"future": True}}, "Data option needs 'past'"),
        ({"data_option": None}, "Data option is missing"),
    ],
)
def test_invalid_definitions_are_422(admin: Api, change: dict[str, Any], message: str) -> None:
    response = admin("POST", "/api/v1/object_manager_attributes", json={**DUE, **change})
    assert response.status_code == 422
    assert response.json()["error_human"].startswith(message)


def test_duplicates_are_refused(admin: Api) -> None:
    assert admin("POST", "/api/v1/object_manager_attributes", json=TIER).status_code == 201
    again = admin("POST", "/api/v1/object_manager_attributes", json=TIER)
    assert (again.status_code, again.json()["error"]) == (422, "Object already exists!")


def test_update_takes_effect_after_the_next_migration(zammad: ZammadSandbox, admin: Api) -> None:
    ticket_id = customer_ticket(zammad)
    admin("POST", "/api/v1/object_manager_attributes", json=TIER)
    admin("POST", MIGRATE)
    attr_id = named(admin, "sla_tier")["id"]
    options = {"options": {"partner": "Partner", "gold": "Gold"}, "default": "", "null": True}
    updated = admin(
        "PUT", f"/api/v1/object_manager_attributes/{attr_id}", json={"data_option": options}
    )
    assert (updated.status_code, updated.json()["to_config"]) == (200, True)
    path = f"/api/v1/tickets/{ticket_id}"
    assert admin("PUT", path, json={"sla_tier": "gold"}).status_code == 422
    admin("POST", MIGRATE)
    assert admin("PUT", path, json={"sla_tier": "gold"}).json()["sla_tier"] == "gold"
    changed_type = admin(
        "PUT", f"/api/v1/object_manager_attributes/{attr_id}", json={"data_type": "input"}
    )
    assert changed_type.status_code == 422


def test_delete_removes_the_attribute_at_migration(zammad: ZammadSandbox, admin: Api) -> None:
    ticket_id = customer_ticket(zammad)
    admin("POST", "/api/v1/object_manager_attributes", json=TIER)
    admin("POST", MIGRATE)
    admin("PUT", f"/api/v1/tickets/{ticket_id}", json={"sla_tier": "partner"})
    attr_id = named(admin, "sla_tier")["id"]
    assert admin("DELETE", f"/api/v1/object_manager_attributes/{attr_id}").status_code == 200
    assert zammad.ticket(ticket_id)["sla_tier"] == "partner"
    admin("POST", MIGRATE)
    assert "sla_tier" not in zammad.ticket(ticket_id)
    assert admin("GET", f"/api/v1/object_manager_attributes/{attr_id}").status_code == 404


def test_only_admins_manage_attributes(zammad: ZammadSandbox) -> None:
    bot = Api(zammad.base_url)
    assert bot("POST", "/api/v1/object_manager_attributes", json=DUE).status_code == 403
    assert bot("POST", MIGRATE).status_code == 403
    bot.close()
