"""Webhook delivery of the fake helpdesk: a background thread with retries, like Zammad's jobs.

Real helpdesks send webhooks from a job queue after the change is committed: the agent's
request never waits for the receiver, a failed delivery (non-2xx, refused, timed out) is retried
later with the same delivery id, a redirect counts as a failure, and after the last retry the
event is silently dropped. This sender does the same on a configurable, test-friendly schedule;
the queue and retry bookkeeping are :class:`~connector.sandbox.delivery.DeliveryQueue`'s, this
module decides what one attempt sends and what counts as success.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

import requests

from connector.sandbox.delivery import DeliveryAttempt, DeliveryQueue

__all__ = ["DeliveryAttempt", "WebhookSender"]

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Event:
    delivery_id: str
    ticket_id: str
    event: str


class WebhookSender(DeliveryQueue[_Event]):
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
        super().__init__(retry_schedule=retry_schedule, thread_name="fake-webhooks")
        self.url = url
        self._token = token
        self._timeout = timeout

    def enqueue(self, ticket_id: str, event: str) -> str:
        """Schedule a delivery now; returns its delivery id."""
        delivery_id = str(uuid.uuid4())
        self._push(_Event(delivery_id, ticket_id, event))
        return delivery_id

    def _attempt_seconds(self) -> float:
        return self._timeout

    def _given_up(self, payload: _Event) -> None:
        _log.info("webhook %s abandoned after retries", payload.delivery_id)

    def _attempt(self, session: requests.Session, payload: _Event, attempt: int) -> DeliveryAttempt:
        body = json.dumps({"ticket_id": payload.ticket_id, "event": payload.event})
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "FakeHelpdesk",
            "X-Fake-Token": self._token,
            "X-Fake-Delivery": payload.delivery_id,
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
            payload.delivery_id, payload.ticket_id, payload.event, attempt, status, error
        )
