"""Znuny's JSON shapes: the ``Ticket::Generic`` invoker body and the GenericTicketConnector answers.

What Znuny sends us (facts §1 "Invoker Ticket::Generic", captured request
``TicketCreate.captured.json``):

* ``{"Event": {...}, "Ticket": {...}}``. ``Event`` is the event data plus the event name:
  ``TicketCreate`` has ``TicketID`` as an int, ``TicketPriorityUpdate`` and friends as a
  *string*, ``ArticleCreate`` adds ``ArticleID`` and ``OldTicketData``,
  ``TicketDynamicFieldUpdate_<Name>`` adds ``FieldName``, ``Value``, ``OldValue``, ``UserID``.
* ``Ticket`` is ``TicketDeepGet`` **at send time** (also on every retry), not at event time:
  flat ``DynamicField_<Name>`` keys (DateTime ``"YYYY-MM-DD HH:MM:SS"``, Multiselect a JSON
  array, unset ``null``), ``Changed``/``Created`` as ``"YYYY-MM-DD HH:MM:SS"``, IDs as ints,
  plus ``Article``, ``Articles``, ``CustomerUser``, ``CustomerCompany`` and more, which we accept
  and ignore: the worker re-reads the ticket over REST anyway.

What the REST API answers (facts §2): TicketGet ``{"Ticket": [{…, "DynamicField": [{"Name",
"Value"}], "Article": […]}]}``; TicketSearch ``{"TicketID": ["3", "2"]}`` or ``{}`` for no
hits; TicketUpdate ``{"TicketID", "TicketNumber"}``; and any operation may answer HTTP 200 with
``{"Error": {"ErrorCode": "TicketUpdate.InvalidParameter", "ErrorMessage": "…"}}``.

All times are wall-clock times in the instance's ``OTRSTimeZone`` without an offset (facts §3);
:func:`parse_time` and :func:`format_time` convert them to and from aware datetimes. In a zone
with daylight saving time one wall-clock hour a year happens twice; such a time reads as the
*later* instant, as Znuny itself reads it (``Kernel::System::DateTime`` builds Perl
``DateTime`` objects, which resolve an ambiguous local time to the latest UTC time), so
``Created`` and due times mean here what they mean to Znuny's escalations and agent UI.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import json
import re
from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from connector.policy.ticket import FieldValue, Party

OTRS_TIME = "%Y-%m-%d %H:%M:%S"
_OTRS_TIME = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$")
DF_PREFIX = "DynamicField_"
#: ``ErrorCode`` suffixes that retrying cannot fix: the request, the credentials, the ticket or
#: the web service are wrong (facts §2 "Errors"; the operations' ``ReturnError`` calls in
#: ``Kernel/GenericInterface/Operation/Ticket/TicketGet.pm``: ``WrongStructure`` for a TicketID
#: that is not a positive integer, ``NotValidTicketID`` / ``NotTicketData`` when no ticket data
#: can be read; ``TicketUpdate.pm``: ``EmptyRequest``; every operation:
#: ``Webservice.InvalidConfiguration``). Any other code is treated as transient.
PERMANENT_CODES = frozenset(
    {
        "AuthFail",
        "AccessDenied",
        "InvalidParameter",
        "MissingParameter",
        "WrongStructure",
        "NotValidTicketID",
        "NotTicketData",
        "EmptyRequest",
        "InvalidConfiguration",
    }
)


def _id_text(value: object) -> object:
    """Znuny sends ids as ints in some events and as strings in others: keep the text."""
    if isinstance(value, bool):
        return value  # let validation refuse it
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return value.strip()
    return value


Id = Annotated[str, BeforeValidator(_id_text), Field(min_length=1, max_length=64)]


def _error_text(value: object) -> object:
    """``ReturnError`` copies ``ErrorCode``/``ErrorMessage`` as given, so either may be ``null``
    (an undefined Perl value) or a number: read those as text rather than refuse the error."""
    if value is None:
        return ""
    if isinstance(value, str | int | float | bool):
        return str(value)
    return json.dumps(value, ensure_ascii=False, default=str)[:500]


ErrorText = Annotated[str, BeforeValidator(_error_text)]


class EventData(BaseModel):
    """The ``Event`` block: the event name and the event's own data."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    event: str = Field(alias="Event", min_length=1, max_length=200)
    ticket_id: Id | None = Field(default=None, alias="TicketID")
    article_id: Id | None = Field(default=None, alias="ArticleID")
    field_name: str | None = Field(default=None, alias="FieldName")
    value: Any = Field(default=None, alias="Value")


class TicketData(BaseModel):
    """The ``Ticket`` block (``TicketDeepGet`` at send time); only what the receiver needs."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    ticket_id: Id = Field(alias="TicketID")
    changed: str = Field(alias="Changed", pattern=_OTRS_TIME.pattern)

    def dynamic_fields(self) -> dict[str, Any]:
        """The flat ``DynamicField_<Name>`` keys, by DF name."""
        extra = self.model_extra or {}
        return {
            key.removeprefix(DF_PREFIX): value
            for key, value in extra.items()
            if key.startswith(DF_PREFIX)
        }

    def attribute(self, name: str) -> Any:
        """Any other top-level key of the block (``Priority``, ``Queue``, …), or None."""
        return (self.model_extra or {}).get(name)


class InvokerRequest(BaseModel):
    """The whole body a ``Ticket::Generic`` invoker POSTs."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    event: EventData = Field(alias="Event")
    ticket: TicketData = Field(alias="Ticket")


# --- REST answers ----------------------------------------------------------------------------


class ErrorBody(BaseModel):
    """``{"ErrorCode": "<Operation>.<Reason>", "ErrorMessage": "…"}``."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    code: ErrorText = Field(default="", alias="ErrorCode")
    message: ErrorText = Field(default="", alias="ErrorMessage")

    @property
    def permanent(self) -> bool:
        """Whether retrying cannot help: the request or the credentials are wrong."""
        return self.code.rsplit(".", 1)[-1] in PERMANENT_CODES


class DynamicFieldValue(BaseModel):
    """One entry of TicketGet's ``DynamicField`` list."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    name: str = Field(alias="Name")
    value: Any = Field(default=None, alias="Value")


class ArticleData(BaseModel):
    """An entry of TicketGet's ``Article`` list; only what the snapshot needs."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    article_id: Id | None = Field(default=None, alias="ArticleID")
    article_number: int | None = Field(default=None, alias="ArticleNumber")
    sender_type: str | None = Field(default=None, alias="SenderType")
    sender: str | None = Field(default=None, alias="From")
    sender_name: str | None = Field(default=None, alias="FromRealname")
    subject: str | None = Field(default=None, alias="Subject")
    body: str | None = Field(default=None, alias="Body")


class RestTicket(BaseModel):
    """One ticket of a TicketGet answer."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    ticket_id: Id = Field(alias="TicketID")
    number: str | None = Field(default=None, alias="TicketNumber")
    title: str | None = Field(default=None, alias="Title")
    created: str = Field(alias="Created", pattern=_OTRS_TIME.pattern)
    queue: str | None = Field(default=None, alias="Queue")
    priority: str | None = Field(default=None, alias="Priority")
    state: str | None = Field(default=None, alias="State")
    customer_id: str | None = Field(default=None, alias="CustomerID")
    customer_user_id: str | None = Field(default=None, alias="CustomerUserID")
    dynamic_field: list[DynamicFieldValue] = Field(default_factory=list, alias="DynamicField")
    article: list[ArticleData] = Field(default_factory=list, alias="Article")

    def dynamic_fields(self) -> dict[str, Any]:
        """DF name → value, from the ``DynamicField`` list (and flat keys, if any)."""
        found = {
            key.removeprefix(DF_PREFIX): value
            for key, value in (self.model_extra or {}).items()
            if key.startswith(DF_PREFIX)
        }
        found.update({entry.name: entry.value for entry in self.dynamic_field})
        return found

    def attribute(self, name: str) -> Any:
        """Any other top-level key of the ticket (``StateType``, ``Type``, …), or None."""
        return (self.model_extra or {}).get(name)

    def customer(self, mapping: Mapping[str, str]) -> Party | None:
        """The customer: ``CustomerUserID``, the first customer article's sender address (or
        the login, when it is one), and the attributes ``mapping`` names."""
        login = self.customer_user_id or None
        first = self.first_customer_article()
        address = email.utils.parseaddr(first.sender or "")[1] if first else ""
        if "@" not in address:
            address = login if login and "@" in login else ""
        extra = self.mapped(mapping)
        if not (login or address or extra):
            return None
        name = first.sender_name if first else None
        name = None if not name or "@" in name else name
        return Party(id=login, name=name, email=address or None, fields=extra)

    def organization(self, mapping: Mapping[str, str]) -> Party | None:
        """The customer company as far as TicketGet knows it: ``CustomerID`` (+ ``mapping``)."""
        extra = self.mapped(mapping)
        if not (self.customer_id or extra):
            return None
        return Party(id=self.customer_id or None, fields=extra)

    def mapped(self, mapping: Mapping[str, str]) -> dict[str, FieldValue]:
        """Attribute name → value of the DF (or ticket attribute) ``mapping`` names for it."""
        values = self.dynamic_fields()
        found: dict[str, FieldValue] = {}
        for attribute, source in mapping.items():
            value = values.get(source.removeprefix(DF_PREFIX), self.attribute(source))
            if value not in (None, "", []):
                found[attribute] = field_value(value)
        return found

    def first_customer_article(self) -> ArticleData | None:
        """The earliest article sent by the customer (else the earliest) by number and id."""

        def order(article: ArticleData) -> tuple[int, int]:
            ident = article.article_id or ""
            number = article.article_number
            return (1 << 30 if number is None else number), int(ident) if ident.isdigit() else 0

        ordered = sorted(self.article, key=order)
        chosen = [a for a in ordered if (a.sender_type or "").lower() == "customer"] or ordered
        return chosen[0] if chosen else None


class TicketGetAnswer(BaseModel):
    """``GET /Ticket/:TicketID``: a list of (here exactly one) tickets."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    ticket: list[RestTicket] = Field(alias="Ticket", min_length=1)


class TicketSearchAnswer(BaseModel):
    """TicketSearch: ``{"TicketID": [...]}``, or ``{}`` when nothing matched."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    ticket_ids: list[Id] = Field(default_factory=list, alias="TicketID")


def text_value(value: object) -> str | None:
    """A Dropdown/DateTime value as text (None when unset); a one-element list is unwrapped."""
    if isinstance(value, list):
        value = value[0] if value else None
    return None if value is None or value == "" else str(value)


def list_value(value: object) -> tuple[str, ...]:
    """A Multiselect value (a list, or a single string from some answers) as sorted texts."""
    items = value if isinstance(value, list) else [value]
    return tuple(sorted({str(item) for item in items if item not in (None, "")}))


def field_value(value: object) -> FieldValue:
    """Any DF or attribute value in the shape the neutral snapshot allows."""
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, list):
        return [str(item) for item in value if item is not None]
    return str(value)


# --- times -----------------------------------------------------------------------------------


def parse_time(text: str, zone: dt.tzinfo) -> dt.datetime:
    """``"YYYY-MM-DD HH:MM:SS"`` in ``zone`` (Znuny's ``OTRSTimeZone``) as an aware datetime.

    A wall-clock time the zone shows twice (the hour the clocks go back) is the later of the two
    instants, as Znuny reads it (see the module docstring). A time the zone skips keeps the
    offset from before the change.

    Raises:
        ValueError: the text is not in Znuny's format.
    """
    if not _OTRS_TIME.match(text.strip()):
        raise ValueError(f"{text!r} is not a Znuny time (YYYY-MM-DD HH:MM:SS)")
    wall = dt.datetime.strptime(text.strip(), OTRS_TIME)
    earlier, later = wall.replace(tzinfo=zone), wall.replace(tzinfo=zone, fold=1)
    if earlier.utcoffset() == later.utcoffset() or not _shown(later, wall, zone):
        return earlier
    return later


def _shown(moment: dt.datetime, wall: dt.datetime, zone: dt.tzinfo) -> bool:
    """Whether the zone's clock really shows ``wall`` at ``moment`` (False in a skipped hour)."""
    return moment.astimezone(dt.UTC).astimezone(zone).replace(tzinfo=None, fold=0) == wall


def format_time(moment: dt.datetime, zone: dt.tzinfo) -> str:
    """An aware datetime as Znuny's ``"YYYY-MM-DD HH:MM:SS"`` in ``zone``."""
    if moment.tzinfo is None:
        raise ValueError("format_time needs an aware datetime")
    return moment.astimezone(zone).strftime(OTRS_TIME)


def iso_utc(text: str, zone: dt.tzinfo) -> str:
    """A Znuny DateTime value as the neutral ``YYYY-MM-DDTHH:MM:SSZ`` (UTC)."""
    return parse_time(text, zone).astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def from_iso(text: str, zone: dt.tzinfo) -> str:
    """The neutral ISO 8601 due time as a Znuny DateTime value in ``zone``.

    Raises:
        ValueError: ``text`` is not an ISO 8601 time with an offset or ``Z``.
    """
    moment = dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    if moment.tzinfo is None:
        raise ValueError(f"{text!r} has no UTC offset")
    return format_time(moment, zone)
