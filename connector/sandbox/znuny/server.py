"""``ZnunySandbox``: a fake Znuny 7 GenericInterface on a real socket, for tests and demos.

It serves the ``GenericTicketConnectorREST`` provider (facts §2) from a background thread and
plays the requester side (facts §1): every ticket change, including changes made through its
own REST API, raises the events Znuny raises, and a configured web service's invokers call
the connector (asynchronously by a daemon pool, out of order, with ``RequestRetry``). Tests
steer it through the Python API (create and edit tickets as an agent, add dynamic fields,
queues and customers, inject faults, pause the server or the daemon) and inspect what it saw.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Mapping
from typing import Any
from zoneinfo import ZoneInfo

from connector.sandbox.fake_calls import CallLog, CallRecord
from connector.sandbox.fake_faults import Faults
from connector.sandbox.listener import HOST, Listener, ListeningSandbox
from connector.sandbox.znuny.admin import Admin
from connector.sandbox.znuny.invoker import Requester, RetryPolicy
from connector.sandbox.znuny.operations import OperationRecord, Operations, Sessions
from connector.sandbox.znuny.provider import Provider
from connector.sandbox.znuny.scheduler import Daemon, Delivery, Task
from connector.sandbox.znuny.state import TicketEvent
from connector.sandbox.znuny.webservice import WebserviceConfig, parse_webservice

_log = logging.getLogger(__name__)
BASE_PATH = "/znuny/nph-genericinterface.pl/Webservice/"


class ZnunySandbox(Admin, ListeningSandbox):
    """A Znuny with one web service; see the module docstring.

    Args:
        webservice: the web service's name (the last segment of the base URL).
        agents: agent login -> password, UserIDs 1, 2, ... in order; default
            ``root@localhost`` (1, password ``root``) and ``slabot`` (2, password ``slabot``).
        retry: replaces the web service's ``RequestRetry`` numbers (tests pass tiny ones);
            None uses the YAML's. Without ``ErrorHandling`` in the YAML nothing is retried.
        async_workers: daemon workers sending asynchronous invoker tasks in parallel.
        shuffle: take due tasks in random order, as the real daemon delivers out of order.
        clock: the current time (aware); tests may pass a controllable one.
        otrs_time_zone: SysConfig ``OTRSTimeZone``: the zone of every time Znuny shows.
    """

    def __init__(
        self,
        *,
        webservice: str = "GenericTicketConnectorREST",
        agents: Mapping[str, str] | None = None,
        retry: RetryPolicy | None = None,
        async_workers: int = 5,
        shuffle: bool = True,
        clock: Callable[[], dt.datetime] | None = None,
        otrs_time_zone: str = "UTC",
    ) -> None:
        super().__init__(clock or _utcnow, ZoneInfo(otrs_time_zone), agents)
        self.webservice = webservice
        self.faults = Faults()
        self._calls = CallLog()
        self._retry = retry
        self._omitted_fields: dict[str, str] = {}
        self._sessions = Sessions()
        self._operations = Operations(self._state, self._renderer, self._sessions)
        self._config: WebserviceConfig = parse_webservice({}, webservice)
        self._requester: Requester | None = None
        self._daemon = Daemon(self._run_task, workers=async_workers, shuffle=shuffle)
        self._provider = Provider(
            webservice, lambda: self._config.routes(), self._operations, self.faults, self._calls
        )
        self._state.listener = self._on_events
        self._listener = Listener(self._provider, "znuny-sandbox", label="Znuny sandbox")

    # --- lifecycle (pause, resume and the context manager: ListeningSandbox) ---------------

    def start(self, port: int = 0, *, host: str = HOST) -> str:
        """Listen (``port`` 0: any free port), start the daemon; returns :attr:`base_url`."""
        if self._listener.started:  # checked here too, to name the web service URL
            raise RuntimeError(f"already started on {self.base_url}")
        self._listener.start(host, port)
        self._daemon.start()
        return self.base_url

    def stop(self) -> None:
        """Stop serving and the daemon (tasks in progress finish); safe to call twice."""
        self._listener.stop()
        self._daemon.stop()

    def pause_daemon(self) -> None:
        """Stop sending asynchronous tasks, like a stopped ``znuny.Daemon.pl`` [live]."""
        self._daemon.pause()

    def resume_daemon(self) -> None:
        self._daemon.resume()

    @property
    def root_url(self) -> str:
        """``http://HOST:PORT``; only valid once started."""
        return self._listener.base_url

    @property
    def base_url(self) -> str:
        """The web service's base URL: ``.../nph-genericinterface.pl/Webservice/<name>``."""
        return f"{self.root_url}{BASE_PATH}{self.webservice}"

    # --- the web service -------------------------------------------------------------------

    def configure_webservice(self, document: str | Mapping[str, Any]) -> None:
        """Load a web-service document (YAML text or mapping), like ``Admin::WebService::Update``.

        Its provider routes replace the defaults when it has a ``RouteOperationMapping``; its
        requester replaces any earlier one. Raises ConfigError for what cannot be modelled.
        """
        config = parse_webservice(document, self.webservice)
        requester = Requester(
            config,
            self.webservice,
            self._daemon,
            deep_ticket=lambda tid, aid: self._state.read(
                tid, lambda ticket: self._renderer.deep(ticket, aid)
            ),
            respond=self._apply_response_tags,
            retry=self._retry,
            omitted_fields=lambda: dict(self._omitted_fields),
        )
        self._config, self._requester = config, requester

    def set_omitted_fields(self, invoker: str, fields: str) -> None:
        """SysConfig ``GenericInterface::Invoker::Ticket::Generic::PrepareRequest::
        OmittedFields``, key ``invoker``: ``;``-separated keys (``A->B`` for nested ones) left
        out of that invoker's requests from now on; ``""`` removes the key."""
        if fields:
            self._omitted_fields[invoker] = fields
        else:
            self._omitted_fields.pop(invoker, None)

    def expire_sessions(self) -> None:
        """Invalidate every SessionID, as after ``SessionMaxTime``."""
        self._sessions.expire_all()

    def _on_events(self, events: list[TicketEvent]) -> None:
        requester = self._requester
        if requester is not None and events:
            requester.handle(events)

    def _run_task(self, task: Task) -> Delivery:
        requester = self._requester
        if requester is None:  # the web service was replaced by one without a requester
            return Delivery(
                invoker=task.invoker,
                event=str(task.event.get("Event")),
                ticket_id=task.ticket_id,
                attempt=task.attempt,
                asynchronous=task.asynchronous,
                url="",
                payload=task.event,
                status=None,
                error="no requester configured",
            )
        return requester.run(task)

    def _apply_response_tags(self, ticket_id: int, tags: dict[str, Any]) -> None:
        """``HandleResponse``: ``OTRS_Ticket*`` keys of an answer change the ticket (UserID 1)."""
        fields = {
            key.removeprefix("OTRS_TicketDynamicFieldSet_"): value
            for key, value in tags.items()
            if key.startswith("OTRS_TicketDynamicFieldSet_")
        }
        attributes = {
            "Title": tags.get("OTRS_TicketTitleUpdate"),
            "Queue": tags.get("OTRS_TicketQueueSet"),
            "State": tags.get("OTRS_TicketStateSet"),
            "Priority": tags.get("OTRS_TicketPrioritySet"),
        }
        raw = {key: value for key, value in attributes.items() if value is not None}
        try:
            self._change(ticket_id, raw, None, fields, 1, ticket_id)
        except (ValueError, KeyError) as exc:
            _log.info("znuny sandbox: response tags for ticket %s refused: %s", ticket_id, exc)

    # --- what happened ---------------------------------------------------------------------

    def calls(
        self, method: str | None = None, ticket_id: str | int | None = None
    ) -> list[CallRecord]:
        """Every HTTP request the provider received, oldest first, optionally filtered."""
        return self._calls.calls(method, None if ticket_id is None else str(ticket_id))

    def operations(self) -> list[OperationRecord]:
        """Every operation the provider ran (errors included), like the Debugger's list."""
        return self._operations.records()

    def writes(self, ticket_id: str | int | None = None) -> list[OperationRecord]:
        """TicketUpdate operations that succeeded (errors are HTTP 200 too, so not counted)."""
        return [
            record
            for record in self._operations.records()
            if record.operation == "TicketUpdate"
            and record.error_code is None
            and (ticket_id is None or record.ticket_id == str(ticket_id))
        ]

    def max_concurrent_per_ticket(self) -> int:
        """The most provider requests ever in flight at once for one ticket."""
        return self._calls.max_concurrent_per_ticket()

    def clear_calls(self) -> None:
        """Forget the call log (e.g. after setting up tickets)."""
        self._calls.clear()

    def deliveries(self) -> list[Delivery]:
        """Every invoker request so far (retries included), oldest first."""
        return self._daemon.deliveries()

    @property
    def webhooks_sent(self) -> int:
        """Invoker requests the remote acknowledged."""
        return sum(1 for d in self.deliveries() if d.ok)

    @property
    def webhooks_failed(self) -> int:
        """Failed invoker attempts, retries included."""
        return sum(1 for d in self.deliveries() if not d.ok)

    @property
    def webhooks_abandoned(self) -> int:
        """Invoker requests given up (no retry left, or no error handling), silently."""
        return sum(1 for d in self.deliveries() if not d.ok and d.retry_in is None)

    @property
    def webhooks_pending(self) -> int:
        """Daemon tasks queued, waiting for a retry, or running."""
        return self._daemon.pending


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)
