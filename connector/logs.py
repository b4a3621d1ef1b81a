"""Log set-up shared by the long-running commands and the gunicorn entry point.

``serve`` and ``worker`` configure logging in their own process; under ``bitrix-sla web`` the
app runs in gunicorn's worker processes, which configure nothing themselves, so
``webhooks.wsgi`` does it there from ``BITRIX_SLA_LOG_LEVEL`` (which ``web --log-level`` sets).
Without it only warnings would reach stderr, and without timestamps: a refused webhook
(bad signature, unknown instance) would leave no trace.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping

from werkzeug.serving import WSGIRequestHandler

from connector.errors import ConfigError, ConfigIssue

LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
LEVEL_VARIABLE = "BITRIX_SLA_LOG_LEVEL"
FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
access = logging.getLogger("connector.access")


class AccessLog(WSGIRequestHandler):
    """Werkzeug's request handler (``serve``'s edge, the worker's status server) with its
    access line at DEBUG and in plain text.

    Werkzeug logs every request at INFO and colours the status with terminal escapes whatever
    the output is, which in a file or the journal shows up as ``[31m[1m`` noise; and a probe
    every few seconds, or a line per accepted webhook, would drown what the log is for. The
    app logs every refusal itself, and every accepted webhook is stored in ``events``.
    (``web`` keeps gunicorn's access log, on stdout, apart from this log.)
    """

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        access.debug('%s "%s" %s %s', self.address_string(), self.requestline, code, size)


def configure(level: str) -> None:
    """Log ``level`` and above to stderr in the one format (a no-op if logging is set up)."""
    logging.basicConfig(level=level, format=FORMAT)


def level_from_environment(environ: Mapping[str, str] | None = None) -> str:
    """``$BITRIX_SLA_LOG_LEVEL`` (any case), INFO when unset.

    Raises:
        ConfigError: the variable names no level.
    """
    env = os.environ if environ is None else environ
    value = env.get(LEVEL_VARIABLE, "").strip().upper() or "INFO"
    if value not in LEVELS:
        reason = f"{value!r} is not a log level; use one of {', '.join(LEVELS)}"
        raise ConfigError([ConfigIssue("environment", LEVEL_VARIABLE, reason)])
    return value
