"""The fake Zammad's database: tables of plain rows behind one re-entrant lock.

Rows are dicts of column values (aware ``datetime`` for time columns), the way Zammad's
ActiveRecord models hold them; :mod:`~connector.sandbox.zammad.views` turns them into the JSON
the REST API and the webhook payload show. The default content mirrors a fresh Zammad: user 1
is the system user ``-`` (the owner of unassigned tickets, facts §9.1), roles Admin/Agent/
Customer, priorities ``1 low``/``2 normal``/``3 high`` (``2 normal`` is ``default_create``), the
ticket states, article senders (Agent 1, Customer 2, System 3; §9.1 shows Customer = 2) and the
group ``Users``. Ids of states and article types other than those named in the facts doc are
this sandbox's choice, not Zammad's.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable, Iterable
from typing import Any

from connector.sandbox.zammad.errors import ApiError, NotFound, invalid
from connector.sandbox.zammad.objects import ObjectManager

Row = dict[str, Any]
Clock = Callable[[], dt.datetime]

SYSTEM_USER_ID = 1
ROLES = {1: "Admin", 2: "Agent", 3: "Customer"}
SENDERS = {1: "Agent", 2: "Customer", 3: "System"}
ARTICLE_TYPES = {1: "email", 5: "phone", 10: "note", 11: "web"}
_PRIORITIES = (("1 low", False), ("2 normal", True), ("3 high", False))
_STATES = (
    ("new", "new"),
    ("open", "open"),
    ("pending reminder", "pending reminder"),
    ("closed", "closed"),
    ("merged", "merged"),
    ("pending close", "pending action"),
)
TABLES = (
    "User",
    "Organization",
    "Group",
    "TicketPriority",
    "TicketState",
    "Ticket",
    "TicketArticle",
    "Trigger",
    "Webhook",
)


class Store:
    """All tables of one sandbox; callers hold :attr:`lock` across a whole transaction.

    Args:
        clock: returns the current time, aware (tests pass a controllable one).
    """

    def __init__(self, clock: Clock) -> None:
        self.lock = threading.RLock()
        self._clock = clock
        self.tables: dict[str, dict[int, Row]] = {name: {} for name in TABLES}
        self.tags: dict[int, list[str]] = {}
        self.objects = ObjectManager(self.now)
        self._last_id: dict[str, int] = dict.fromkeys(TABLES, 0)
        self._seed()

    def now(self) -> dt.datetime:
        """The clock's time in UTC; refuses a naive clock."""
        moment = self._clock()
        if moment.tzinfo is None:
            raise ValueError("the Zammad sandbox clock must return aware datetimes")
        return moment.astimezone(dt.UTC)

    def insert(self, table: str, row: Row, actor_id: int = SYSTEM_USER_ID) -> Row:
        """Add ``row`` with the next id and the bookkeeping columns; returns the stored row."""
        with self.lock:
            self._last_id[table] += 1
            now = self.now()
            stored: Row = {
                "id": self._last_id[table],
                **row,
                "created_by_id": row.get("created_by_id", actor_id),
                "updated_by_id": row.get("updated_by_id", actor_id),
                "created_at": now,
                "updated_at": now,
            }
            self.tables[table][stored["id"]] = stored
            return stored

    def get(self, table: str, row_id: object) -> Row:
        """The row ``row_id`` of ``table``; :class:`NotFound` (404) if there is none."""
        try:
            key = int(str(row_id))
        except ValueError:
            raise NotFound(table, row_id) from None
        row = self.tables[table].get(key)
        if row is None:
            raise NotFound(table, row_id)
        return row

    def by_name(self, table: str, name: str) -> Row | None:
        """The row whose ``name`` equals ``name`` (case-insensitive), if any."""
        wanted = name.strip().lower()
        return next(
            (row for row in self.tables[table].values() if str(row["name"]).lower() == wanted),
            None,
        )

    def find_user(self, ref: object) -> Row | None:
        """A user by id, login or e-mail (case-insensitive), as Zammad's ``From`` header allows."""
        if isinstance(ref, int) or (isinstance(ref, str) and ref.isdigit()):
            return self.tables["User"].get(int(ref))
        if not isinstance(ref, str):
            return None
        wanted = ref.strip().lower()
        return next(
            (
                user
                for user in self.tables["User"].values()
                if wanted in (str(user["login"]).lower(), str(user["email"] or "").lower())
            ),
            None,
        )

    def roles_of(self, user_id: int) -> list[str]:
        """Role names of a user (empty for an unknown id)."""
        user = self.tables["User"].get(user_id)
        return [ROLES[role] for role in user["role_ids"]] if user else []

    def is_admin(self, user_id: int) -> bool:
        """Whether the user has the Admin role (``admin.*`` permissions)."""
        return "Admin" in self.roles_of(user_id)

    def is_agent(self, user_id: int) -> bool:
        """Whether the user has the Agent role (``ticket.agent``)."""
        return "Agent" in self.roles_of(user_id)

    def execute_migrations(self) -> None:
        """Run pending object-manager migrations; dropped attributes vanish from every row."""
        with self.lock:
            for obj, name in self.objects.execute_migrations():
                for row in self.tables[obj].values():
                    row.pop(name, None)

    def add_user(
        self,
        login: str,
        *,
        email: str | None = None,
        firstname: str = "",
        lastname: str = "",
        organization_id: int | None = None,
        roles: Iterable[str] = ("Customer",),
        attributes: dict[str, Any] | None = None,
    ) -> Row:
        """Create a user; ``attributes`` must be migrated User attributes."""
        with self.lock:
            if self.find_user(login) is not None:
                raise invalid(f"Login {login!r} is already used for another user")
            if organization_id is not None:
                self.get("Organization", organization_id)
            role_ids = [_role_id(name) for name in roles]
            row = _user_row(login, email, firstname, lastname, organization_id, role_ids)
            row.update(self.objects.checked_values("User", attributes or {}))
            return self.insert("User", row)

    def add_organization(self, name: str, *, attributes: dict[str, Any] | None = None) -> Row:
        """Create an organization; ``attributes`` must be migrated Organization attributes."""
        with self.lock:
            if self.by_name("Organization", name) is not None:
                raise ApiError(422, "Object already exists!", "Object already exists!")
            row: Row = {
                "name": name,
                "shared": True,
                "domain": "",
                "domain_assignment": False,
                "active": True,
                "vip": False,
                "note": "",
            }
            row.update(self.objects.checked_values("Organization", attributes or {}))
            return self.insert("Organization", row)

    def add_group(self, name: str) -> Row:
        """Create a group (agents here have access to every group)."""
        with self.lock:
            if self.by_name("Group", name) is not None:
                raise ApiError(422, "Object already exists!", "Object already exists!")
            row: Row = {
                "name": name,
                "assignment_timeout": None,
                "follow_up_possible": "yes",
                "follow_up_assignment": True,
                "email_address_id": None,
                "signature_id": None,
                "shared_drafts": True,
                "active": True,
                "note": "",
            }
            return self.insert("Group", row)

    def _seed(self) -> None:
        system = _user_row("-", None, "-", "", None, [])
        system["active"] = False
        self.insert("User", system)
        for name, default_create in _PRIORITIES:
            self.insert(
                "TicketPriority",
                {"name": name, "default_create": default_create, "active": True, "note": None},
            )
        for name, state_type in _STATES:
            self.insert("TicketState", {"name": name, "state_type": state_type, "active": True})
        self.add_group("Users")


def _role_id(name: str) -> int:
    for role_id, role in ROLES.items():
        if role.lower() == name.lower():
            return role_id
    raise ValueError(f"unknown role {name!r}; Zammad's roles are {', '.join(ROLES.values())}")


def _user_row(
    login: str,
    email: str | None,
    firstname: str,
    lastname: str,
    organization_id: int | None,
    role_ids: list[int],
) -> Row:
    return {
        "organization_id": organization_id,
        "login": login,
        "firstname": firstname,
        "lastname": lastname,
        "email": email if email is not None else (login if "@" in login else ""),
        "image": None,
        "web": "",
        "phone": "",
        "mobile": "",
        "department": "",
        "address": "",
        "vip": False,
        "verified": False,
        "active": True,
        "note": "",
        "last_login": None,
        "source": None,
        "login_failed": 0,
        "out_of_office": False,
        "preferences": {},
        "role_ids": role_ids,
        "organization_ids": [],
        "group_ids": {},
        "authorization_ids": [],
    }
