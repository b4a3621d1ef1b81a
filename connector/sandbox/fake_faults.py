"""Faults a test can switch on in a sandbox: error answers, slowness, dropped connections.

Real helpdesks fail in front of the application (a proxy answering 502/503 during a restart, a
SaaS throttle answering 429 with ``Retry-After``) and inside it (500 on a bug, a request that is
applied but whose answer never arrives). These faults reproduce that on a real socket so the
retry layer is exercised by real ``requests`` exceptions and real status codes.

Every sandbox (the fake helpdesk, the fake Zammad, the fake Znuny) holds a :class:`Faults`
plan and puts :func:`serve_with_faults` in front of its own request handling, so a fault means
the same thing everywhere; only the body of an injected error answer is the sandbox's own.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from werkzeug.http import HTTP_STATUS_CODES
from werkzeug.wrappers import Request, Response


@dataclass(frozen=True)
class Fault:
    """One planned failure: an error answer, or a connection closed without an answer.

    Attributes:
        status: HTTP status to answer; 0 means drop the connection instead.
        retry_after: sent as the ``Retry-After`` header when set (seconds or an HTTP-date).
        body: the JSON (dict) or text (str) to answer; a default ``{"error": ...}`` if None.
        after_apply: for dropped connections, process the request first (the write happens,
            the webhook fires) and lose only the answer.
    """

    status: int
    retry_after: float | str | None = None
    body: dict[str, Any] | str | None = None
    after_apply: bool = False


@dataclass
class _Rule:
    fault: Fault
    methods: frozenset[str] | None
    remaining: int | None = None
    until: float | None = None

    def applies(self, method: str, now: float) -> bool:
        if self.methods is not None and method not in self.methods:
            return False
        if self.until is not None:
            return now < self.until
        return self.remaining is not None and self.remaining > 0


class Faults:
    """Thread-safe fault plan, consulted once per API request (before authentication).

    Rules are tried in the order they were added; a count-limited rule is used up one request
    at a time, a time-limited rule expires by itself. Latency applies to every API request.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rules: list[_Rule] = []
        self._latency = 0.0

    def fail_next(
        self,
        n: int = 1,
        status: int = 503,
        retry_after: float | str | None = None,
        body: dict[str, Any] | str | None = None,
        methods: Iterable[str] | None = None,
    ) -> None:
        """Answer the next ``n`` matching requests with ``status``, then behave normally."""
        fault = Fault(status=status, retry_after=retry_after, body=body)
        self._add(_Rule(fault, _methods(methods), remaining=n))

    def fail_for(
        self,
        seconds: float,
        status: int = 500,
        retry_after: float | str | None = None,
        body: dict[str, Any] | str | None = None,
        methods: Iterable[str] | None = None,
    ) -> None:
        """Answer every matching request with ``status`` for the next ``seconds``."""
        fault = Fault(status=status, retry_after=retry_after, body=body)
        until = time.monotonic() + seconds
        self._add(_Rule(fault, _methods(methods), until=until))

    def drop_next(
        self, n: int = 1, *, after_apply: bool = False, methods: Iterable[str] | None = None
    ) -> None:
        """Close the connection of the next ``n`` matching requests without an answer.

        With ``after_apply`` the request is processed first, so the client sees a failure for a
        write that did happen: the case an idempotent pipeline must survive.
        """
        fault = Fault(status=0, after_apply=after_apply)
        self._add(_Rule(fault, _methods(methods), remaining=n))

    def latency(self, seconds: float) -> None:
        """Delay every API request by ``seconds`` (0 turns it off)."""
        with self._lock:
            self._latency = max(seconds, 0.0)

    def clear(self) -> None:
        """Remove every fault and the latency."""
        with self._lock:
            self._rules.clear()
            self._latency = 0.0

    @property
    def delay(self) -> float:
        """The latency currently added to each API request, in seconds."""
        with self._lock:
            return self._latency

    def take(self, method: str) -> Fault | None:
        """The fault for one request with ``method``, consuming a count if it has one."""
        now = time.monotonic()
        with self._lock:
            self._rules = [rule for rule in self._rules if not _spent(rule, now)]
            for rule in self._rules:
                if rule.applies(method.upper(), now):
                    if rule.remaining is not None:
                        rule.remaining -= 1
                    return rule.fault
        return None

    def _add(self, rule: _Rule) -> None:
        with self._lock:
            self._rules.append(rule)


def _methods(methods: Iterable[str] | None) -> frozenset[str] | None:
    return None if methods is None else frozenset(method.upper() for method in methods)


def _spent(rule: _Rule, now: float) -> bool:
    if rule.until is not None:
        return now >= rule.until
    return rule.remaining is not None and rule.remaining <= 0


def serve_with_faults(
    faults: Faults,
    request: Request,
    answer: Callable[[], Response | None],
    respond: Callable[[Fault], Response] | None = None,
) -> tuple[Response, bool]:
    """Apply ``faults`` to one request in front of the application, as a proxy would.

    Latency first; then a status fault is answered by ``respond`` (default
    :func:`fault_response`) without reaching the application; a dropped connection closes the
    socket before (``after_apply`` off) or after ``answer`` ran, so that in the second case the
    change happens but its answer is lost.

    Args:
        faults: the sandbox's fault plan.
        request: the request being served.
        answer: the application's answer; None closes the connection without one.
        respond: the sandbox's answer to a status fault.

    Returns:
        The response, and whether the connection was dropped instead (the call log then
        records no status).
    """
    delay = faults.delay
    if delay:
        time.sleep(delay)
    fault = faults.take(request.method)
    if fault is not None and fault.status:
        return (respond or fault_response)(fault), False
    if fault is not None and not fault.after_apply:
        return drop_connection(request), True
    response = answer()
    if response is None or fault is not None:
        return drop_connection(request), True
    return response, False


def fault_response(fault: Fault) -> Response:
    """A proxy-style error answer: the fault's body, or ``{"error": "injected 503 ..."}``."""
    headers = retry_after_headers(fault)
    if isinstance(fault.body, str):
        return Response(fault.body, fault.status, headers, mimetype="text/plain")
    reason = HTTP_STATUS_CODES.get(fault.status, "Error")
    body = fault.body if fault.body is not None else {"error": f"injected {fault.status} {reason}"}
    return Response(json.dumps(body), fault.status, headers, mimetype="application/json")


def retry_after_headers(fault: Fault) -> dict[str, str]:
    """``Retry-After`` for a fault that sets it (seconds as ``%g``, an HTTP-date as is)."""
    headers: dict[str, str] = {}
    if fault.retry_after is not None:
        value = fault.retry_after
        headers["Retry-After"] = f"{value:g}" if isinstance(value, int | float) else value
    return headers


def drop_connection(request: Request) -> Response:
    """Close the client's connection so it sees the server vanish mid-request."""
    sock = request.environ.get("werkzeug.socket")
    if isinstance(sock, socket.socket):
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
    return Response(b"", 500)
