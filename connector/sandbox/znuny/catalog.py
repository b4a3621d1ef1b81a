"""The reference data of a fresh Znuny: states, priorities, queues, agents and customers.

Ids and names are those of a stock Znuny 7 installation, as far as they show in the captured
TicketCreate request (``fixtures/znuny/TicketCreate.captured.json``: queue 2 ``Raw``, priority 3
``3 normal``, state 1 ``new``, type 1 ``Unclassified``, lock 1 ``unlock``, agent 1
``root@localhost`` "Admin OTRS"). The ``*Data``, ``CustomerUser`` and ``CustomerCompany`` blocks
rendered here keep the captured key sets, so a parser written against the capture reads them.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

#: (StateID, name, state type) of the stock states
STATES: tuple[tuple[int, str, str], ...] = (
    (1, "new", "new"),
    (2, "closed successful", "closed"),
    (3, "closed unsuccessful", "closed"),
    (4, "open", "open"),
    (5, "removed", "removed"),
    (6, "pending reminder", "pending reminder"),
    (7, "pending auto close+", "pending auto"),
    (8, "pending auto close-", "pending auto"),
    (9, "merged", "merged"),
)
STATE_TYPES = ("new", "open", "closed", "pending reminder", "pending auto", "removed", "merged")
#: SysConfig ``Ticket::ViewableStateType``: what TicketSearch's ``StateType => 'Open'`` means
VIEWABLE_STATE_TYPES = ("new", "open", "pending reminder", "pending auto")
PRIORITIES: tuple[tuple[int, str], ...] = (
    (1, "1 very low"),
    (2, "2 low"),
    (3, "3 normal"),
    (4, "4 high"),
    (5, "5 very high"),
)
LOCKS = {1: "unlock", 2: "lock", 3: "tmp_lock"}
TYPES = {1: "Unclassified"}
SENDER_TYPES = {"agent": "1", "system": "2", "customer": "3"}
CHANNELS = {"Email": 1, "Phone": 2, "Internal": 3}
#: the stock queues: (QueueID, name, comment)
STOCK_QUEUES: tuple[tuple[int, str, str], ...] = (
    (1, "Postmaster", "Postmaster queue."),
    (2, "Raw", "All default incoming tickets."),
    (3, "Junk", "All junk tickets."),
    (4, "Misc", "All misc tickets."),
)


#: agent preferences a stock installation returns with every user hash (captured values)
_AGENT_PREFERENCES: dict[str, Any] = {
    "UserCreateNextMask": "",
    "UserActivityLinkTarget": "_self",
    "UserLastViewsLimit": "5",
    "UserLastViewsPosition": "Avatar",
    "UserTicketOverviewSmallPageShown": "25",
    "UserTicketOverviewMediumPageShown": "20",
    "UserTicketOverviewPreviewPageShown": "15",
    "AdminCommunicationLogPageShown": "25",
    "AdminDynamicFieldsOverviewPageShown": "25",
    "UserLastLogin": "0",
}


@dataclass
class Agent:
    """An agent (``users`` table); ``password`` is what ``UserLogin``+``Password`` must match."""

    user_id: int
    login: str
    password: str
    first_name: str
    last_name: str
    email: str
    created: str

    def data(self) -> dict[str, Any]:
        """The ``OwnerData``/``ResponsibleData``/``CreateByData`` block (preferences trimmed)."""
        return {
            "UserID": self.user_id,
            "UserLogin": self.login,
            "UserFirstname": self.first_name,
            "UserLastname": self.last_name,
            "UserFullname": f"{self.first_name} {self.last_name}",
            "UserEmail": self.email,
            "UserTitle": None,
            "ValidID": 1,
            "CreateTime": self.created,
            "ChangeTime": self.created,
            "UserRefreshTime": "0",
            "UserLoginFailed": "0",
            "UserLastLoginTimestamp": self.created,
            **_AGENT_PREFERENCES,
        }


@dataclass
class Queue:
    queue_id: int
    name: str
    comment: str
    created: str
    group_id: int = 1

    def data(self) -> dict[str, Any]:
        """The ``QueueData`` block; escalation times are null, as on a stock queue."""
        return {
            "QueueID": self.queue_id,
            "Name": self.name,
            "GroupID": self.group_id,
            "Comment": self.comment,
            "ValidID": 1,
            "CreateTime": self.created,
            "ChangeTime": self.created,
            "SystemAddressID": 1,
            "SalutationID": 1,
            "SignatureID": 1,
            "FollowUpID": 1,
            "FollowUpLock": 0,
            "UnlockTimeout": 0,
            "Calendar": "",
            "Email": "znuny@localhost",
            "RealName": "Znuny System",
            "DefaultSignKey": None,
            "FirstResponseTime": None,
            "FirstResponseNotify": None,
            "UpdateTime": None,
            "UpdateNotify": None,
            "SolutionTime": None,
            "SolutionNotify": None,
        }


@dataclass
class CustomerCompany:
    """A customer company; ``fields`` are extra attributes (e.g. a license type) as keys."""

    customer_id: str
    name: str
    created: str
    fields: dict[str, Any] = field(default_factory=dict)

    def data(self) -> dict[str, Any]:
        base: dict[str, Any] = {
            "CustomerID": self.customer_id,
            "CustomerCompanyName": self.name,
            "CustomerCompanyStreet": None,
            "CustomerCompanyZIP": None,
            "CustomerCompanyCity": None,
            "CustomerCompanyCountry": None,
            "CustomerCompanyURL": None,
            "CustomerCompanyComment": None,
            "ValidID": 1,
            "Source": "CustomerCompany",
            "CreateTime": self.created,
            "ChangeTime": self.created,
            "CreateBy": 1,
            "ChangeBy": 1,
        }
        return {**base, **self.fields}


@dataclass
class CustomerUser:
    """A customer user; ``fields`` are extra attributes (e.g. a license key) as keys."""

    login: str
    email: str
    customer_id: str
    first_name: str
    last_name: str
    created: str
    fields: dict[str, Any] = field(default_factory=dict)

    def data(self, company: CustomerCompany | None) -> dict[str, Any]:
        """The ``CustomerUser`` block: the user's keys merged with its company's."""
        full = f"{self.first_name} {self.last_name}".strip()
        merged: dict[str, Any] = {}
        if company is not None:
            merged = {k: v for k, v in company.data().items() if k not in _USER_OWN_KEYS}
            merged["CustomerCompanyValidID"] = 1
        user: dict[str, Any] = {
            "UserLogin": self.login,
            "UserID": self.login,
            "UserEmail": self.email,
            "UserCustomerID": self.customer_id,
            "CustomerID": self.customer_id,
            "UserFirstname": self.first_name,
            "UserLastname": self.last_name,
            "UserFullname": full,
            "UserMailString": f'"{full}" <{self.email}>' if full else self.email,
            "UserTitle": "",
            "UserPhone": "",
            "UserMobile": "",
            "UserFax": "",
            "UserStreet": "",
            "UserZip": "",
            "UserCity": "",
            "UserCountry": "",
            "UserComment": "",
            "UserRefreshTime": "0",
            "UserShowTickets": "25",
            "UserLastViewsLimit": "5",
            "ValidID": 1,
            "Source": "CustomerUser",
            "CreateTime": self.created,
            "ChangeTime": self.created,
            "CreateBy": 1,
            "ChangeBy": 1,
        }
        return {**merged, **user, **self.fields}


_USER_OWN_KEYS = frozenset(
    {"CustomerID", "ValidID", "Source", "CreateTime", "ChangeTime", "CreateBy", "ChangeBy"}
)


def state_by_name(name: str) -> tuple[int, str, str] | None:
    return next((s for s in STATES if s[1] == name), None)


def state_by_id(state_id: int) -> tuple[int, str, str] | None:
    return next((s for s in STATES if s[0] == state_id), None)


def priority_data(priority_id: int, created: str) -> dict[str, Any]:
    """The ``PriorityData`` block."""
    name = dict(PRIORITIES)[priority_id]
    colors = {1: "#03c4f0", 2: "#83bfc8", 3: "#cdcdcd", 4: "#ffaaaa", 5: "#ff505e"}
    return {
        "ID": priority_id,
        "Name": name,
        "Color": colors[priority_id],
        "ValidID": 1,
        "CreateTime": created,
        "ChangeTime": created,
        "CreateBy": 1,
        "ChangeBy": 1,
    }


def type_data(type_id: int, created: str) -> dict[str, Any]:
    """The ``TypeData`` block."""
    return {
        "ID": type_id,
        "Name": TYPES[type_id],
        "ValidID": 1,
        "CreateTime": created,
        "ChangeTime": created,
        "CreateBy": 1,
        "ChangeBy": 1,
    }


def ticket_number(day: str, count: int) -> str:
    """A ``DateChecksum`` ticket number: date, SystemID 10, the day's counter, a check digit.

    Matches the captured ``2026112810000011`` (the first ticket of 2026-11-28, check digit 1).
    """
    digits = f"{day}10{count:05d}"
    total = sum(int(d) * (1 if i % 2 == 0 else 2) for i, d in enumerate(digits))
    check = 10 - total % 10
    return digits + str(1 if check == 10 else check)


def format_time(moment: dt.datetime, zone: dt.tzinfo) -> str:
    """``YYYY-MM-DD HH:MM:SS`` in ``OTRSTimeZone``: how Znuny writes every time (facts §3)."""
    return moment.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S")
