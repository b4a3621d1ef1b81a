"""The fake Zammad's server half: socket, lifecycle, tokens, and what happened.

:class:`SandboxServer` serves Zammad's REST API (the calls, status codes, bodies and quirks of
``docs/zammad-facts.md``) from a background thread, runs triggers on every ticket transaction
and delivers their webhooks from a background queue with Zammad's retry policy. Tests steer it
through :class:`~connector.sandbox.zammad.sandbox.ZammadSandbox`, which adds the data API
(organizations, customers, tickets, articles, agent edits), and inspect the call log, the
triggers that fired and every delivery attempt; ``faults`` and ``pause``/``resume`` simulate an
unhealthy Zammad.

Users: ``admin@example.com`` (Admin + Agent) and the integration user ``sla-bot@example.com``
(Agent only, so the admin endpoints answer it 403 until :meth:`ZammadSandbox.grant_admin`).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from connector.sandbox.delivery import DeliveryAttempt
from connector.sandbox.fake_calls import CallLog, CallRecord
from connector.sandbox.fake_faults import Faults
from connector.sandbox.listener import HOST, Listener, ListeningSandbox
from connector.sandbox.zammad import routes_admin, routes_tickets, views
from connector.sandbox.zammad.api import Core, ZammadApi
from connector.sandbox.zammad.errors import DEADLOCK
from connector.sandbox.zammad.payload import Outgoing, render
from connector.sandbox.zammad.state import Store
from connector.sandbox.zammad.tickets import Tickets, Transaction
from connector.sandbox.zammad.times import iso
from connector.sandbox.zammad.triggers import Automation, Firing, Job
from connector.sandbox.zammad.webhooks import ZAMMAD_RETRY_SCHEDULE, WebhookSender

ADMIN_LOGIN = "admin@example.com"
INTEGRATION_LOGIN = "sla-bot@example.com"
ADMIN_TOKEN = "sandbox-admin-token"
INTEGRATION_TOKEN = "sandbox-integration-token"
_WRITE = re.compile(r"^(PUT /api/v1/tickets/\d+|POST /api/v1/tags/add|DELETE /api/v1/tags/remove)$")


class SandboxServer(ListeningSandbox):
    """An in-memory Zammad with REST API, triggers, webhooks, fault injection and a call log.

    Args:
        tokens: API token → user login; unknown logins become agents. Default: the admin's
            and the integration user's tokens (:data:`ADMIN_TOKEN`, :data:`INTEGRATION_TOKEN`).
        retry_schedule: seconds before each webhook retry (Zammad: 10, 20, 30, 40).
        clock: the current time, aware; tests may pass a controllable one.
        double_fire_on_create: reproduce zammad/zammad#5841: right after a create, a second
            ``update`` transaction (the escalation re-save of facts §3 item 6 — *inference*)
            whose only change is ``preferences``; it fires every matching ``always`` trigger
            and selective triggers that name only untracked attributes (by default
            ``ticket.action`` and ``ticket.updated_by_id``, e.g. the usual "update, not by the
            integration user" trigger).
        webhook_timeouts: (connect, read) seconds for webhook requests (Zammad: 4, 30).
    """

    def __init__(
        self,
        *,
        tokens: Mapping[str, str] | None = None,
        retry_schedule: Sequence[float] = ZAMMAD_RETRY_SCHEDULE,
        clock: Callable[[], dt.datetime] | None = None,
        double_fire_on_create: bool = False,
        webhook_timeouts: tuple[float, float] = (4.0, 30.0),
    ) -> None:
        self.faults = Faults()
        self.double_fire_on_create = double_fire_on_create
        self._calls = CallLog()
        self._store = Store(clock or (lambda: dt.datetime.now(dt.UTC)))
        self._sender = WebhookSender(
            self._render, retry_schedule=retry_schedule, timeouts=webhook_timeouts
        )
        self._automation = Automation(self._store, self._sender.enqueue)
        self._tickets = Tickets(self._store, self._dispatch)
        self._admin = self._store.add_user(
            ADMIN_LOGIN, firstname="Admin", lastname="Sandbox", roles=("Admin", "Agent")
        )
        self._bot = self._store.add_user(
            INTEGRATION_LOGIN, firstname="SLA", lastname="Service", roles=("Agent",)
        )
        self._tokens: dict[str, int] = {}
        self._passwords: dict[int, str] = {}
        default = {ADMIN_TOKEN: ADMIN_LOGIN, INTEGRATION_TOKEN: INTEGRATION_LOGIN}
        for token, login in (default if tokens is None else tokens).items():
            self.add_token(token, login)
        core = Core(self._store, self._tickets, self._automation)
        routes = (*routes_tickets.ROUTES, *routes_admin.ROUTES)
        app = ZammadApi(core, self.faults, self._calls, self._tokens, routes, self._passwords)
        self._listener = Listener(app, "zammad-sandbox")

    # --- lifecycle (pause, resume and the context manager: ListeningSandbox) ---------------

    def start(self, port: int = 0, *, host: str = HOST) -> str:
        """Listen on ``host`` (``port`` 0: any free port), start webhooks; returns the base URL."""
        self._listener.start(host, port)
        self._sender.start()
        return self.base_url

    def stop(self) -> None:
        """Stop serving and delivering webhooks; safe to call twice."""
        self._listener.stop()
        self._sender.stop()

    @property
    def base_url(self) -> str:
        """``http://HOST:PORT``; only valid once started."""
        return self._listener.base_url

    # --- users and tokens ------------------------------------------------------------------

    @property
    def admin_user_id(self) -> int:
        """Id of ``admin@example.com``."""
        return int(self._admin["id"])

    @property
    def integration_user_id(self) -> int:
        """Id of ``sla-bot@example.com``, the user the connector's token acts as."""
        return int(self._bot["id"])

    def add_token(self, token: str, login: str) -> int:
        """Accept ``token`` for user ``login`` (created as an agent if new); returns the id."""
        if not token:
            raise ValueError("an API token must not be empty")
        with self._store.lock:
            user = self._store.find_user(login) or self._store.add_user(login, roles=("Agent",))
            self._tokens[token] = int(user["id"])
            return int(user["id"])

    def set_password(self, login: str, password: str) -> int:
        """Let user ``login`` (created as an agent if new) use basic auth; returns the id.

        Facts §4.1: ``Authorization: Basic base64(user:pass)`` with the setting
        ``api_password_access`` on (Zammad's default). Any Unicode password is fine: it is
        compared with the UTF-8 bytes the client sent.
        """
        if not password:
            raise ValueError("a password must not be empty")
        with self._store.lock:
            user = self._store.find_user(login) or self._store.add_user(login, roles=("Agent",))
            self._passwords[int(user["id"])] = password
            return int(user["id"])

    def grant_admin(self, login: str) -> None:
        """Give user ``login`` the Admin role (e.g. to run setup with the integration token)."""
        with self._store.lock:
            user = self._store.find_user(login)
            if user is None:
                raise KeyError(login)
            if 1 not in user["role_ids"]:
                user["role_ids"] = [1, *user["role_ids"]]

    def user_id(self, ref: str | int) -> int:
        """The id of a user given by id, login or e-mail."""
        with self._store.lock:
            user = self._store.find_user(ref)
            if user is None:
                raise KeyError(ref)
            return int(user["id"])

    # --- faults inside Zammad ----------------------------------------------------------------

    def lock_conflict_next(self, n: int = 1, *, message: str = DEADLOCK) -> None:
        """The next ``n`` REST ticket updates lose the row lock (``ticket.with_lock``).

        Zammad answers 422 with ``message`` to an admin and ``{"error": "Error ID <id>: Please
        contact your administrator."}`` to everyone else, the integration user included
        (facts §4.2, §4.4). Unlike :attr:`faults`, this happens inside Zammad: after
        authentication, only for ticket updates through the API (``PUT /api/v1/tickets/:id``,
        ``POST /api/v1/ticket_articles``), and nothing is written.
        """
        with self._store.lock:
            self._tickets.lock_conflicts.extend([message] * n)

    # --- observation -----------------------------------------------------------------------

    def calls(
        self, method: str | None = None, ticket_id: str | int | None = None
    ) -> list[CallRecord]:
        """Every API request served so far, oldest first, optionally filtered."""
        return self._calls.calls(method, None if ticket_id is None else str(ticket_id))

    def writes(self, ticket_id: str | int | None = None) -> list[CallRecord]:
        """Successful ticket ``PUT`` s and tag additions/removals, optionally for one ticket."""
        return [
            call
            for call in self.calls(ticket_id=ticket_id)
            if call.status is not None
            and 200 <= call.status < 300
            and _WRITE.match(f"{call.method} {call.path}")
        ]

    def clear_calls(self) -> None:
        """Forget the call log."""
        self._calls.clear()

    def fired(self) -> list[Firing]:
        """Triggers that fired so far, in firing order."""
        return self._automation.fired()

    @property
    def selective_ignores(self) -> set[str]:
        """Condition names selective mode does not track (default: action, updated_by_id)."""
        return self._automation.selective_ignores

    def deliveries(self) -> list[DeliveryAttempt]:
        """Every webhook attempt so far (``event`` = trigger name)."""
        return self._sender.attempts()

    @property
    def webhooks_sent(self) -> int:
        """Deliveries the receiver acknowledged with 2xx."""
        return self._sender.sent

    @property
    def webhooks_failed(self) -> int:
        """Failed attempts (non-2xx, 3xx, refused, timed out), retries included."""
        return self._sender.failed

    @property
    def webhooks_abandoned(self) -> int:
        """Deliveries given up after the last retry (silently, like Zammad)."""
        return self._sender.abandoned

    @property
    def webhooks_discarded(self) -> int:
        """Jobs ended without a request: webhook inactive/deleted, trigger/ticket deleted."""
        return self._sender.discarded

    @property
    def webhooks_pending(self) -> int:
        """Deliveries not yet acknowledged, abandoned or discarded."""
        return self._sender.pending

    @property
    def webhook_timeouts(self) -> tuple[float, float]:
        """(connect, read) timeout of webhook requests, seconds."""
        return self._sender.timeouts

    @webhook_timeouts.setter
    def webhook_timeouts(self, value: tuple[float, float]) -> None:
        self._sender.timeouts = value

    # --- internals -------------------------------------------------------------------------

    def _dispatch(self, txn: Transaction) -> None:
        self._automation.dispatch(txn)
        if txn.action == "create" and self.double_fire_on_create:
            ticket = self._store.tables["Ticket"][txn.ticket_id]
            calculation = {"escalation_calculation": {"calculated_at": iso(self._store.now())}}
            ticket["preferences"] = {**ticket["preferences"], **calculation}
            ticket["updated_at"] = self._store.now()
            changes = frozenset({"preferences"})
            self._automation.dispatch(
                Transaction(txn.ticket_id, "update", changes, None, txn.user_id)
            )

    def _render(self, job: Job) -> Outgoing:
        base = self.base_url if self._listener.started else "http://localhost"
        return render(self._store, job, base)

    @property
    def store(self) -> Store:
        """The tables (hold ``store.lock`` while reading them)."""
        return self._store

    @property
    def tickets(self) -> Tickets:
        """Ticket transactions, for the data helpers."""
        return self._tickets

    @property
    def automation(self) -> Automation:
        """Triggers and webhooks, for the data helpers."""
        return self._automation

    def view(self, table: str, row_id: int, *, expand: bool = False) -> dict[str, Any]:
        """A record's JSON as the REST API shows it."""
        with self._store.lock:
            row = self._store.get(table, row_id)
            if table == "Ticket":
                return views.ticket(self._store, row, expand=expand)
            if table == "User":
                return views.user(self._store, row, expand=expand)
            if table == "Organization":
                return views.organization(self._store, row, expand=expand)
            return views.plain(self._store, table, row)
