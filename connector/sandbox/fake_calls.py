"""The fake helpdesk's record of every API request it served, for assertions in tests.

The log answers the questions a pipeline test asks of the outside world: how many writes did
the connector really make, did an empty plan stay silent, and did two workers ever talk to the
helpdesk about the same ticket at the same time.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass, replace


@dataclass(frozen=True)
class CallRecord:
    """One API request as the server saw it.

    Attributes:
        method: HTTP method, upper case.
        path: URL path without the query string.
        ticket_id: the ticket the path names, None for list/create requests.
        status: the answer's status; None while running or if the connection was dropped.
        started: ``time.monotonic()`` when the request arrived.
        finished: ``time.monotonic()`` when the answer was ready; None while running.
        request_id: the client's ``X-Request-Id`` header, if sent.
    """

    method: str
    path: str
    ticket_id: str | None
    status: int | None
    started: float
    finished: float | None = None
    request_id: str | None = None

    @property
    def is_write(self) -> bool:
        """A successful change of a ticket's fields or tags."""
        return (
            self.status is not None
            and 200 <= self.status < 300
            and self.ticket_id is not None
            and (self.method == "PATCH" or (self.method == "POST" and self.path.endswith("/tags")))
        )


class CallLog:
    """Thread-safe, append-only list of :class:`CallRecord` plus per-ticket concurrency."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._records: dict[int, CallRecord] = {}
        self._next_handle = 0
        self._in_flight: Counter[str] = Counter()
        self._max_in_flight: Counter[str] = Counter()

    def begin(self, method: str, path: str, ticket_id: str | None, request_id: str | None) -> int:
        """Record an arriving request; returns the handle :meth:`end` needs."""
        record = CallRecord(
            method.upper(), path, ticket_id, None, time.monotonic(), None, request_id
        )
        with self._lock:
            handle = self._next_handle
            self._next_handle += 1
            self._records[handle] = record
            if ticket_id is not None:
                self._in_flight[ticket_id] += 1
                now = self._in_flight[ticket_id]
                self._max_in_flight[ticket_id] = max(self._max_in_flight[ticket_id], now)
            return handle

    def end(self, handle: int, status: int | None) -> None:
        """Record the answer (None: the connection was dropped) of request ``handle``."""
        with self._lock:
            record = self._records[handle]
            self._records[handle] = replace(record, status=status, finished=time.monotonic())
            if record.ticket_id is not None:
                self._in_flight[record.ticket_id] -= 1

    def calls(self, method: str | None = None, ticket_id: str | None = None) -> list[CallRecord]:
        """Requests so far, oldest first, optionally only one method and/or one ticket."""
        with self._lock:
            records = list(self._records.values())
        return [
            record
            for record in records
            if (method is None or record.method == method.upper())
            and (ticket_id is None or record.ticket_id == str(ticket_id))
        ]

    def writes(self, ticket_id: str | None = None) -> list[CallRecord]:
        """Successful field PATCHes and tag POSTs, optionally for one ticket."""
        return [record for record in self.calls(ticket_id=ticket_id) if record.is_write]

    def max_concurrent_per_ticket(self) -> int:
        """The most requests ever in flight at once for a single ticket (0 if none)."""
        with self._lock:
            return max(self._max_in_flight.values(), default=0)

    def clear(self) -> None:
        """Forget finished requests and reset the concurrency high-water mark."""
        with self._lock:
            self._records = {h: r for h, r in self._records.items() if r.finished is None}
            self._max_in_flight = +self._in_flight
