"""A faithful fake Znuny 7 (GenericInterface provider and requester) on a real socket.

See :mod:`connector.sandbox.znuny.server` for :class:`ZnunySandbox` and
``docs/znuny-facts.md`` for the behaviour it reproduces.
"""

from __future__ import annotations

from connector.sandbox.znuny.cli import run
from connector.sandbox.znuny.documents import webservice_yaml
from connector.sandbox.znuny.invoker import RetryPolicy
from connector.sandbox.znuny.scheduler import Delivery
from connector.sandbox.znuny.server import ZnunySandbox

__all__ = ["Delivery", "RetryPolicy", "ZnunySandbox", "run", "webservice_yaml"]
