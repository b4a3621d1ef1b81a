"""The requester side: the GenericInterface event handler and the ``Ticket::Generic`` invoker.

Facts (§1):

* The handler runs at the end of the transaction that raised the events; for each invoker
  subscribed to an event whose ``Condition`` holds on the ticket data, it either adds a daemon
  task (``Asynchronous: '1'``) or calls the invoker inline (``'0'``; a failure does not fail
  the ticket change [live]).
* Conditions are checked on the event object's data (``Event/Handler.pm``, ``DataGet`` of
  ``Event/ObjectType/<Type>.pm``): for ticket events the ticket, for article events
  (``ArticleCreate`` ...) the ticket **merged with the article** (``ObjectType/Article.pm``
  returns ``(%TicketData, %ArticleData)``), so there ``ChangeBy``/``CreateBy`` are the
  article's, i.e. its author's.
* ``PrepareRequest`` sends ``{"Event": <event data + Event>, "Ticket": TicketDeepGet}``; the
  ticket is read **at send time**, on every retry too. SysConfig
  ``GenericInterface::Invoker::Ticket::Generic::PrepareRequest::OmittedFields`` (invoker
  name -> ``Field1;Field2->Sub``) removes those keys from both blocks first
  (``Invoker/Ticket/Generic.pm``, ``Util.pm`` ``DataStructureRemoveElements``: a list is
  handled element by element).
* REST transport: ``Host`` + ``InvokerControllerMapping.<invoker>.Controller`` with ``:Param``
  taken from the flattened payload (``:Event.Event``; a used top-level key leaves the body),
  ``Command`` or ``DefaultCommand``; ``BasicAuth``; ``AdditionalHeaders``; ``Timeout``. The
  body is JSON for POST/PUT/PATCH; for other commands the sandbox sends the top-level scalars
  as query parameters (a simplification). ``BasicAuth`` is ``'Basic ' . encode_base64("$User:
  $Password")``: Perl's ``encode_base64`` ends a line every 76 characters, and LWP sends every
  line break in a header value as a space, so longer credentials carry a space inside the
  base64 text (the final one is trailing whitespace, which the receiving server drops).
* Success is a status matching ``^20\\d$`` and, unless 204, a body: JSON unless the response's
  ``Content-Type`` is ``text/plain|html|xml``; JSON that is not an object is an error. A 200
  with an empty body is an error and is retried like a 500 [live].
* A JSON answer may carry ``OTRS_TicketDynamicFieldSet_<Name>``, ``OTRS_TicketTitleUpdate``,
  ``OTRS_TicketQueueSet``, ``OTRS_TicketStateSet`` or ``OTRS_TicketPrioritySet``; they change
  the ticket as UserID 1 and raise events like any change.
* ``RequestRetry``: retry n (0-based) waits ``min(start * factor**n, max)`` seconds; no retry
  beyond ``RetryCountMax`` retries or past ``RetryPeriodMax`` after the first attempt; **no
  ``ErrorHandling`` means no retry at all**. Znuny refuses intervals under 1 s; the sandbox
  accepts them so tests run fast.
"""

from __future__ import annotations

import base64
import copy
import json
import logging
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import requests

from connector.errors import ConfigError, ConfigIssue
from connector.sandbox.znuny.scheduler import Daemon, Delivery, Task
from connector.sandbox.znuny.state import TicketEvent
from connector.sandbox.znuny.webservice import WebserviceConfig, condition_holds

_log = logging.getLogger(__name__)
_SUCCESS = re.compile(r"^20\d$")
_TEXT = re.compile(r"text/(plain|html|xml)", re.IGNORECASE)
_PARAM = re.compile(r":([A-Za-z0-9_.]+)")
USER_AGENT = "REST::Client/273"


@dataclass(frozen=True)
class RetryPolicy:
    """``RequestRetry`` numbers: seconds, factor, retry count and period (Znuny's defaults
    in the facts' example: 10 s, x2, at most 60 s, 3 retries, within 600 s)."""

    start: float = 10.0
    factor: float = 2.0
    max: float = 60.0
    count: int = 3
    period: float = 600.0

    def delay(self, retries_so_far: int, elapsed: float) -> float | None:
        """Seconds to the next attempt, or None when the retries are used up."""
        if retries_so_far >= self.count:
            return None
        interval = self.start * self.factor**retries_so_far
        if self.max:
            interval = min(interval, self.max)
        if self.period and elapsed + interval > self.period:
            return None
        return interval


class _Failure(Exception):
    def __init__(self, message: str, stage: str, status: int | None = None) -> None:
        super().__init__(message)
        self.stage = stage
        self.status = status


class Requester:
    """Event handler plus invoker for one web service's ``Requester`` section.

    Args:
        config: the validated web service.
        name: the web service's name, for messages.
        daemon: where asynchronous tasks and retries go.
        deep_ticket: TicketDeepGet hash ``(ticket_id, article_id)``, None if it is gone; the
            conditions check it at event time, the request sends it at send time.
        respond: applies the response tags of a successful answer to a ticket.
        retry: replaces the YAML's ``RequestRetry`` numbers (tests use tiny ones).
        omitted_fields: SysConfig ``...PrepareRequest::OmittedFields``, read at send time:
            invoker name -> ``;``-separated keys to leave out of the request.
    """

    def __init__(
        self,
        config: WebserviceConfig,
        name: str,
        daemon: Daemon,
        deep_ticket: Callable[[int, int | None], dict[str, Any] | None],
        respond: Callable[[int, dict[str, Any]], None],
        retry: RetryPolicy | None = None,
        omitted_fields: Callable[[], Mapping[str, str]] = dict,
    ) -> None:
        transport = config.rest_requester
        auth = (transport.Authentication or {}) if transport else {}
        if auth.get("AuthType") not in (None, "", "BasicAuth"):
            issue = ConfigIssue(
                f"web service {name}",
                "Requester.Transport.Config.Authentication.AuthType",
                f"{auth.get('AuthType')} is not modelled (only BasicAuth)",
            )
            raise ConfigError([issue])
        self.config = config
        self.name = name
        self._daemon = daemon
        self._deep_ticket = deep_ticket
        self._respond = respond
        self._retry = retry
        self._omitted_fields = omitted_fields

    def handle(self, events: list[TicketEvent]) -> None:
        """The event handler: queue or run the invokers the events trigger."""
        requester = self.config.Requester
        if requester is None or self.config.rest_requester is None:
            return
        for event in events:
            article = event.data.get("ArticleID")
            data = self._deep_ticket(event.ticket_id, int(article) if article else None)
            if data is None:
                continue
            if event.name.startswith("Article"):  # ObjectType::Article: ticket + article
                data = {**data, **(data.get("Article") or {})}
            for invoker_name, invoker in requester.Invoker.items():
                subscription = next((s for s in invoker.Events if s.Event == event.name), None)
                if subscription is None or not condition_holds(subscription.Condition, data):
                    continue
                task = Task(invoker_name, event.block(), event.ticket_id, subscription.Asynchronous)
                if subscription.Asynchronous:
                    self._daemon.add(task)
                    continue
                delivery = self.run(task)
                self._daemon.record(delivery)
                if delivery.retry_in is not None:  # a future task, run by the daemon
                    task.attempt += 1
                    task.due = time.monotonic() + delivery.retry_in
                    self._daemon.add(task)

    def run(self, task: Task) -> Delivery:
        """Make one attempt of ``task``; the record says whether and when to retry."""
        if task.first_attempt is None:
            task.first_attempt = time.monotonic()
        url, payload, status, error = "", task.event, None, None
        try:
            url, method, payload, headers, timeout = self._prepare(task)
            status, answer = self._perform(method, url, payload, headers, timeout)
            tags = {k: v for k, v in answer.items() if k.startswith("OTRS_")}
            if tags:
                self._respond(task.ticket_id, tags)
        except _Failure as failure:
            status, error = failure.status, str(failure)
            _log.info("There was an error executing %s (%s): %s", self.name, task.invoker, error)
            retry_in = self._retry_in(task, error, failure.stage)
        else:
            retry_in = None
        return Delivery(
            invoker=task.invoker,
            event=str(task.event.get("Event", "")),
            ticket_id=task.ticket_id,
            attempt=task.attempt,
            asynchronous=task.asynchronous,
            url=_without_credentials(url),
            payload=payload,
            status=status,
            error=error,
            retry_in=retry_in,
        )

    def _prepare(self, task: Task) -> tuple[str, str, dict[str, Any], dict[str, str], float]:
        transport = self.config.rest_requester
        if transport is None:
            raise _Failure("no REST requester configured", "RequesterRequestPrepare")
        article = task.event.get("ArticleID")
        deep = self._deep_ticket(task.ticket_id, int(article) if article else None)
        if deep is None:
            raise _Failure(f"ticket {task.ticket_id} not found", "RequesterRequestPrepare")
        event = copy.deepcopy(task.event)  # the task keeps its own copy for retries
        omitted = self._omitted_fields().get(task.invoker, "")
        keys = [key for key in re.split(r"\s*;\s*", omitted) if key]
        for block in (deep, event):
            _remove(block, keys)
        payload: dict[str, Any] = {"Event": event, "Ticket": deep}
        mapping = transport.InvokerControllerMapping.get(task.invoker)
        if mapping is None:
            message = f"Have no Invoker <{task.invoker}> controller mapping!"
            raise _Failure(message, "RequesterRequestPerform")
        flat = _flatten(payload)
        controller = mapping.Controller
        for param in _PARAM.findall(mapping.Controller):
            if param in flat:
                controller = controller.replace(f":{param}", quote(str(flat[param]), safe=""))
                if param in payload and not isinstance(payload[param], dict | list):
                    payload.pop(param)
        method = (mapping.Command or transport.DefaultCommand).upper()
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            "TE": "deflate,gzip;q=0.3",
            "Connection": "TE, close",
            **(transport.AdditionalHeaders or {}),
        }
        auth = transport.Authentication or {}
        user, password = auth.get("BasicAuthUser"), auth.get("BasicAuthPassword")
        if auth.get("AuthType") == "BasicAuth" and user and password:
            headers["Authorization"] = basic_authorization(str(user), str(password))
        url = transport.Host.rstrip("/") + controller
        return url, method, payload, headers, transport.Timeout

    def _perform(
        self,
        method: str,
        url: str,
        payload: dict[str, Any],
        headers: dict[str, str],
        timeout: float,
    ) -> tuple[int, dict[str, Any]]:
        stage = "RequesterRequestPerform"
        body, params = None, None
        if method in ("POST", "PUT", "PATCH"):
            body = json.dumps(payload, ensure_ascii=False).encode()
        else:
            params = {k: str(v) for k, v in payload.items() if not isinstance(v, dict | list)}
        try:
            response = requests.request(
                method,
                url,
                data=body,
                params=params,
                headers=headers,
                timeout=timeout,
                allow_redirects=False,
            )
        except requests.RequestException as exc:
            message = f"Error while performing request: {type(exc).__name__}"
            raise _Failure(message, stage) from None
        status = response.status_code
        if not _SUCCESS.match(str(status)):
            raise _Failure(f"Response code '{status}'", stage, status)
        if status == 204:
            return status, {}
        if not response.content:
            raise _Failure(f"Response code '{status}' without content", stage, status)
        if _TEXT.search(response.headers.get("Content-Type", "")):
            return status, {"Body": response.text}
        try:
            answer = response.json()
        except ValueError:
            raise _Failure("Error while parsing JSON data.", stage, status) from None
        if not isinstance(answer, dict):
            raise _Failure("Response is not a JSON object.", "RequesterResponseMap", status)
        return status, answer

    def _retry_in(self, task: Task, error: str, stage: str) -> float | None:
        requester = self.config.Requester
        if requester is None or not requester.ErrorHandling:
            return None
        modules = requester.ErrorHandling
        for name in requester.ErrorHandlingPriority or list(modules):
            module = modules.get(name)
            if module is None or module.Type != "RequestRetry":
                continue
            if module.InvokerFilter and task.invoker not in module.InvokerFilter:
                continue
            if module.ErrorStageFilter and stage not in module.ErrorStageFilter:
                continue
            pattern = module.ErrorMessageContentFilter
            if pattern and not re.search(pattern, error):
                continue
            if not module.ScheduleRetry:
                return None
            policy = self._retry or RetryPolicy(
                start=module.RetryIntervalStart,
                factor=module.RetryIntervalFactor,
                max=module.RetryIntervalMax,
                count=module.RetryCountMax,
                period=module.RetryPeriodMax,
            )
            elapsed = time.monotonic() - (task.first_attempt or time.monotonic())
            return policy.delay(task.attempt - 1, elapsed)
        return None


def basic_authorization(user: str, password: str) -> str:
    """The ``Authorization`` value Znuny's REST requester sends, as the server receives it.

    ``'Basic ' . encode_base64("$User:$Password")``: a line break after every 76 base64
    characters and at the end; LWP turns each into a space, the server drops the last one.
    """
    wrapped = base64.encodebytes(f"{user}:{password}".encode()).decode("ascii")
    return "Basic " + wrapped.replace("\n", " ").rstrip()


def _remove(data: Any, keys: list[str]) -> None:
    """``DataStructureRemoveElements``: drop each ``A->B->C`` path; lists element-wise."""
    if isinstance(data, list):
        for element in data:
            _remove(element, keys)
        return
    if not isinstance(data, dict):
        return
    for path in keys:
        head, _, rest = path.partition("->")
        if head not in data:
            continue
        if rest:
            _remove(data[head], [rest])
        else:
            del data[head]


def _flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{name}."))
        elif not isinstance(value, list):
            flat[name] = value
    return flat


def _without_credentials(url: str) -> str:
    parts = urlsplit(url)
    host = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit((parts.scheme, host, parts.path, "", ""))
