"""REST side of the fake helpdesk: read a ticket into a snapshot, apply a write plan, list changes.

The fake's API is deliberately plain (see ``README.md`` next to this file), so this adapter is
the reference for what every adapter does: map the helpdesk's JSON to a
:class:`~connector.policy.ticket.TicketSnapshot`, turn a
:class:`~connector.helpdesks.base.WritePlan` into the fewest requests (none for an empty plan),
and let :mod:`connector.helpdesks.http` classify every failure. It never retries: the pipeline
owns retrying, and a hidden retry here would multiply with it.

The fake stores the managed fields under their neutral names (``sla_due_at``, ``sla_tier``,
``sla_level``) among the ticket's custom ``fields``; the snapshot carries them in
``managed_fields`` only and leaves them out of ``fields``, so the policy never reads the
connector's own output as if an agent had set it.
"""

from __future__ import annotations

import datetime as dt
import time
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import requests
from pydantic import AwareDatetime, BaseModel, ConfigDict

from connector.errors import PermanentError
from connector.helpdesks.base import MANAGED_FIELDS, ApiCall, WritePlan
from connector.helpdesks.http import new_session, parse_body, send
from connector.policy.ticket import FieldValue, Party, TicketSnapshot

PER_PAGE = 100


class _PartyJson(BaseModel):
    model_config = ConfigDict(extra="ignore")

    id: str | int | None = None
    name: str | None = None
    email: str | None = None
    fields: dict[str, FieldValue] = {}

    def to_party(self) -> Party:
        return Party(
            id=None if self.id is None else str(self.id),
            name=self.name,
            email=self.email,
            fields=self.fields,
        )


class _TicketJson(BaseModel):
    """``GET /api/tickets/<id>`` as the fake answers it."""

    model_config = ConfigDict(extra="ignore")

    id: str | int
    created_at: AwareDatetime
    subject: str = ""
    body: str = ""
    customer: _PartyJson | None = None
    organization: _PartyJson | None = None
    group: str | None = None
    priority: str | None = None
    state: str | None = None
    fields: dict[str, FieldValue] = {}
    tags: list[str] = []


class _PageJson(BaseModel):
    """``GET /api/tickets?...`` as the fake answers it."""

    model_config = ConfigDict(extra="ignore")

    tickets: list[str | int]
    next_page: int | None = None


class FakeAdapter:
    """:class:`~connector.helpdesks.base.HelpdeskAdapter` for one fake helpdesk instance.

    Args:
        instance: the configured instance name, copied into every snapshot.
        base_url: e.g. ``http://127.0.0.1:8090`` (what ``FakeHelpdesk.start`` returned).
        token: API token, sent as ``Authorization: Token token=<token>``; never logged.
        timeout: seconds for connect and read of each request.
        verify_tls: check the certificate when ``base_url`` is https.
        session: a session to reuse (the caller closes it); by default the adapter makes and
            owns one, released by :meth:`close`.
    """

    kind = "fake"

    def __init__(
        self,
        instance: str,
        base_url: str,
        token: str,
        *,
        timeout: float = 10,
        verify_tls: bool = True,
        session: requests.Session | None = None,
    ) -> None:
        self.instance = instance
        self.base_url = base_url.rstrip("/")
        self._token = token
        self._timeout = timeout
        self._verify_tls = verify_tls
        self._owns_session = session is None
        self._session = session or new_session(timeout=timeout, verify_tls=verify_tls)
        self._source = f"fake {instance}"

    def read(self, ticket_id: str) -> TicketSnapshot:
        """The ticket now, with ``sla_*`` values moved from ``fields`` to ``managed_fields``."""
        path = _ticket_path(ticket_id)
        response, _ = self._call("GET", path)
        ticket = parse_body(_TicketJson, response, f"GET {path}")
        fields = dict(ticket.fields)
        managed = {name: _text(fields.pop(name, None)) for name in MANAGED_FIELDS}
        return TicketSnapshot(
            helpdesk=self.kind,
            instance=self.instance,
            id=str(ticket.id),
            created_at=ticket.created_at,
            subject=ticket.subject,
            body=ticket.body,
            customer=ticket.customer.to_party() if ticket.customer else None,
            organization=ticket.organization.to_party() if ticket.organization else None,
            group=ticket.group,
            priority=ticket.priority,
            state=ticket.state,
            fields=fields,
            tags=tuple(ticket.tags),
            managed_fields=managed,
        )

    def apply(self, plan: WritePlan) -> list[ApiCall]:
        """One PATCH for the fields and one POST for the tags, each only if needed."""
        calls: list[ApiCall] = []
        path = _ticket_path(plan.ticket_id)
        if plan.fields:
            calls.append(self._call("PATCH", path, json={"fields": plan.fields})[1])
        if plan.add_tags or plan.remove_tags:
            body = {"add": list(plan.add_tags), "remove": list(plan.remove_tags)}
            calls.append(self._call("POST", f"{path}/tags", json=body)[1])
        return calls

    def changed_since(self, since: dt.datetime | None) -> Iterator[str]:
        """Open tickets updated at or after ``since``, page by page, in id order."""
        params: dict[str, Any] = {"state": "open", "per_page": PER_PAGE, "page": 1}
        if since is not None:
            if since.tzinfo is None:
                raise ValueError("since must be an aware datetime")
            params["changed_since"] = since.astimezone(dt.UTC).isoformat()
        while True:
            response, _ = self._call("GET", "/api/tickets", params=params)
            page = parse_body(_PageJson, response, "GET /api/tickets")
            yield from (str(ticket_id) for ticket_id in page.tickets)
            if page.next_page is None:
                return
            if page.next_page <= params["page"]:
                raise PermanentError(f"{self._source}: paging does not advance: {page.next_page}")
            params["page"] = page.next_page

    def close(self) -> None:
        """Release the connection pool if the adapter created it."""
        if self._owns_session:
            self._session.close()

    def _call(self, method: str, path: str, **kwargs: Any) -> tuple[requests.Response, ApiCall]:
        headers = {
            "Authorization": f"Token token={self._token}",
            "Accept": "application/json",
            "X-Request-Id": uuid.uuid4().hex,
        }
        started = time.perf_counter()
        response = send(
            self._session,
            method,
            self.base_url + path,
            source=self._source,
            headers=headers,
            timeout=self._timeout,
            verify=self._verify_tls,
            allow_redirects=False,
            **kwargs,
        )
        duration_ms = (time.perf_counter() - started) * 1000
        call = ApiCall(
            method=method, path=path, status=response.status_code, duration_ms=duration_ms
        )
        return response, call


def _ticket_path(ticket_id: str) -> str:
    if not str(ticket_id).strip():
        raise ValueError("ticket_id must not be empty")
    return f"/api/tickets/{quote(str(ticket_id), safe='')}"


def _text(value: object) -> str | None:
    return None if value is None else str(value)
