"""The sandboxes' webhook queue: one daemon thread, a retry schedule, silent give-up.

Real helpdesks send webhooks from a job queue after the change is committed: the agent's
request never waits for the receiver, a failed attempt is retried later after a fixed schedule
of delays, and after the last retry the delivery is dropped without telling anyone. The
generic fake helpdesk and the fake Zammad both reproduce this, so the queue, the retry
bookkeeping and the counters tests wait on live here; *what* one attempt sends and what counts
as success stay with each sandbox (``fake_webhooks.py``, ``zammad/webhooks.py``).

The fake Znuny's daemon (``znuny/scheduler.py``) is deliberately not built on this: it runs a
pool of workers that take due tasks out of order, can be paused, and lets each attempt decide
its own retry delay (``RequestRetry``), none of which a fixed schedule models.
"""

from __future__ import annotations

import heapq
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

import requests

__all__ = ["DeliveryAttempt", "DeliveryQueue"]

_T = TypeVar("_T")


@dataclass(frozen=True)
class DeliveryAttempt:
    """One request to the webhook URL.

    Attributes:
        delivery_id: the delivery header (``X-Fake-Delivery``, ``X-Zammad-Delivery``); the
            same for every retry of one delivery.
        ticket_id: the ticket the event is about.
        event: what happened (the fake: ``ticket.created``/``ticket.updated``; Zammad: the
            trigger's name).
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
        """Whether the receiver acknowledged the delivery."""
        return self.error is None


@dataclass(order=True)
class _Queued(Generic[_T]):
    due: float
    seq: int
    payload: _T = field(compare=False)
    attempt: int = field(compare=False, default=1)


class DeliveryQueue(Generic[_T]):
    """Deliveries of ``_T`` payloads, sent by one daemon thread while started.

    Subclasses implement :meth:`_attempt` (one request, or None to discard the delivery)
    and :meth:`_attempt_seconds`, and may log in :meth:`_given_up`.

    Args:
        retry_schedule: seconds to wait before each retry; its length is the number of retries.
        thread_name: the delivery thread's name.

    Attributes:
        sent: attempts the receiver acknowledged.
        failed: failed attempts, retries included.
        abandoned: deliveries given up after the last retry.
        discarded: deliveries ended without a request (:meth:`_attempt` returned None).
    """

    def __init__(self, *, retry_schedule: Sequence[float], thread_name: str) -> None:
        self._schedule = tuple(retry_schedule)
        self._thread_name = thread_name
        self._cond = threading.Condition()
        self._queue: list[_Queued[_T]] = []
        self._seq = 0
        self._busy = 0
        self._attempts: list[DeliveryAttempt] = []
        self._stopping = False
        self._thread: threading.Thread | None = None
        self.sent = 0
        self.failed = 0
        self.abandoned = 0
        self.discarded = 0

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
        """Start the delivery thread (idempotent)."""
        with self._cond:
            if self._thread is not None:
                return
            self._stopping = False
            self._thread = threading.Thread(target=self._run, name=self._thread_name, daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Stop after the attempt in progress; queued deliveries stay queued."""
        with self._cond:
            thread, self._thread = self._thread, None
            self._stopping = True
            self._cond.notify_all()
        if thread is not None:
            thread.join(self._attempt_seconds() + 1)

    # --- for subclasses --------------------------------------------------------------------

    def _attempt(
        self, session: requests.Session, payload: _T, attempt: int
    ) -> DeliveryAttempt | None:
        """Make attempt number ``attempt`` of ``payload``; None: discard it, nothing was sent.

        Runs on the delivery thread and must not raise: the thread has to survive anything.
        """
        raise NotImplementedError

    def _attempt_seconds(self) -> float:
        """The longest one attempt can take (how long :meth:`stop` waits for it)."""
        raise NotImplementedError

    def _given_up(self, payload: _T) -> None:
        """Called (holding the queue's lock) when ``payload`` failed its last retry."""

    def _push(self, payload: _T) -> None:
        """Queue ``payload`` for delivery as soon as possible."""
        item = _Queued(time.monotonic(), 0, payload)
        with self._cond:
            self._seq += 1
            item.seq = self._seq
            heapq.heappush(self._queue, item)
            self._cond.notify_all()

    # --- the delivery thread ---------------------------------------------------------------

    def _next(self) -> _Queued[_T] | None:
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
                result = self._attempt(session, item.payload, item.attempt)
                with self._cond:
                    self._busy -= 1
                    if result is None:
                        self.discarded += 1
                        continue
                    self._attempts.append(result)
                    if result.ok:
                        self.sent += 1
                        continue
                    self.failed += 1
                    if item.attempt <= len(self._schedule):
                        item.due = time.monotonic() + self._schedule[item.attempt - 1]
                        item.attempt += 1
                        self._seq += 1
                        item.seq = self._seq
                        heapq.heappush(self._queue, item)
                    else:
                        self.abandoned += 1
                        self._given_up(item.payload)
