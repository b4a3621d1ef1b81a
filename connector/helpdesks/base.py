"""The port every helpdesk adapter implements, and the plan the worker hands it.

The worker knows nothing of Zammad or Znuny: it asks an adapter to read a ticket into a
:class:`~connector.policy.ticket.TicketSnapshot`, decides, diffs, and asks the adapter to apply a
:class:`WritePlan`. The edge asks a :class:`WebhookReceiver` to authenticate and parse a request.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from typing import Annotated, Protocol

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from connector.errors import PayloadError
from connector.helpdesks.signatures import HeaderSource
from connector.policy.ticket import TicketSnapshot
from connector.text import check_storable

# Neutral names of the fields the connector owns; adapters map them to helpdesk field names.
MANAGED_FIELDS = ("sla_due_at", "sla_tier", "sla_level")


class WritePlan(BaseModel):
    """What must change on a ticket: only managed fields and managed tags, only differences."""

    model_config = ConfigDict(frozen=True)

    ticket_id: str
    fields: dict[str, str | None] = Field(
        default_factory=dict, description="managed field -> new value (due time: ISO 8601 UTC)"
    )
    add_tags: tuple[str, ...] = ()
    remove_tags: tuple[str, ...] = ()

    @property
    def is_empty(self) -> bool:
        return not (self.fields or self.add_tags or self.remove_tags)


class ApiCall(BaseModel):
    """One request an adapter made, for the audit trail."""

    model_config = ConfigDict(frozen=True)

    method: str
    path: str
    status: int | None = None
    duration_ms: float = 0.0


#: Why a body whose nesting exhausted the interpreter's recursion limit is refused.
TOO_DEEP = "body is nested too deeply to be a webhook"


def load_json(body: bytes) -> object:
    """The JSON document of a webhook body, or a :class:`~connector.errors.PayloadError`.

    The body must be UTF-8 (RFC 8259 §8.1; both helpdesks send it): Python's parser also reads
    UTF-16 and UTF-32, but the store keeps the body as text for audit and replay, so such a body
    would be kept garbled. A leading byte-order mark is ignored, as the RFC lets parsers do.
    Nesting deeper than the interpreter's recursion limit is refused here too, instead of
    escaping as a ``RecursionError`` (a 500, which the helpdesk would retry).
    """
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PayloadError(
            f"body is not UTF-8 (invalid byte at offset {exc.start}); send JSON as UTF-8"
        ) from None
    if "\x00" in text:  # valid UTF-8, but JSON never holds a raw NUL: UTF-16 or UTF-32
        raise PayloadError("body is not UTF-8 (it holds NUL bytes, as UTF-16 does)")
    try:
        return json.loads(text.removeprefix("\ufeff"))
    except ValueError:
        raise PayloadError("body is not valid JSON") from None
    except RecursionError:
        raise PayloadError(TOO_DEEP) from None


#: Text the store keeps as a key or a label: no NUL, no lone surrogate (:mod:`connector.text`).
StoredText = Annotated[str, AfterValidator(check_storable)]


class IncomingEvent(BaseModel):
    """What the edge keeps of an authenticated, parsed webhook."""

    model_config = ConfigDict(frozen=True)

    ticket_id: StoredText = Field(min_length=1, max_length=64)
    delivery_id: StoredText = Field(
        min_length=1, max_length=200, description="dedup key: the helpdesk's, or derived"
    )
    event: StoredText = Field(
        default="", max_length=200, description="the helpdesk's event or trigger"
    )


class HelpdeskAdapter(Protocol):
    """REST side of one configured helpdesk instance."""

    kind: str
    instance: str

    def read(self, ticket_id: str) -> TicketSnapshot:
        """The ticket as the helpdesk has it now, with ``managed_fields`` filled in."""
        ...

    def apply(self, plan: WritePlan) -> list[ApiCall]:
        """Write the plan; an empty plan makes no call. Raises Transient/PermanentError."""
        ...

    def changed_since(self, since: dt.datetime | None) -> Iterator[str]:
        """Ids of open tickets changed at or after ``since`` (all open tickets for None)."""
        ...


class WebhookReceiver(Protocol):
    """HTTP side of one configured helpdesk instance."""

    kind: str
    instance: str
    #: what to answer on success: (status, JSON body); Znuny needs 200 with an object body
    success: tuple[int, dict[str, object]]

    def authenticate(self, headers: HeaderSource, body: bytes) -> None:
        """Raise :class:`~connector.errors.AuthError` unless the request is genuine."""
        ...

    def parse(self, headers: HeaderSource, body: bytes) -> IncomingEvent:
        """Raise :class:`~connector.errors.PayloadError` naming what is wrong."""
        ...
