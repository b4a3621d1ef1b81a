"""Ticket transactions of the fake Zammad: create, update (REST ``PUT`` or an agent), tags.

Update semantics reproduced (facts §4.4, ``tickets_controller#update``):

* unknown keys are **silently dropped**; custom attributes count only once migrated;
* always dropped: ``id, number, created_at, updated_at, created_by_id, updated_by_id,
  created_by, updated_by``; for non-agents also ``owner(_id), customer(_id),
  organization(_id), preferences``;
* association names are converted (``"priority": "3 high"``, ``"group": "Sales"``,
  ``"state": "open"``, users by login or e-mail); an unknown name is a 422 without human text;
* ``preferences`` is merged, not replaced; escalation columns are accepted (Zammad computes them,
  so treat them as read-only);
* attribute validation (past/future datetimes, select options, ISO times, fields the ``edit``
  screen marks required) applies to API writes that change something;
* no optimistic locking: writers serialize on one lock, the last write wins; a lock conflict
  (deadlock, lock-wait timeout) is ``StatementInvalid`` → 422 without human text, i.e. opaque
  for non-admins (:meth:`Tickets.update` raises the queued :attr:`Tickets.lock_conflicts`);
* every create and every update with a change is a **transaction** that runs the triggers
  (including updates by the integration user, §3); an update that changes nothing is no
  transaction (*inference*: Rails saves nothing and Zammad's observer sees no changes);
* tags are not transactions: adding/removing a tag only touches ``updated_at`` (§3.5, §4.5).

The Python API (``api=False``) stands for an agent in the web UI: no API validation, and an
attribute that does not exist is an error instead of being dropped.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from connector.sandbox.zammad.articles import add_article
from connector.sandbox.zammad.errors import ApiError, invalid
from connector.sandbox.zammad.state import SYSTEM_USER_ID, Row, Store
from connector.sandbox.zammad.times import parse_time
from connector.sandbox.zammad.values import humanize
from connector.sandbox.zammad.views import TICKET_TIME_COLUMNS

ALWAYS_DROPPED = frozenset(
    {"id", "number", "created_at", "updated_at", "created_by_id", "updated_by_id"}
    | {"created_by", "updated_by"}
)
AGENT_ONLY = frozenset(
    {"owner", "owner_id", "customer", "customer_id", "organization", "organization_id"}
    | {"preferences"}
)
ASSOCIATIONS = {
    "group": "Group",
    "priority": "TicketPriority",
    "state": "TicketState",
    "organization": "Organization",
    "owner": "User",
    "customer": "User",
}
_REQUIRED_IDS = ("group_id", "state_id", "priority_id", "customer_id", "owner_id")
_WRITABLE = frozenset(
    {f"{name}_id" for name in ASSOCIATIONS}
    | {"title", "note", "type", "time_unit", "preferences"}
    | set(TICKET_TIME_COLUMNS)
)


@dataclass(frozen=True)
class Transaction:
    """One create or update of a ticket, as Zammad's transaction dispatcher hands to triggers.

    Attributes:
        ticket_id: the ticket.
        action: ``create`` or ``update``.
        changes: columns whose value changed (all set columns on create).
        article_id: the article added in this transaction, if any.
        user_id: the acting user (``current_user``).
    """

    ticket_id: int
    action: str
    changes: frozenset[str]
    article_id: int | None
    user_id: int


class Tickets:
    """Ticket writes; ``dispatch`` receives each :class:`Transaction` under the store lock."""

    def __init__(self, store: Store, dispatch: Callable[[Transaction], None]) -> None:
        self._store = store
        self._dispatch = dispatch
        #: messages of the lock conflicts the next REST updates run into, oldest first
        self.lock_conflicts: list[str] = []

    def create(self, params: Mapping[str, Any], actor_id: int, *, api: bool) -> Row:
        """A new ticket with its first article (``params["article"]``) → ``create`` triggers."""
        store = self._store
        with store.lock:
            values = self._clean(params, actor_id, api=api, current=None)
            if not str(values.get("title") or "").strip():
                raise ApiError(422, "Attribute 'title' required!", "Attribute 'title' required!")
            values.setdefault("state_id", _state_id(store, "new"))
            priorities = store.tables["TicketPriority"].values()
            values.setdefault(
                "priority_id", next(p["id"] for p in priorities if p["default_create"])
            )
            values.setdefault("owner_id", SYSTEM_USER_ID)
            values.setdefault("customer_id", actor_id if not store.is_agent(actor_id) else None)
            customer = store.tables["User"].get(values["customer_id"])
            if customer is not None:
                values.setdefault("organization_id", customer["organization_id"])
            for column in _REQUIRED_IDS:
                if values.get(column) is None:
                    raise invalid(f"{humanize(column)} can't be blank")
            row = store.insert("Ticket", {**_empty_ticket(), **values}, actor_id)
            row["number"] = f"31{row['id']:06d}"
            article_id = None
            if isinstance(params.get("article"), Mapping):
                sender = "Agent" if store.is_agent(actor_id) else "Customer"
                article_id = add_article(store, row, params["article"], actor_id, sender)["id"]
            changes = frozenset(key for key, value in row.items() if value not in (None, {}, ""))
            self._dispatch(Transaction(row["id"], "create", changes, article_id, actor_id))
            return row

    def update(
        self, ticket_id: object, params: Mapping[str, Any], actor_id: int, *, api: bool
    ) -> Row:
        """Apply a ``PUT`` body (or an agent's edit); a real change runs ``update`` triggers."""
        store = self._store
        with store.lock:
            row = store.get("Ticket", ticket_id)
            if api and self.lock_conflicts:  # ``ticket.with_lock`` lost: StatementInvalid
                raise ApiError(422, self.lock_conflicts.pop(0), None)
            values = self._clean(params, actor_id, api=api, current=row)
            if "preferences" in values:
                values["preferences"] = {**row["preferences"], **values["preferences"]}
            changes = frozenset(key for key, value in values.items() if row.get(key) != value)
            article = params.get("article")
            if not changes and not isinstance(article, Mapping):
                return row
            if row["updated_by_id"] != actor_id:
                changes |= {"updated_by_id"}
            if api:
                for name in changes & set(store.objects.columns("Ticket")):
                    store.objects.check_time("Ticket", name, values[name])
                self._check_required({**row, **values}, actor_id)
            row.update({key: values[key] for key in changes if key in values})
            row.update(updated_at=store.now(), updated_by_id=actor_id)
            article_id = None
            if isinstance(article, Mapping):
                sender = "Agent" if store.is_agent(actor_id) else "Customer"
                article_id = add_article(store, row, article, actor_id, sender)["id"]
            self._dispatch(Transaction(row["id"], "update", changes, article_id, actor_id))
            return row

    def tag_add(self, ticket_id: object, item: object) -> None:
        """Add a tag (a present tag is fine); touches ``updated_at``, fires no trigger."""
        tag = _tag(item)
        with self._store.lock:
            row = self._store.get("Ticket", ticket_id)
            tags = self._store.tags.setdefault(row["id"], [])
            if tag not in tags:
                tags.append(tag)
                row["updated_at"] = self._store.now()

    def tag_remove(self, ticket_id: object, item: object) -> None:
        """Remove a tag (an absent tag is fine); touches ``updated_at``, fires no trigger."""
        tag = _tag(item)
        with self._store.lock:
            row = self._store.get("Ticket", ticket_id)
            tags = self._store.tags.setdefault(row["id"], [])
            if tag in tags:
                tags.remove(tag)
                row["updated_at"] = self._store.now()

    def _clean(
        self, params: Mapping[str, Any], actor_id: int, *, api: bool, current: Row | None
    ) -> Row:
        store = self._store
        custom = store.objects.columns("Ticket")
        agent = store.is_agent(actor_id) or not api
        values: Row = {}
        for key, value in params.items():
            if key in ALWAYS_DROPPED or key == "article" or (not agent and key in AGENT_ONLY):
                continue
            if key in ASSOCIATIONS and f"{key}_id" not in params:
                values[f"{key}_id"] = self._lookup(key, value)
            elif key.endswith("_id") and key[:-3] in ASSOCIATIONS:
                values[key] = self._existing(key, value)
            elif key in TICKET_TIME_COLUMNS:
                values[key] = _time(key, value)
            elif key == "preferences":
                if not isinstance(value, Mapping):
                    raise invalid("Preferences must be an object")
                values[key] = copy.deepcopy(dict(value))
            elif key in _WRITABLE:
                values[key] = None if value is None else str(value)
            elif key in custom:
                values[key] = store.objects.coerce("Ticket", key, value)
            elif not api:
                raise ValueError(f"Ticket has no attribute {key!r}: create and migrate it first")
        customer_id = values.get("customer_id")
        changed_customer = current is None or customer_id != current["customer_id"]
        if customer_id is not None and changed_customer and "organization_id" not in values:
            values["organization_id"] = store.tables["User"][customer_id]["organization_id"]
        return values

    def _lookup(self, key: str, value: object) -> int | None:
        if value is None:
            return None
        table = ASSOCIATIONS[key]
        if table == "User":
            found = self._store.find_user(value)
        else:
            found = self._store.by_name(table, str(value))
        if found is None:
            raise ApiError(422, f"No lookup value found for '{key}': {value!r}", None)
        return int(found["id"])

    def _existing(self, key: str, value: object) -> int | None:
        if value in (None, "") and key in ("organization_id",):
            return None
        table = ASSOCIATIONS[key[:-3]]
        try:
            return int(self._store.get(table, value)["id"])
        except ApiError:
            raise invalid(f"{humanize(key)} must exist") from None

    def _check_required(self, values: Row, actor_id: int) -> None:
        permission = "ticket.agent" if self._store.is_agent(actor_id) else "ticket.customer"
        for name in self._store.objects.required_on_edit("Ticket", permission):
            if values.get(name) in (None, "", []):
                raise invalid(f"{humanize(name)} is required but missing.")


def _state_id(store: Store, name: str) -> int:
    state = store.by_name("TicketState", name)
    if state is None:
        raise ValueError(f"no ticket state {name!r}")
    return int(state["id"])


def _empty_ticket() -> Row:
    columns: Row = dict.fromkeys(
        ("group_id", "priority_id", "state_id", "organization_id", "number", "title"), None
    )
    columns.update(owner_id=SYSTEM_USER_ID, customer_id=None, note=None)
    columns.update(dict.fromkeys(TICKET_TIME_COLUMNS))
    for prefix in ("first_response", "close", "update"):
        columns.update({f"{prefix}_in_min": None, f"{prefix}_diff_in_min": None})
    columns.update(
        create_article_type_id=None,
        create_article_sender_id=None,
        article_count=0,
        type=None,
        time_unit=None,
        preferences={},
    )
    return columns


def _time(key: str, value: object) -> Any:
    if value is None:
        return None
    try:
        return parse_time(value)
    except ValueError:
        raise invalid(f"{humanize(key)} is not a valid ISO 8601 time: {value!r}") from None


def _tag(item: object) -> str:
    if not isinstance(item, str) or not item.strip():
        raise ApiError(422, "Need item param", None)
    return item.strip()
