"""REST side of Znuny: read a ticket into a snapshot, write the plan back, find changed tickets.

How Znuny's GenericTicketConnectorREST behaves (facts §2, §3):

* Calls are made as an agent: ``X-OTRS-Header-UserLogin`` / ``X-OTRS-Header-Password``
  headers (also accepted in the query or body, but URLs end up in logs). Znuny hands the
  header's bytes to the auth backend undecoded, and the DB backend hashes a password's UTF-8
  bytes (see :mod:`~connector.helpdesks.znuny.options`), so the password goes out as its UTF-8
  bytes: ``http.client`` writes a header ``str`` as Latin-1, hence the ``latin-1`` view of
  those bytes.
* **Errors come as HTTP 200** with ``{"Error": {"ErrorCode": "<Operation>.<Reason>",
  "ErrorMessage": …}}``. ``AuthFail``, ``AccessDenied``, ``InvalidParameter``,
  ``MissingParameter``, ``WrongStructure``, ``EmptyRequest`` and the other codes of
  :data:`~connector.helpdesks.znuny.payload.PERMANENT_CODES` will not go away by retrying
  (permanent); ``TicketGet.AccessDenied`` is also what a non-existent ticket gives. Any other
  code is treated as transient. ``ErrorCode`` and ``ErrorMessage`` may be ``null``. Transport and
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
* DateTime DF values and ``Created`` are ``YYYY-MM-DD HH:MM:SS`` in ``OTRSTimeZone``. In the
  hour a DST zone repeats, one such text stands for two instants; Znuny reads the later one
  (:func:`~connector.helpdesks.znuny.payload.parse_time`). A due time the adapter wrote in the
  earlier one would read back an hour off and be written again on every pass, so the adapter
  compares due times in Znuny's own text form: it remembers which instant it wrote as which
  text, and it leaves out of a PATCH a due time whose text Znuny already holds.
* TicketSearch with a JSON body needs the POST route ``/TicketSearch`` that ``webservice.yml``
  adds; ``{}`` means no hits. It returns at most ``Limit`` ids (500 when none is given), and
  ``TicketChangeTime{Newer,Older}Date`` select tickets with a *history entry* in that range,
  both ends inclusive (``Kernel/System/Ticket/TicketSearch.pm``); a new article adds a history
  entry without changing the ticket's ``Changed``. :meth:`ZnunyAdapter.changed_since` pages
  by time windows (:mod:`~connector.helpdesks.znuny.search`).

The adapter never retries; the pipeline owns retrying.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import quote

import requests
from pydantic import BaseModel, ValidationError

from connector.errors import PermanentError, TransientError
from connector.helpdesks.base import ApiCall, WritePlan
from connector.helpdesks.http import new_session, send
from connector.helpdesks.znuny.options import ZnunyOptions
from connector.helpdesks.znuny.payload import (
    OTRS_TIME,
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
from connector.helpdesks.znuny.search import PagingError, windowed
from connector.policy.ticket import FieldValue, TicketSnapshot

_M = TypeVar("_M", bound=BaseModel)
_V = TypeVar("_V")
_TAG_CACHE_SIZE = 4096


@dataclass(frozen=True)
class _Read:
    """What :meth:`ZnunyAdapter.read` saw of the managed fields, for the next ``apply``."""

    tags: tuple[str, ...]
    due_text: str | None


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


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
        clock: the current time (aware), where :meth:`changed_since` splits an open-ended
            time range; tests pass a fixed one.
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
        clock: Callable[[], dt.datetime] = _utcnow,
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
        self._clock = clock
        self._password = options.password.get_secret_value()
        # the UTF-8 bytes of the password, as the str http.client writes out byte for byte
        wire_password = self._password.encode("utf-8").decode("latin-1")
        self._masks = sorted({self._password, wire_password} - {""}, key=len, reverse=True)
        self._headers = {
            "X-OTRS-Header-UserLogin": options.user_login,
            "X-OTRS-Header-Password": wire_password,
            "Accept": "application/json",
        }
        # What read() saw: the plan's tag add/remove are relative to those tags (the
        # Multiselect is written whole), and a due time Znuny already holds is not written
        # again. Due times written, as (Znuny text, instant): that text reads back as this
        # instant even in the hour DST repeats. One running job per ticket makes this safe;
        # both are bounded LRUs.
        self._reads: OrderedDict[str, _Read] = OrderedDict()
        self._written_due: OrderedDict[str, tuple[str, str]] = OrderedDict()
        self._lock = threading.Lock()

    # --- the port --------------------------------------------------------------------------

    def read(self, ticket_id: str) -> TicketSnapshot:
        """TicketGet → snapshot; managed DFs go to ``managed_fields``, the Multiselect to tags."""
        ticket, _ = self._get(ticket_id)
        return self._snapshot(ticket)

    def apply(self, plan: WritePlan) -> list[ApiCall]:
        """One PATCH with the changed managed DFs; nothing for an empty plan, nor for a plan
        whose only change is a due time whose text Znuny already holds (see the module
        docstring).

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
        seen = self._cached_read(plan.ticket_id)
        due: tuple[str, str] | None = None
        for neutral, value in sorted(plan.fields.items()):
            name = names.get(neutral)
            if name is None:
                raise PermanentError(f"{self._source}: {neutral!r} is not a managed field")
            if neutral == "sla_due_at":
                text = self._due_value(value)
                due = (text, value) if text and value else None
                if due is not None and seen is not None and seen.due_text == text:
                    continue  # Znuny holds this text already: writing it would change nothing
                entries.append({"Name": name, "Value": text})
            else:
                entries.append({"Name": name, "Value": self._checked(name, value or "")})
        if plan.add_tags or plan.remove_tags:
            current = seen.tags if seen is not None else None
            if current is None:
                ticket, call = self._get(plan.ticket_id)
                calls.append(call)
                current = self._tags_of(ticket)
            wanted = sorted((set(current) | set(plan.add_tags)) - set(plan.remove_tags))
            tags_field = self.options.tags_field
            entries.append(
                {"Name": tags_field, "Value": [self._checked(tags_field, t) for t in wanted]}
            )
        if entries:
            path = _ticket_path(plan.ticket_id)
            _, call = self._call("PATCH", path, "TicketUpdate", json={"DynamicField": entries})
            calls.append(call)
        with self._lock:
            self._reads.pop(plan.ticket_id, None)
            if "sla_due_at" in plan.fields:
                self._written_due.pop(plan.ticket_id, None)
            if due is not None:
                _remember(self._written_due, plan.ticket_id, due)
        return calls

    def changed_since(self, since: dt.datetime | None) -> Iterator[str]:
        """Open tickets changed at or after ``since`` (all open ones for None), via POST search.

        One TicketSearch returns at most ``search_limit`` ids, so the range is searched in
        time windows that are split until each holds fewer
        (:func:`~connector.helpdesks.znuny.search.windowed`): nothing is skipped, every id is
        yielded once, and the search always ends.

        Raises:
            PermanentError: ``search_limit`` tickets or more have a history entry within one
                second, which no window can split (``search_limit`` is too low), or Znuny
                keeps filling windows far from its plausible clock.
            TransientError: Znuny or the network failed; the sweep is not a success and its
                range is searched again.
        """
        if since is not None and since.tzinfo is None:
            raise ValueError("since must be an aware datetime")
        limit = self.options.search_limit
        start = None if since is None else self._wall(since) - self._fold_after(since)
        try:
            yield from windowed(self._search, start, limit, lambda: self._wall(self._clock()))
        except PagingError as exc:
            raise PermanentError(
                f"{self._source}: POST /TicketSearch cannot page the sweep: {exc} (times in "
                f"{self.options.otrs_time_zone}; instances.{self.instance}.options.search_limit "
                f"is {limit})"
            ) from None

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
        tags = self._tags_of(ticket)
        with self._lock:
            _remember(self._reads, ticket.ticket_id, _Read(tags, due))
            written = self._written_due.get(ticket.ticket_id)
        if due and written is not None and written[0] == due:
            due_iso: str | None = written[1]  # the instant this text was written for
        else:
            try:
                due_iso = iso_utc(due, self._zone) if due else None
            except ValueError:
                due_iso = None  # unreadable: the plan rewrites it
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

    def _cached_read(self, ticket_id: str) -> _Read | None:
        with self._lock:
            return self._reads.get(ticket_id)

    # --- searching -------------------------------------------------------------------------

    def _search(self, low: dt.datetime | None, high: dt.datetime | None) -> list[str]:
        """Open tickets with a history entry in ``[low, high]``, at most ``search_limit``."""
        body: dict[str, Any] = {
            "StateType": list(self.options.open_state_types),
            "Limit": self.options.search_limit,
            "SortBy": "Changed",
            "OrderBy": "Up",
        }
        if low is not None:
            body["TicketChangeTimeNewerDate"] = low.strftime(OTRS_TIME)
        if high is not None:
            body["TicketChangeTimeOlderDate"] = high.strftime(OTRS_TIME)
        data, _ = self._call("POST", "/TicketSearch", "TicketSearch", json=body)
        return _parse(TicketSearchAnswer, data, f"{self._source}: POST /TicketSearch").ticket_ids

    def _fold_after(self, since: dt.datetime) -> dt.timedelta:
        """How far Znuny's wall clock goes back soon after ``since`` (the night clocks go back in
        ``OTRSTimeZone``), else zero. History in the repeated hour is later than ``since`` but
        shows earlier wall times, so the search starts that much earlier; re-listing a ticket
        costs one read."""
        later = min(self._clock(), since + dt.timedelta(hours=2))
        before, after = (
            since.astimezone(self._zone).utcoffset(),
            later.astimezone(self._zone).utcoffset(),
        )
        if before is None or after is None:
            return dt.timedelta(0)
        return max(before - after, dt.timedelta(0))

    def _wall(self, moment: dt.datetime) -> dt.datetime:
        """``moment`` as Znuny's wall clock (naive, whole seconds) in ``OTRSTimeZone``."""
        return dt.datetime.strptime(format_time(moment, self._zone), OTRS_TIME)

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
        given = raw if isinstance(raw, dict) else {"ErrorMessage": raw}
        body = ErrorBody.model_validate(given)
        code = body.code or f"{operation}.Unknown"
        message = body.message
        for secret in self._masks:
            message = message.replace(secret, "***")
        text = f"{where} {code}: {message}".rstrip(": ")
        if code == "TicketGet.AccessDenied":
            ticket = path.rsplit("/", 1)[-1]
            return PermanentError(
                f"{text} (ticket {ticket} does not exist or agent "
                f"{self.options.user_login} may not read it)"
            )
        return PermanentError(text) if body.permanent else TransientError(text)


def _remember(cache: OrderedDict[str, _V], key: str, value: _V) -> None:
    """Put ``key`` last in a bounded LRU (call with the lock held)."""
    cache[key] = value
    cache.move_to_end(key)
    while len(cache) > _TAG_CACHE_SIZE:
        cache.popitem(last=False)


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
