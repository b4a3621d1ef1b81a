"""REST side of Znuny: read a ticket into a snapshot, write the plan back, find changed tickets.

How Znuny's GenericTicketConnectorREST behaves (facts §2, §3):

* Calls are made as an agent: ``X-OTRS-Header-UserLogin`` / ``X-OTRS-Header-Password``
  headers (also accepted in the query or body, but URLs end up in logs).
* **Errors come as HTTP 200** with ``{"Error": {"ErrorCode": "<Operation>.<Reason>",
  "ErrorMessage": …}}``. ``AuthFail``, ``AccessDenied``, ``InvalidParameter`` and
  ``MissingParameter`` will not go away by retrying (permanent); ``TicketGet.AccessDenied`` is
  also what a non-existent ticket gives. Any other code is treated as transient. Transport and
  framework failures use other statuses with plain-text bodies (500 for an unknown route or
  undecodable JSON), which :mod:`connector.helpdesks.http` classifies (5xx: transient).
* TicketGet ``?DynamicFields=1&AllArticles=1`` answers ``{"Ticket": [{…}]}`` with the DF values
  in a ``DynamicField`` list and the articles in ``Article``; there is no customer-user or
  customer-company record in it, only ``CustomerUserID`` and ``CustomerID``.
* TicketUpdate is ``PATCH /Ticket/:TicketID`` with ``{"DynamicField": [{"Name", "Value"}]}``.
  Dropdown and Multiselect values must be keys of the field's ``PossibleValues`` or the whole
  update is refused (``InvalidParameter``), so values are checked here first and a bad one is a
  :class:`~connector.errors.PermanentError` naming value and field. Writing an unchanged value
  raises no event, but the plan only holds differences anyway.
* DateTime DF values and ``Created`` are ``YYYY-MM-DD HH:MM:SS`` in ``OTRSTimeZone``.
* TicketSearch with a JSON body needs the POST route ``/TicketSearch`` that ``webservice.yml``
  adds; ``{}`` means no hits.

The adapter never retries; the pipeline owns retrying.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from typing import Any, TypeVar
from urllib.parse import quote

import requests
from pydantic import BaseModel, ValidationError

from connector.errors import PermanentError, TransientError
from connector.helpdesks.base import ApiCall, WritePlan
from connector.helpdesks.http import new_session, send
from connector.helpdesks.znuny.options import ZnunyOptions
from connector.helpdesks.znuny.payload import (
    ErrorBody,
    RestTicket,
    TicketGetAnswer,
    TicketSearchAnswer,
    field_value,
    format_time,
    from_iso,
    iso_utc,
    list_value,
    parse_time,
    text_value,
)
from connector.policy.ticket import FieldValue, TicketSnapshot

log = logging.getLogger(__name__)
_M = TypeVar("_M", bound=BaseModel)
_TAG_CACHE_SIZE = 4096


class ZnunyAdapter:
    """:class:`~connector.helpdesks.base.HelpdeskAdapter` for one Znuny web service.

    Args:
        instance: the configured instance name, copied into every snapshot.
        base_url: ``…/nph-genericinterface.pl/Webservice/<Name>``.
        options: the validated instance options (login, password, DF names, time zone).
        possible_values: DF name → keys of its ``PossibleValues``, for the Dropdown and
            Multiselect fields the adapter writes.
        timeout: seconds for connect and read of each request.
        verify_tls: check the certificate when ``base_url`` is https.
        session: a session to reuse (the caller closes it); by default the adapter owns one.
    """

    kind = "znuny"

    def __init__(
        self,
        instance: str,
        base_url: str,
        options: ZnunyOptions,
        *,
        possible_values: Mapping[str, frozenset[str]],
        timeout: float = 10,
        verify_tls: bool = True,
        session: requests.Session | None = None,
    ) -> None:
        self.instance = instance
        self.base_url = base_url.rstrip("/")
        self.options = options
        self._zone = options.zone
        self._possible = dict(possible_values)
        self._timeout = timeout
        self._owns_session = session is None
        self._session = session or new_session(timeout=timeout, verify_tls=verify_tls)
        self._verify_tls = verify_tls
        self._source = f"znuny {instance}"
        self._password = options.password.get_secret_value()
        self._headers = {
            "X-OTRS-Header-UserLogin": options.user_login,
            "X-OTRS-Header-Password": self._password,
            "Accept": "application/json",
        }
        # Tags read by read(): the plan's add/remove are relative to them, and the Multiselect
        # must be written whole. One running job per ticket makes this safe; bounded LRU.
        self._tags: OrderedDict[str, tuple[str, ...]] = OrderedDict()
        self._tags_lock = threading.Lock()

    # --- the port --------------------------------------------------------------------------

    def read(self, ticket_id: str) -> TicketSnapshot:
        """TicketGet → snapshot; managed DFs go to ``managed_fields``, the Multiselect to tags."""
        ticket, _ = self._get(ticket_id)
        return self._snapshot(ticket)

    def apply(self, plan: WritePlan) -> list[ApiCall]:
        """One PATCH with the changed managed DFs; nothing for an empty plan.

        Raises:
            PermanentError: a value is not a key of its field's PossibleValues (nothing is
                sent), or Znuny refused the update.
            TransientError: Znuny or the network failed; retrying may help.
        """
        if plan.is_empty:
            return []
        calls: list[ApiCall] = []
        entries: list[dict[str, Any]] = []
        names = self.options.field_names
        for neutral, value in sorted(plan.fields.items()):
            name = names.get(neutral)
            if name is None:
                raise PermanentError(f"{self._source}: {neutral!r} is not a managed field")
            if neutral == "sla_due_at":
                entries.append({"Name": name, "Value": self._due_value(value)})
            else:
                entries.append({"Name": name, "Value": self._checked(name, value or "")})
        if plan.add_tags or plan.remove_tags:
            current = self._cached_tags(plan.ticket_id)
            if current is None:
                ticket, call = self._get(plan.ticket_id)
                calls.append(call)
                current = self._tags_of(ticket)
            wanted = sorted((set(current) | set(plan.add_tags)) - set(plan.remove_tags))
            tags_field = self.options.tags_field
            entries.append(
                {"Name": tags_field, "Value": [self._checked(tags_field, t) for t in wanted]}
            )
        path = _ticket_path(plan.ticket_id)
        _, call = self._call("PATCH", path, "TicketUpdate", json={"DynamicField": entries})
        calls.append(call)
        with self._tags_lock:
            self._tags.pop(plan.ticket_id, None)
        return calls

    def changed_since(self, since: dt.datetime | None) -> Iterator[str]:
        """Open tickets changed at or after ``since`` (all open ones for None), via POST search."""
        body: dict[str, Any] = {
            "StateType": list(self.options.open_state_types),
            "Limit": self.options.search_limit,
        }
        if since is not None:
            if since.tzinfo is None:
                raise ValueError("since must be an aware datetime")
            body["TicketChangeTimeNewerDate"] = format_time(since, self._zone)
        data, _ = self._call("POST", "/TicketSearch", "TicketSearch", json=body)
        found = _parse(TicketSearchAnswer, data, f"{self._source}: POST /TicketSearch")
        if len(found.ticket_ids) >= self.options.search_limit:
            log.warning(
                "%s: TicketSearch hit its limit of %d tickets; the rest waits for the next sweep",
                self._source,
                self.options.search_limit,
            )
        yield from found.ticket_ids

    def request(self, method: str, path: str, operation: str, **kwargs: Any) -> dict[str, Any]:
        """One raw call below the web service URL, errors mapped as for every other call.

        For ``setup``'s probes; ``operation`` names the Znuny operation for error messages.
        """
        return self._call(method, path, operation, **kwargs)[0]

    def close(self) -> None:
        """Release the connection pool if the adapter created it."""
        if self._owns_session:
            self._session.close()

    # --- reading ---------------------------------------------------------------------------

    def _get(self, ticket_id: str) -> tuple[RestTicket, ApiCall]:
        path = _ticket_path(ticket_id)
        params = {"DynamicFields": 1, "AllArticles": 1}
        data, call = self._call("GET", path, "TicketGet", params=params)
        answer = _parse(TicketGetAnswer, data, f"{self._source}: GET {path}")
        return answer.ticket[0], call

    def _snapshot(self, ticket: RestTicket) -> TicketSnapshot:
        options = self.options
        values = ticket.dynamic_fields()
        own = set(options.managed_field_names.values())
        fields: dict[str, FieldValue] = {
            name: field_value(value) for name, value in values.items() if name not in own
        }
        for neutral, name in options.override_fields.items():
            if name in values:
                fields[neutral] = field_value(values[name])
        due = text_value(values.get(options.due_at_field))
        try:
            due_iso = iso_utc(due, self._zone) if due else None
        except ValueError:
            due_iso = None  # unreadable: the plan rewrites it
        tags = self._tags_of(ticket)
        with self._tags_lock:
            self._tags[ticket.ticket_id] = tags
            self._tags.move_to_end(ticket.ticket_id)
            while len(self._tags) > _TAG_CACHE_SIZE:
                self._tags.popitem(last=False)
        try:
            created = parse_time(ticket.created, self._zone)
        except ValueError as exc:
            raise PermanentError(f"{self._source}: ticket {ticket.ticket_id}: {exc}") from None
        first = ticket.first_customer_article()
        return TicketSnapshot(
            helpdesk=self.kind,
            instance=self.instance,
            id=ticket.ticket_id,
            number=ticket.number,
            created_at=created,
            subject=ticket.title or (first.subject if first else None) or "",
            body=(first.body if first else None) or "",
            customer=ticket.customer(self.options.customer_fields),
            organization=ticket.organization(self.options.company_fields),
            group=ticket.queue,
            priority=ticket.priority,
            state=ticket.state,
            fields=fields,
            tags=tags,
            managed_fields={
                "sla_due_at": due_iso,
                "sla_tier": text_value(values.get(options.tier_field)),
                "sla_level": text_value(values.get(options.level_field)),
            },
        )

    def _tags_of(self, ticket: RestTicket) -> tuple[str, ...]:
        return list_value(ticket.dynamic_fields().get(self.options.tags_field))

    def _cached_tags(self, ticket_id: str) -> tuple[str, ...] | None:
        with self._tags_lock:
            return self._tags.get(ticket_id)

    # --- writing ---------------------------------------------------------------------------

    def _due_value(self, value: str | None) -> str:
        if not value:
            return ""
        try:
            return from_iso(value, self._zone)
        except ValueError as exc:
            raise PermanentError(f"{self._source}: due time {value!r}: {exc}") from None

    def _checked(self, field: str, value: str) -> str:
        allowed = self._possible.get(field)
        if value and allowed is not None and value not in allowed:
            raise PermanentError(
                f"{self._source}: value {value!r} is not one of the PossibleValues of dynamic "
                f"field {field}; add it to the field (re-import dynamic_fields.yml) or fix the "
                "mappings"
            )
        return value

    # --- HTTP ------------------------------------------------------------------------------

    def _call(
        self, method: str, path: str, operation: str, **kwargs: Any
    ) -> tuple[dict[str, Any], ApiCall]:
        started = time.perf_counter()
        response = send(
            self._session,
            method,
            self.base_url + path,
            source=self._source,
            headers=self._headers,
            timeout=self._timeout,
            verify=self._verify_tls,
            allow_redirects=False,
            **kwargs,
        )
        call = ApiCall(
            method=method,
            path=path,
            status=response.status_code,
            duration_ms=(time.perf_counter() - started) * 1000,
        )
        where = f"{self._source}: {method} {path} -> {response.status_code}"
        try:
            data = response.json()
        except ValueError:
            raise PermanentError(
                f"{where}: the answer is not JSON; is the URL the web service?"
            ) from None
        if not isinstance(data, dict):
            raise PermanentError(f"{where}: expected a JSON object")
        if "Error" in data:
            raise self._error(where, operation, path, data["Error"])
        return data, call

    def _error(
        self, where: str, operation: str, path: str, raw: object
    ) -> PermanentError | TransientError:
        body = ErrorBody.model_validate(raw if isinstance(raw, dict) else {})
        code = body.code or f"{operation}.Unknown"
        message = body.message.replace(self._password, "***") if self._password else body.message
        text = f"{where} {code}: {message}".rstrip(": ")
        if code == "TicketGet.AccessDenied":
            ticket = path.rsplit("/", 1)[-1]
            return PermanentError(
                f"{text} (ticket {ticket} does not exist or agent "
                f"{self.options.user_login} may not read it)"
            )
        return PermanentError(text) if body.permanent else TransientError(text)


def _ticket_path(ticket_id: str) -> str:
    if not str(ticket_id).strip():
        raise ValueError("ticket_id must not be empty")
    return f"/Ticket/{quote(str(ticket_id).strip(), safe='')}"


def _parse(model: type[_M], data: dict[str, Any], what: str) -> _M:
    """The answer as ``model``; a body of the wrong shape is a permanent failure."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "body"
        raise PermanentError(f"{what}: unexpected answer at {where}: {first['msg']}") from None
