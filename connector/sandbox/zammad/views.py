"""JSON shapes of the fake Zammad's records, for the REST API and the webhook payload.

Zammad shows one record three ways (facts §4.4, §9.2, §2.1):

* plain (``attributes_with_association_ids``): every column, custom attributes included, with
  association ids only (``group_id``, ``priority_id``, …);
* ``?expand=true``: plus association **names** as strings (``"group": "2nd Level"``,
  ``"priority": "3 high"``, users by login) and ``article_ids``;
* the default webhook payload: names, and for tickets the associations ``owner, customer,
  created_by, updated_by, organization, priority, group`` expanded into whole objects (``state``
  stays a name); user objects never carry ``last_login, login_failed, password, preferences,
  group_ids, groups, authorization_ids, authorizations``; keys sorted.

Times are ISO 8601 UTC with milliseconds (:func:`~connector.sandbox.zammad.times.iso`).
"""

from __future__ import annotations

from connector.sandbox.zammad.state import ARTICLE_TYPES, ROLES, SENDERS, Row, Store
from connector.sandbox.zammad.values import output

TICKET_TIME_COLUMNS = (
    "first_response_at",
    "first_response_escalation_at",
    "close_at",
    "close_escalation_at",
    "update_escalation_at",
    "last_contact_at",
    "last_contact_agent_at",
    "last_contact_customer_at",
    "last_owner_update_at",
    "escalation_at",
    "pending_time",
)
_USER_BLACKLIST = frozenset(
    {
        "last_login",
        "login_failed",
        "password",
        "preferences",
        "group_ids",
        "groups",
        "authorization_ids",
        "authorizations",
    }
)
_TICKET_USERS = ("owner", "customer", "created_by", "updated_by")


def plain(store: Store, table: str, row: Row) -> Row:
    """Every column of ``row`` as JSON, with the usable custom attributes of its object."""
    shown = {key: output(value) for key, value in row.items()}
    obj = {"Ticket": "Ticket", "User": "User", "Organization": "Organization"}.get(table)
    if obj is not None:
        for name in store.objects.columns(obj):
            shown[name] = output(row.get(name))
    if table == "Organization":
        shown["member_ids"] = _members(store, row["id"])
    if table == "Group":
        shown["user_ids"] = _agents(store)
    return shown


def login_of(store: Store, user_id: object) -> str | None:
    """The login of user ``user_id``, None if unset or unknown."""
    user = store.tables["User"].get(user_id) if isinstance(user_id, int) else None
    return str(user["login"]) if user else None


def name_of(store: Store, table: str, row_id: object) -> str | None:
    """The ``name`` of a row referenced by id, None if unset or unknown."""
    row = store.tables[table].get(row_id) if isinstance(row_id, int) else None
    return str(row["name"]) if row else None


def ticket(store: Store, row: Row, *, expand: bool = False) -> Row:
    """A ticket as ``GET /api/v1/tickets/:id`` (``expand``: with names and ``article_ids``)."""
    shown = plain(store, "Ticket", row)
    if expand:
        shown.update(_ticket_names(store, row))
    return shown


def article(store: Store, row: Row) -> Row:
    """An article as ``GET /api/v1/ticket_articles/by_ticket/:id`` lists it."""
    shown = plain(store, "TicketArticle", row)
    shown.update(
        sender=SENDERS.get(row["sender_id"]),
        type=ARTICLE_TYPES.get(row["type_id"]),
        created_by=login_of(store, row["created_by_id"]),
        updated_by=login_of(store, row["updated_by_id"]),
        origin_by=login_of(store, row["origin_by_id"]),
        attachments=[],
    )
    return shown


def user(store: Store, row: Row, *, expand: bool = False) -> Row:
    """A user as ``GET /api/v1/users/:id`` (``expand``: organization and role names)."""
    shown = plain(store, "User", row)
    if expand:
        shown.update(
            organization=name_of(store, "Organization", row["organization_id"]),
            organizations=[name_of(store, "Organization", o) for o in row["organization_ids"]],
            roles=[ROLES[role] for role in row["role_ids"]],
        )
    return shown


def organization(store: Store, row: Row, *, expand: bool = False) -> Row:
    """An organization as ``GET /api/v1/organizations/:id`` (``expand``: member logins)."""
    shown = plain(store, "Organization", row)
    if expand:
        shown["members"] = [login_of(store, member) for member in shown["member_ids"]]
    return shown


def search_assets(store: Store, tickets: list[Row]) -> dict[str, dict[str, Row]]:
    """The ``assets`` of a non-expanded search: the tickets and the records they reference."""
    assets: dict[str, dict[str, Row]] = {"Ticket": {}, "User": {}, "Organization": {}, "Group": {}}
    for row in tickets:
        assets["Ticket"][str(row["id"])] = ticket(store, row)
        for column in ("customer_id", "owner_id", "created_by_id", "updated_by_id"):
            person = store.tables["User"].get(row[column])
            if person is not None:
                assets["User"][str(person["id"])] = user(store, person)
        org = store.tables["Organization"].get(row["organization_id"])
        if org is not None:
            assets["Organization"][str(org["id"])] = organization(store, org)
        group = store.tables["Group"].get(row["group_id"])
        if group is not None:
            assets["Group"][str(group["id"])] = plain(store, "Group", group)
    return assets


# --- webhook payload (facts §2.1) -----------------------------------------------------------


def payload_ticket(store: Store, row: Row) -> Row:
    """``ticket`` of the default payload: all columns, names, associations as objects."""
    shown = ticket(store, row, expand=True)
    for name in _TICKET_USERS:
        person = store.tables["User"].get(row[f"{name}_id"])
        shown[name] = payload_user(store, person) if person else None
    for name, table in (
        ("organization", "Organization"),
        ("priority", "TicketPriority"),
        ("group", "Group"),
    ):
        referenced = store.tables[table].get(row[f"{name}_id"])
        shown[name] = _with_names(store, table, referenced) if referenced else None
    return dict(sorted(shown.items()))


def payload_article(store: Store, row: Row | None) -> Row:
    """``article`` of the default payload: ``{}`` when the transaction had no article."""
    if row is None:
        return {}
    shown = article(store, row)
    for name in ("created_by", "updated_by"):
        person = store.tables["User"].get(row[f"{name}_id"])
        shown[name] = payload_user(store, person) if person else None
    shown["accounted_time"] = 0
    return dict(sorted(shown.items()))


def payload_user(store: Store, row: Row) -> Row:
    """A user object inside the payload: names added, secrets and UI data left out."""
    shown = {k: v for k, v in user(store, row, expand=True).items() if k not in _USER_BLACKLIST}
    return dict(sorted(shown.items()))


def _with_names(store: Store, table: str, row: Row) -> Row:
    shown = plain(store, table, row)
    shown["created_by"] = login_of(store, row["created_by_id"])
    shown["updated_by"] = login_of(store, row["updated_by_id"])
    if table == "Organization":
        shown["members"] = [login_of(store, member) for member in shown["member_ids"]]
    if table == "Group":
        shown["users"] = [login_of(store, agent) for agent in shown["user_ids"]]
    return dict(sorted(shown.items()))


def _ticket_names(store: Store, row: Row) -> Row:
    articles = [
        a["id"] for a in store.tables["TicketArticle"].values() if a["ticket_id"] == row["id"]
    ]
    return {
        "article_ids": sorted(articles),
        "ticket_time_accounting_ids": [],
        "group": name_of(store, "Group", row["group_id"]),
        "organization": name_of(store, "Organization", row["organization_id"]),
        "state": name_of(store, "TicketState", row["state_id"]),
        "priority": name_of(store, "TicketPriority", row["priority_id"]),
        "owner": login_of(store, row["owner_id"]),
        "customer": login_of(store, row["customer_id"]),
        "created_by": login_of(store, row["created_by_id"]),
        "updated_by": login_of(store, row["updated_by_id"]),
        "create_article_type": ARTICLE_TYPES.get(row["create_article_type_id"]),
        "create_article_sender": SENDERS.get(row["create_article_sender_id"]),
    }


def _members(store: Store, org_id: int) -> list[int]:
    return sorted(
        user_id
        for user_id, person in store.tables["User"].items()
        if person["organization_id"] == org_id or org_id in person["organization_ids"]
    )


def _agents(store: Store) -> list[int]:
    return sorted(user_id for user_id in store.tables["User"] if store.is_agent(user_id))
