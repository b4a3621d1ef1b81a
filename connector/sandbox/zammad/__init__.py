"""A faithful fake Zammad (REST API, object manager, triggers, webhooks) on a real socket.

Use :class:`ZammadSandbox` in tests; :func:`run` backs ``bitrix-sla sandbox zammad`` and
``python -m connector.sandbox.zammad``. Behaviour follows ``docs/zammad-facts.md``; each module's
docstring names the facts it reproduces and the choices made where the facts are inferences.
"""

from __future__ import annotations

from connector.sandbox.zammad.demo import run, seed
from connector.sandbox.zammad.sandbox import ZammadSandbox
from connector.sandbox.zammad.server import (
    ADMIN_LOGIN,
    ADMIN_TOKEN,
    INTEGRATION_LOGIN,
    INTEGRATION_TOKEN,
)

__all__ = [
    "ADMIN_LOGIN",
    "ADMIN_TOKEN",
    "INTEGRATION_LOGIN",
    "INTEGRATION_TOKEN",
    "ZammadSandbox",
    "run",
    "seed",
]
