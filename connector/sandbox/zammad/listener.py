"""A WSGI application on a real socket, served from a daemon thread, that can be paused.

``pause`` closes the listening socket so new connections are refused (a Zammad restart, a dead
node behind a proxy); ``resume`` listens again on the same port. Requests being served finish.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Any

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication

_log = logging.getLogger(__name__)


class _QuietHandler(WSGIRequestHandler):
    """Logs requests at DEBUG instead of printing each one to stderr."""

    def log(self, type: str, message: str, *args: Any) -> None:
        _log.debug("%s: " + message, type, *args)


class Listener:
    """Serves ``app`` on ``host:port`` with werkzeug's threaded server.

    Args:
        app: the WSGI application.
        name: used in thread names.
    """

    def __init__(self, app: WSGIApplication, name: str) -> None:
        self._app = app
        self._name = name
        self._lock = threading.Lock()
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None
        self._host = "127.0.0.1"
        self._port: int | None = None

    @property
    def base_url(self) -> str:
        """``http://HOST:PORT``; only valid once started."""
        if self._port is None:
            raise RuntimeError(f"the {self._name} is not started")
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
            self._host, port, self._app, threaded=True, request_handler=_QuietHandler
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
