"""The sandboxes' HTTP side: a WSGI app on a real socket, served from a thread, pausable.

Every sandbox (the generic :class:`~connector.sandbox.fake_helpdesk.FakeHelpdesk`, the fake
Zammad and the fake Znuny) must be reachable over real HTTP, so that worker *processes* can
call it, while the test steers it from the same process. They all need the same lifecycle,
kept here so that its subtle parts cannot drift apart:

* ``start`` on a given or any free port (``0``) of ``127.0.0.1``;
* ``pause`` closes the listening socket, so clients get *connection refused* (a restarting
  helpdesk, a dead node behind a proxy), while requests already being served finish;
* ``resume`` listens again on the *same* port, so the connector's configured URL stays valid;
* ``stop`` forgets the port; it and ``pause`` are safe to call twice;
* the request log goes to DEBUG instead of werkzeug's line per request on stderr.

:func:`stop_on_signals` serves the command-line sandboxes (``bitrix-sla sandbox ...``) until
SIGTERM/SIGINT.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
from collections.abc import Iterator
from types import FrameType, TracebackType
from typing import TYPE_CHECKING, Any, Self

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication

__all__ = ["HOST", "Listener", "ListeningSandbox", "QuietHandler", "stop_on_signals"]

_log = logging.getLogger(__name__)

#: Where sandboxes listen by default: loopback only, they are test doubles.
HOST = "127.0.0.1"


class QuietHandler(WSGIRequestHandler):
    """Logs requests at DEBUG instead of printing each one to stderr."""

    def log(self, type: str, message: str, *args: Any) -> None:
        _log.debug("%s: " + message, type, *args)


class Listener:
    """Serves ``app`` on ``host:port`` with werkzeug's threaded server.

    Args:
        app: the WSGI application.
        name: used in thread names (``<name>-<port>``).
        label: names the server in error messages; default ``name``.
    """

    def __init__(self, app: WSGIApplication, name: str, *, label: str | None = None) -> None:
        self._app = app
        self._name = name
        self._label = name if label is None else label
        self._lock = threading.Lock()
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None
        self._host = HOST
        self._port: int | None = None

    @property
    def base_url(self) -> str:
        """``http://HOST:PORT``; only valid once started."""
        if self._port is None:
            raise RuntimeError(f"the {self._label} is not started")
        return f"http://{self._host}:{self._port}"

    @property
    def started(self) -> bool:
        """Whether :meth:`start` ran and :meth:`stop` did not (paused counts as started)."""
        return self._port is not None

    def start(self, host: str, port: int) -> None:
        """Listen on ``host:port`` (``port`` 0: any free port)."""
        with self._lock:
            if self._port is not None:
                raise RuntimeError(f"already started on {self.base_url}")
            self._host = host
            self._listen(port)

    def stop(self) -> None:
        """Stop serving and forget the port; safe to call twice."""
        with self._lock:
            self._close()
            self._port = None

    def pause(self) -> None:
        """Close the listening socket; new connections are refused until :meth:`resume`."""
        with self._lock:
            self._close()

    def resume(self) -> None:
        """Listen again on the same port."""
        with self._lock:
            if self._port is None:
                raise RuntimeError("not started")
            if self._server is None:
                self._listen(self._port)

    def _listen(self, port: int) -> None:
        server = make_server(
            self._host, port, self._app, threaded=True, request_handler=QuietHandler
        )
        self._server, self._port = server, server.server_port
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"{self._name}-{self._port}",
            daemon=True,
        )
        self._thread.start()

    def _close(self) -> None:
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is not None:
            server.shutdown()
            server.server_close()
        if thread is not None:
            thread.join()


class ListeningSandbox:
    """Base of a sandbox whose HTTP side is a :class:`Listener` (set as ``self._listener``).

    Subclasses implement :meth:`start` and :meth:`stop`, which also start and stop what runs
    beside the server (webhook senders, a scheduler daemon); ``pause``/``resume`` touch only
    the socket, so state, faults and queued deliveries survive a simulated outage. Used as a
    context manager, a sandbox starts on any free port unless already started, and stops.
    """

    _listener: Listener

    def start(self, port: int = 0) -> str:
        """Listen (``port`` 0: any free port), start background work; return the base URL."""
        raise NotImplementedError

    def stop(self) -> None:
        """Stop serving and background work; safe to call twice."""
        raise NotImplementedError

    def pause(self) -> None:
        """Close the listening socket: connections are refused until :meth:`resume`.

        Requests already being served finish; state, faults and deliveries are untouched.
        """
        self._listener.pause()

    def resume(self) -> None:
        """Listen again on the same port, with the same data."""
        self._listener.resume()

    def __enter__(self) -> Self:
        if not self._listener.started:
            self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


@contextlib.contextmanager
def stop_on_signals() -> Iterator[threading.Event]:
    """An event that SIGTERM and SIGINT set while inside; the old handlers are put back after.

    A sandbox served from the command line must stop cleanly (closing its socket and joining
    its threads) when a container runtime sends SIGTERM or a user presses Ctrl-C. Handlers can
    only be installed from the main thread; called from another thread, no handler is
    installed and the event is never set by a signal.
    """
    stop = threading.Event()
    previous: dict[signal.Signals, Any] = {}

    def handler(signum: int, frame: FrameType | None) -> None:
        stop.set()

    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGTERM, signal.SIGINT):
            previous[signum] = signal.signal(signum, handler)
    try:
        yield stop
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)
