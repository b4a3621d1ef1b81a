"""A small helpdesk on a real socket, for testing the connector without mocks.

``FakeHelpdesk`` serves a REST API on 127.0.0.1 from a background thread of the test process,
so worker *processes* can reach it over HTTP while the test inspects and steers it through the
Python API: create and edit tickets like an agent, inject faults, take the server down
(``pause``) and bring it back (``resume``) on the same port, and read the log of every request
it served. It fires a webhook after every change, including changes made through its own API,
so a connector that writes back more than it should produces a visible write -> webhook loop.

Run it standalone for a demo::

    python -m connector.sandbox.fake_helpdesk --port 8090 --webhook-url http://127.0.0.1:8080/...
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from connector.helpdesks.base import MANAGED_FIELDS
from connector.sandbox.delivery import DeliveryAttempt
from connector.sandbox.fake_api import FakeApi
from connector.sandbox.fake_calls import CallLog, CallRecord
from connector.sandbox.fake_faults import Faults
from connector.sandbox.fake_tickets import SAMPLE_TICKETS, JsonObject, TicketStore
from connector.sandbox.fake_webhooks import WebhookSender
from connector.sandbox.listener import HOST, Listener, ListeningSandbox


class FakeHelpdesk(ListeningSandbox):
    """An in-memory helpdesk with a REST API, webhooks, fault injection and a call log.

    Args:
        api_token: the only token the API accepts (``Authorization: Token token=<api_token>``).
        declared_fields: custom fields the API may write; others are refused with 422.
        webhook_url: where to POST ``{"ticket_id", "event"}`` after every change; None: never.
        webhook_token: sent as ``X-Fake-Token`` with each webhook (omitted when empty).
        retry_schedule: seconds before each webhook retry (tests pass tiny values).
        webhook_timeout: seconds to wait for the webhook receiver's answer.
        clock: the current time, aware; tests may pass a controllable one.
    """

    def __init__(
        self,
        api_token: str = "fake-token",
        *,
        declared_fields: Iterable[str] = MANAGED_FIELDS,
        webhook_url: str | None = None,
        webhook_token: str = "",
        retry_schedule: Sequence[float] = (1, 2, 4),
        webhook_timeout: float = 5.0,
        clock: Callable[[], dt.datetime] | None = None,
    ) -> None:
        if not api_token:
            raise ValueError("api_token must not be empty")
        self.api_token = api_token
        self.faults = Faults()
        self._calls = CallLog()
        self._store = TicketStore(declared_fields, clock or _utcnow, self._changed)
        app = FakeApi(self._store, self.faults, self._calls, api_token)
        self._listener = Listener(app, "fake-helpdesk", label="fake helpdesk")
        self._lock = threading.Lock()
        self._webhooks: WebhookSender | None = None
        self._retry_schedule = tuple(retry_schedule)
        self._webhook_timeout = webhook_timeout
        if webhook_url:
            self.configure_webhook(webhook_url, webhook_token)

    # --- lifecycle (pause, resume and the context manager: ListeningSandbox) ---------------

    def start(self, port: int = 0) -> str:
        """Listen on 127.0.0.1 (``port`` 0: any free port) and return the base URL."""
        with self._lock:
            self._listener.start(HOST, port)
            webhooks = self._webhooks
        if webhooks is not None:
            webhooks.start()
        return self.base_url

    def stop(self) -> None:
        """Stop serving and delivering webhooks; safe to call twice."""
        with self._lock:
            self._listener.stop()
            webhooks = self._webhooks
        if webhooks is not None:
            webhooks.stop()

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>``; only valid once started."""
        return self._listener.base_url

    # --- tickets, as an agent or admin would change them ----------------------------------

    def create_ticket(self, **fields: Any) -> JsonObject:
        """Create a ticket (keys as in the ticket JSON: subject, body, customer, ...)."""
        return self._store.create(fields)

    def update_ticket(self, ticket_id: str | int, **changes: Any) -> JsonObject:
        """Edit a ticket like an agent: ``fields`` are merged, ``tags`` replace the set."""
        return self._store.update(str(ticket_id), changes)

    def ticket(self, ticket_id: str | int) -> JsonObject:
        """The ticket's current JSON, as ``GET /api/tickets/<id>`` returns it."""
        return self._store.get(str(ticket_id))

    def declare_field(self, name: str) -> None:
        """Let the API write custom field ``name`` (like creating an object attribute)."""
        self._store.declare(name)

    # --- what happened --------------------------------------------------------------------

    def calls(
        self, method: str | None = None, ticket_id: str | int | None = None
    ) -> list[CallRecord]:
        """Every API request served so far, oldest first, optionally filtered."""
        return self._calls.calls(method, None if ticket_id is None else str(ticket_id))

    def writes(self, ticket_id: str | int | None = None) -> list[CallRecord]:
        """Successful field PATCHes and tag POSTs, optionally for one ticket."""
        return self._calls.writes(None if ticket_id is None else str(ticket_id))

    def max_concurrent_per_ticket(self) -> int:
        """The most API requests ever in flight at once for one ticket."""
        return self._calls.max_concurrent_per_ticket()

    def clear_calls(self) -> None:
        """Forget the call log (e.g. after setting up tickets)."""
        self._calls.clear()

    # --- webhooks -------------------------------------------------------------------------

    def configure_webhook(self, url: str, token: str = "") -> None:
        """Send webhooks to ``url`` from now on (replacing an earlier target)."""
        sender = WebhookSender(
            url, token, retry_schedule=self._retry_schedule, timeout=self._webhook_timeout
        )
        with self._lock:
            old, self._webhooks = self._webhooks, sender
            running = self._listener.started
        if old is not None:
            old.stop()
        if running:
            sender.start()

    @property
    def webhooks_sent(self) -> int:
        """Deliveries the receiver acknowledged with 2xx."""
        return self._webhooks.sent if self._webhooks else 0

    @property
    def webhooks_failed(self) -> int:
        """Failed delivery attempts (non-2xx, refused, timed out), retries included."""
        return self._webhooks.failed if self._webhooks else 0

    @property
    def webhooks_abandoned(self) -> int:
        """Deliveries given up after the last retry, as real helpdesks silently do."""
        return self._webhooks.abandoned if self._webhooks else 0

    @property
    def webhooks_pending(self) -> int:
        """Deliveries not yet acknowledged or abandoned."""
        return self._webhooks.pending if self._webhooks else 0

    def deliveries(self) -> list[DeliveryAttempt]:
        """Every webhook attempt so far, oldest first."""
        return self._webhooks.attempts() if self._webhooks else []

    def _changed(self, ticket_id: str, event: str) -> None:
        webhooks = self._webhooks
        if webhooks is not None:
            webhooks.enqueue(ticket_id, event)


def wait_until(
    condition: Callable[[], object], timeout: float = 5.0, *, interval: float = 0.01
) -> None:
    """Poll ``condition`` until it is truthy; raise :class:`TimeoutError` after ``timeout`` s.

    For tests waiting on something asynchronous (a webhook, a worker process) without
    guessing a fixed sleep.
    """
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() >= deadline:
            raise TimeoutError(f"condition not met within {timeout} s")
        time.sleep(interval)


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def main(argv: Sequence[str] | None = None) -> int:
    """Serve a fake helpdesk with a few sample tickets until interrupted."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0: any)")
    parser.add_argument("--token", default="fake-token", help="API token to accept")
    parser.add_argument("--webhook-url", help="where to POST webhooks")
    parser.add_argument("--webhook-token", default="fake-webhook-token", help="X-Fake-Token")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    helpdesk = FakeHelpdesk(
        args.token, webhook_url=args.webhook_url, webhook_token=args.webhook_token
    )
    helpdesk.start(args.port)
    try:
        for sample in SAMPLE_TICKETS:
            helpdesk.create_ticket(**sample)
        print(helpdesk.base_url, flush=True)
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        helpdesk.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
