"""Webhook delivery of the fake helpdesk: a background thread with retries, like Zammad's jobs.

Real helpdesks send webhooks from a job queue after the change is committed: the agent's
request never waits for the receiver, a failed delivery (non-2xx, refused, timed out) is retried
later with the same delivery id, a redirect counts as a failure, and after the last retry the
event is silently dropped. This sender does the same on a configurable, test-friendly schedule.
"""

from __future__ import annotations

import heapq
import json
import logging
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field

import requests

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DeliveryAttempt:
    """One POST to the webhook URL.

    Attributes:
        delivery_id: the ``X-Fake-Delivery`` header; the same for every retry of one event.
        ticket_id: the ticket the event is about.
        event: ``ticket.created`` or ``ticket.updated``.
        attempt: 1 for the first try, 2 for the first retry, ...
        status: the receiver's status, None if no answer came (refused, timeout).
        error: why the attempt failed, None when it succeeded.
    """

    delivery_id: str
    ticket_id: str
    event: str
    attempt: int
    status: int | None
    error: str | None

    @property
    def ok(self) -> bool:
        """Whether the receiver acknowledged with 2xx."""
        return self.error is None


@dataclass(order=True)
class _Queued:
    due: float
    seq: int
    delivery_id: str = field(compare=False)
    ticket_id: str = field(compare=False)
    event: str = field(compare=False)
    attempt: int = field(compare=False, default=1)


class WebhookSender:
    """Queue of webhook deliveries, sent by one daemon thread while started.

    Args:
        url: where to POST ``{"ticket_id": ..., "event": ...}``.
        token: sent as ``X-Fake-Token``.
        retry_schedule: seconds to wait before each retry; its length is the number of retries.
        timeout: seconds to wait for the receiver's answer.
    """

    def __init__(
        self,
        url: str,
        token: str,
        *,
        retry_schedule: Sequence[float] = (1, 2, 4),
        timeout: float = 5.0,
    ) -> None:
        self.url = url
        self._token = token
        self._schedule = tuple(retry_schedule)
        self._timeout = timeout
        self._cond = threading.Condition()
        self._queue: list[_Queued] = []
        self._seq = 0
        self._busy = 0
        self._attempts: list[DeliveryAttempt] = []
        self._stopping = False
        self._thread: threading.Thread | None = None
        self.sent = 0
        self.failed = 0
        self.abandoned = 0

    def enqueue(self, ticket_id: str, event: str) -> str:
        """Schedule a delivery now; returns its delivery id."""
        delivery_id = str(uuid.uuid4())
        self._push(_Queued(time.monotonic(), 0, delivery_id, ticket_id, event))
        return delivery_id

    @property
    def pending(self) -> int:
        """Deliveries queued, waiting for a retry, or being sent right now."""
        with self._cond:
            return len(self._queue) + self._busy

    def attempts(self) -> list[DeliveryAttempt]:
        """Every attempt so far, oldest first."""
        with self._cond:
            return list(self._attempts)

    def start(self) -> None:
        """Start delivering (idempotent)."""
        with self._cond:
            if self._thread is not None:
                return
            self._stopping = False
            self._thread = threading.Thread(target=self._run, name="fake-webhooks", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Stop after the attempt in progress; queued deliveries stay queued."""
        with self._cond:
            thread, self._thread = self._thread, None
            self._stopping = True
            self._cond.notify_all()
        if thread is not None:
            thread.join(self._timeout + 1)

    def _push(self, item: _Queued) -> None:
        with self._cond:
            self._seq += 1
            item.seq = self._seq
            heapq.heappush(self._queue, item)
            self._cond.notify_all()

    def _next(self) -> _Queued | None:
        with self._cond:
            while not self._stopping:
                now = time.monotonic()
                if self._queue and self._queue[0].due <= now:
                    self._busy += 1
                    return heapq.heappop(self._queue)
                self._cond.wait(self._queue[0].due - now if self._queue else None)
            return None

    def _run(self) -> None:
        with requests.Session() as session:
            while (item := self._next()) is not None:
                result = self._deliver(session, item)
                with self._cond:
                    self._busy -= 1
                    self._attempts.append(result)
                    if result.ok:
                        self.sent += 1
                    else:
                        self.failed += 1
                        if item.attempt <= len(self._schedule):
                            delay = self._schedule[item.attempt - 1]
                            item.due = time.monotonic() + delay
                            item.attempt += 1
                            self._seq += 1
                            item.seq = self._seq
                            heapq.heappush(self._queue, item)
                        else:
                            self.abandoned += 1
                            _log.info("webhook %s abandoned after retries", item.delivery_id)

    def _deliver(self, session: requests.Session, item: _Queued) -> DeliveryAttempt:
        body = json.dumps({"ticket_id": item.ticket_id, "event": item.event})
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "FakeHelpdesk",
            "X-Fake-Token": self._token,
            "X-Fake-Delivery": item.delivery_id,
        }
        status: int | None = None
        error: str | None = None
        try:
            response = session.post(
                self.url, data=body, headers=headers, timeout=self._timeout, allow_redirects=False
            )
            status = response.status_code
            response.close()
            if not 200 <= status < 300:
                error = f"receiver answered {status}"
        except requests.RequestException as exc:
            error = f"{type(exc).__name__}"
        except Exception as exc:  # the thread must survive anything
            error = f"unexpected {type(exc).__name__}: {exc}"
        return DeliveryAttempt(
            item.delivery_id, item.ticket_id, item.event, item.attempt, status, error
        )
