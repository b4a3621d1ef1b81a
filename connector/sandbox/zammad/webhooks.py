"""Webhook delivery of the fake Zammad: a background queue with Zammad's retry policy.

Facts §1.2: the request is made by a background job (delayed_job in the scheduler), never in the
agent's request. Success is any 2xx (the body is ignored); any other status, **any 3xx**
(redirects are not followed), a connection error or a timeout (open 4 s, read 30 s) is a failure
and the job is retried — ``retry_on … attempts: 5, wait: executions * 10.seconds`` — after
10, 20, 30 and 40 s, with the same ``X-Zammad-Delivery``; after the fifth failure it is given up
without telling anyone. The payload is rendered anew for every attempt
(:func:`~connector.sandbox.zammad.payload.render`). Zammad's 60 s total timeout is not enforced.

The schedule is configurable so tests can retry in milliseconds. The queue and its retry
bookkeeping are :class:`~connector.sandbox.delivery.DeliveryQueue`'s; Zammad's schedule, its
success rule and the rendering of each attempt are here.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

import requests

from connector.sandbox.delivery import DeliveryAttempt, DeliveryQueue
from connector.sandbox.zammad.payload import Discarded, Outgoing
from connector.sandbox.zammad.triggers import Job

_log = logging.getLogger(__name__)
ZAMMAD_RETRY_SCHEDULE = (10.0, 20.0, 30.0, 40.0)
ZAMMAD_TIMEOUTS = (4.0, 30.0)


class WebhookSender(DeliveryQueue[Job]):
    """Sends queued :class:`~connector.sandbox.zammad.triggers.Job` s from one daemon thread.

    ``attempts()`` lists every attempt, oldest first, with the trigger's name as ``event``;
    ``discarded`` counts jobs ended without a request (see :class:`Discarded`).

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
        super().__init__(retry_schedule=retry_schedule, thread_name="zammad-webhooks")
        self._render = render
        self.timeouts = timeouts

    def enqueue(self, job: Job) -> None:
        """Deliver ``job`` as soon as possible."""
        self._push(job)

    def _attempt_seconds(self) -> float:
        return sum(self.timeouts)

    def _given_up(self, payload: Job) -> None:
        _log.info("webhook delivery %s given up", payload.delivery_id)

    def _attempt(self, session: requests.Session, job: Job, attempt: int) -> DeliveryAttempt | None:
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
        return DeliveryAttempt(job.delivery_id, str(job.ticket_id), trigger, attempt, status, error)
