"""Webhook delivery of the fake Zammad: a background queue with Zammad's retry policy.

Facts §1.2: the request is made by a background job (delayed_job in the scheduler), never in the
agent's request. Success is any 2xx (the body is ignored); any other status, **any 3xx**
(redirects are not followed), a connection error or a timeout (open 4 s, read 30 s) is a failure
and the job is retried — ``retry_on … attempts: 5, wait: executions * 10.seconds`` — after
10, 20, 30 and 40 s, with the same ``X-Zammad-Delivery``; after the fifth failure it is given up
without telling anyone. The payload is rendered anew for every attempt
(:func:`~connector.sandbox.zammad.payload.render`). Zammad's 60 s total timeout is not enforced.

The schedule is configurable so tests can retry in milliseconds.
"""

from __future__ import annotations

import heapq
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import requests

from connector.sandbox.fake_webhooks import DeliveryAttempt
from connector.sandbox.zammad.payload import Discarded, Outgoing
from connector.sandbox.zammad.triggers import Job

_log = logging.getLogger(__name__)
ZAMMAD_RETRY_SCHEDULE = (10.0, 20.0, 30.0, 40.0)
ZAMMAD_TIMEOUTS = (4.0, 30.0)


@dataclass(order=True)
class _Queued:
    due: float
    seq: int
    job: Job = field(compare=False)
    attempt: int = field(compare=False, default=1)


class WebhookSender:
    """Sends queued :class:`~connector.sandbox.zammad.triggers.Job` s from one daemon thread.

    Args:
        render: builds the request for a job from the current state, or raises
            :class:`~connector.sandbox.zammad.payload.Discarded`.
        retry_schedule: seconds before each retry; its length + 1 is the number of attempts.
        timeouts: (connect, read) seconds.
    """

    def __init__(
        self,
        render: Callable[[Job], Outgoing],
        *,
        retry_schedule: Sequence[float] = ZAMMAD_RETRY_SCHEDULE,
        timeouts: tuple[float, float] = ZAMMAD_TIMEOUTS,
    ) -> None:
        self._render = render
        self._schedule = tuple(retry_schedule)
        self.timeouts = timeouts
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
        self.discarded = 0

    def enqueue(self, job: Job) -> None:
        """Deliver ``job`` as soon as possible."""
        self._push(_Queued(time.monotonic(), 0, job))

    @property
    def pending(self) -> int:
        """Jobs queued, waiting for a retry, or being sent right now."""
        with self._cond:
            return len(self._queue) + self._busy

    def attempts(self) -> list[DeliveryAttempt]:
        """Every attempt so far, oldest first (``event`` is the trigger's name)."""
        with self._cond:
            return list(self._attempts)

    def start(self) -> None:
        """Start the delivery thread (idempotent)."""
        with self._cond:
            if self._thread is not None:
                return
            self._stopping = False
            self._thread = threading.Thread(target=self._run, name="zammad-webhooks", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Stop after the attempt in progress; queued jobs stay queued."""
        with self._cond:
            thread, self._thread = self._thread, None
            self._stopping = True
            self._cond.notify_all()
        if thread is not None:
            thread.join(sum(self.timeouts) + 1)

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
                        _log.info("webhook delivery %s given up", item.job.delivery_id)

    def _deliver(self, session: requests.Session, item: _Queued) -> DeliveryAttempt | None:
        job = item.job
        try:
            request = self._render(job)
        except Discarded as exc:
            _log.info("webhook delivery %s discarded: %s", job.delivery_id, exc)
            return None
        except Exception:  # the thread must survive a rendering bug
            _log.exception("webhook delivery %s could not be rendered", job.delivery_id)
            request = None
        status: int | None = None
        error: str | None = None
        if request is None:
            error = "payload could not be rendered"
        else:
            try:
                response = session.request(
                    request.method,
                    request.url,
                    data=request.body,
                    headers=request.headers,
                    auth=request.auth,
                    verify=request.verify,
                    timeout=self.timeouts,
                    allow_redirects=False,
                )
                status = response.status_code
                response.close()
                if not 200 <= status < 300:
                    error = f"receiver answered {status}"
            except requests.RequestException as exc:
                error = type(exc).__name__
            except Exception as exc:  # the thread must survive anything
                error = f"unexpected {type(exc).__name__}"
        trigger = request.trigger if request is not None else ""
        return DeliveryAttempt(
            job.delivery_id, str(job.ticket_id), trigger, item.attempt, status, error
        )
