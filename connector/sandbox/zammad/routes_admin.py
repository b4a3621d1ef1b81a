"""REST endpoints for users, organizations, lookups, the object manager, webhooks and triggers.

* ``GET /api/v1/users/:id[?expand=true]``, ``/users/me``, ``/users/search?query=`` → 200 with
  custom attributes
  (agents; a customer may read only themselves); ``POST /api/v1/users`` → 201 (role Customer
  unless an admin passes ``roles``).
* ``GET /api/v1/organizations/:id[?expand=true]`` → 200 with ``member_ids`` and custom
  attributes (agents; a customer only their own); ``POST /api/v1/organizations`` → 201.
* ``GET /api/v1/groups``, ``/ticket_priorities``, ``/ticket_states`` → 200 arrays (agents).
* Admin only (``admin.object``, ``admin.webhook``, ``admin.trigger``):
  ``GET/POST /api/v1/object_manager_attributes``, ``GET/PUT/DELETE …/:id``,
  ``POST /api/v1/object_manager_attributes_execute_migrations`` → 200 ``{}``;
  ``GET/POST /api/v1/webhooks`` and ``/api/v1/triggers``, ``GET/PUT/DELETE …/:id``.

Anything else is 403 ``Not authorized`` (facts §4.2): the integration user, an agent, gets 403 on
the admin endpoints unless it is given the Admin role.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from connector.sandbox.zammad import views
from connector.sandbox.zammad.api import Call, Core, Routes
from connector.sandbox.zammad.errors import ApiError, Forbidden
from connector.sandbox.zammad.state import Row, Store
from connector.sandbox.zammad.triggers import Automation


def _agent(core: Core, call: Call) -> None:
    if not (core.store.is_agent(call.actor_id) or core.store.is_admin(call.actor_id)):
        raise Forbidden()


def _admin(core: Core, call: Call) -> None:
    if not core.store.is_admin(call.actor_id):
        raise Forbidden()


def _attributes(store: Store, obj: str, params: Mapping[str, Any]) -> Row:
    columns = store.objects.columns(obj)
    return {k: store.objects.coerce(obj, k, v) for k, v in params.items() if k in columns}


def _object(call: Call) -> Row:
    if not isinstance(call.body, dict):
        raise ApiError(422, "Need a JSON object", "Need a JSON object")
    return call.body


# --- users, organizations, lookups ----------------------------------------------------------


def user_show(core: Core, call: Call, user_id: int) -> tuple[int, object]:
    row = core.store.get("User", user_id)
    if row["id"] != call.actor_id:
        _agent(core, call)
    return 200, views.user(core.store, row, expand=call.expand)


def user_me(core: Core, call: Call) -> tuple[int, object]:
    return user_show(core, call, call.actor_id)


def user_search(core: Core, call: Call) -> tuple[int, object]:
    """``GET /api/v1/users/search?query=&limit=`` (facts §4.6): agents only; an array of users
    whose login, e-mail or name contains the query (a stand-in for Elasticsearch)."""
    _agent(core, call)
    wanted = str(call.params.get("query", "")).strip().lower()
    try:
        limit = max(1, min(int(call.params.get("limit", 10)), 200))
    except ValueError:
        raise ApiError(422, "limit must be a number", "limit must be a number") from None
    found = [
        views.user(core.store, row, expand=call.expand)
        for row in sorted(core.store.tables["User"].values(), key=lambda r: int(r["id"]))
        if wanted
        in " ".join(
            str(row.get(key) or "") for key in ("login", "email", "firstname", "lastname")
        ).lower()
    ]
    return 200, found[:limit]


def user_create(core: Core, call: Call) -> tuple[int, object]:
    _agent(core, call)
    body, store = _object(call), core.store
    login = str(body.get("login") or body.get("email") or "").strip()
    if not login:
        raise ApiError(422, "Attribute 'login' required!", "Attribute 'login' required!")
    org_id = body.get("organization_id")
    if org_id is None and body.get("organization"):
        found = store.by_name("Organization", str(body["organization"]))
        org_id = found["id"] if found else None
    roles = body.get("roles") if store.is_admin(call.actor_id) else None
    try:
        row = store.add_user(
            login,
            email=body.get("email"),
            firstname=str(body.get("firstname") or ""),
            lastname=str(body.get("lastname") or ""),
            organization_id=int(org_id) if org_id is not None else None,
            roles=roles or ("Customer",),
            attributes=_attributes(store, "User", body),
        )
    except ValueError as exc:
        raise ApiError(422, str(exc), str(exc)) from None
    return 201, views.user(store, row, expand=call.expand)


def organization_show(core: Core, call: Call, organization_id: int) -> tuple[int, object]:
    row = core.store.get("Organization", organization_id)
    me = core.store.tables["User"][call.actor_id]
    if me["organization_id"] != row["id"]:
        _agent(core, call)
    return 200, views.organization(core.store, row, expand=call.expand)


def organization_create(core: Core, call: Call) -> tuple[int, object]:
    _agent(core, call)
    body = _object(call)
    name = str(body.get("name") or "").strip()
    if not name:
        raise ApiError(422, "Attribute 'name' required!", "Attribute 'name' required!")
    attributes = _attributes(core.store, "Organization", body)
    row = core.store.add_organization(name, attributes=attributes)
    return 201, views.organization(core.store, row, expand=call.expand)


def _lister(table: str) -> Any:
    def handler(core: Core, call: Call) -> tuple[int, object]:
        _agent(core, call)
        rows = sorted(core.store.tables[table].values(), key=lambda row: row["id"])
        return 200, [views.plain(core.store, table, row) for row in rows]

    return handler


# --- object manager ---------------------------------------------------------------------------


def attributes(core: Core, call: Call) -> tuple[int, object]:
    _admin(core, call)
    return 200, core.store.objects.listing()


def attribute_show(core: Core, call: Call, attr_id: int) -> tuple[int, object]:
    _admin(core, call)
    return 200, core.store.objects.show(core.store.objects.get(attr_id))


def attribute_create(core: Core, call: Call) -> tuple[int, object]:
    _admin(core, call)
    row = core.store.objects.create(_object(call), call.actor_id)
    return 201, core.store.objects.show(row)


def attribute_update(core: Core, call: Call, attr_id: int) -> tuple[int, object]:
    _admin(core, call)
    row = core.store.objects.update(attr_id, _object(call), call.actor_id)
    return 200, core.store.objects.show(row)


def attribute_delete(core: Core, call: Call, attr_id: int) -> tuple[int, object]:
    _admin(core, call)
    core.store.objects.delete(attr_id)
    return 200, {}


def migrations(core: Core, call: Call) -> tuple[int, object]:
    _admin(core, call)
    core.store.execute_migrations()
    return 200, {}


# --- webhooks and triggers --------------------------------------------------------------------


def _records(table: str) -> list[tuple[str, str, Any]]:
    """CRUD handlers for ``Webhook`` or ``Trigger`` (admin only)."""
    path = {"Webhook": "/api/v1/webhooks", "Trigger": "/api/v1/triggers"}[table]
    show = Automation.show_webhook if table == "Webhook" else Automation.show

    def listing(core: Core, call: Call) -> tuple[int, object]:
        _admin(core, call)
        rows = sorted(core.store.tables[table].values(), key=lambda row: row["id"])
        return 200, [show(row) for row in rows]

    def one(core: Core, call: Call, row_id: int) -> tuple[int, object]:
        _admin(core, call)
        return 200, show(core.store.get(table, row_id))

    def create(core: Core, call: Call) -> tuple[int, object]:
        _admin(core, call)
        automation = core.automation
        make = automation.create_webhook if table == "Webhook" else automation.create_trigger
        return 201, show(make(_object(call), call.actor_id))

    def change(core: Core, call: Call, row_id: int) -> tuple[int, object]:
        _admin(core, call)
        automation = core.automation
        edit = automation.update_webhook if table == "Webhook" else automation.update_trigger
        return 200, show(edit(row_id, _object(call), call.actor_id))

    def remove(core: Core, call: Call, row_id: int) -> tuple[int, object]:
        _admin(core, call)
        core.automation.delete(table, row_id)
        return 200, {}

    return [
        (path, "GET", listing),
        (path, "POST", create),
        (f"{path}/<int:row_id>", "GET", one),
        (f"{path}/<int:row_id>", "PUT", change),
        (f"{path}/<int:row_id>", "DELETE", remove),
    ]


ROUTES: Routes = (
    ("/api/v1/users/me", "GET", user_me),
    ("/api/v1/users/search", "GET", user_search),
    ("/api/v1/users/<int:user_id>", "GET", user_show),
    ("/api/v1/users", "POST", user_create),
    ("/api/v1/organizations/<int:organization_id>", "GET", organization_show),
    ("/api/v1/organizations", "POST", organization_create),
    ("/api/v1/groups", "GET", _lister("Group")),
    ("/api/v1/ticket_priorities", "GET", _lister("TicketPriority")),
    ("/api/v1/ticket_states", "GET", _lister("TicketState")),
    ("/api/v1/object_manager_attributes", "GET", attributes),
    ("/api/v1/object_manager_attributes", "POST", attribute_create),
    ("/api/v1/object_manager_attributes/<int:attr_id>", "GET", attribute_show),
    ("/api/v1/object_manager_attributes/<int:attr_id>", "PUT", attribute_update),
    ("/api/v1/object_manager_attributes/<int:attr_id>", "DELETE", attribute_delete),
    ("/api/v1/object_manager_attributes_execute_migrations", "POST", migrations),
    *_records("Webhook"),
    *_records("Trigger"),
)
