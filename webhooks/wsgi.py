"""Gunicorn entry point: ``gunicorn 'webhooks.wsgi:app'``.

Settings come from the environment (``DATABASE_URL``, ``BITRIX_SLA_CONFIG``, …; see
:mod:`connector.settings`). Each gunicorn worker imports this module and builds its own service
(database pool, adapters); migrations run under a lock, so concurrent boots are safe. An invalid
configuration raises here and gunicorn exits instead of serving.

Once the app is built, what booting made is frozen out of the cyclic collector's reach
(:func:`~webhooks.app.freeze_boot_heap`), as ``bitrix-sla serve`` does too.

Logging goes to stderr at ``$BITRIX_SLA_LOG_LEVEL`` (INFO when unset), in the format the other
commands use; gunicorn configures only its own loggers.

For ``/metrics`` to sum counters over workers, set ``PROMETHEUS_MULTIPROC_DIR`` to an empty
writable directory before gunicorn starts.
"""

from __future__ import annotations

from connector import logs
from webhooks.app import create_app, freeze_boot_heap

logs.configure(logs.level_from_environment())
app = create_app()
freeze_boot_heap()
