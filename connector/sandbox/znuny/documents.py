"""Web-service YAML documents for the sandbox, in the format Znuny imports (facts §1).

:func:`webservice_yaml` writes what an admin would import to make Znuny call the connector: the
stock ticket connector routes plus a POST search route on the provider side, and on the
requester side one ``Ticket::Generic`` invoker subscribed to ticket events, guarded by a
``ChangeBy`` condition so the connector's own agent does not trigger it (facts §5), with
``RequestRetry`` error handling.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import unquote, urlsplit

import yaml

from connector.sandbox.znuny.webservice import DEFAULT_ROUTES

DEFAULT_EVENTS = (
    "TicketCreate",
    "ArticleCreate",
    "TicketQueueUpdate",
    "TicketPriorityUpdate",
    "TicketCustomerUpdate",
    "TicketStateUpdate",
    "TicketTitleUpdate",
)


def webservice_yaml(
    url: str,
    *,
    invoker: str = "SLAWebhook",
    events: Iterable[str] = DEFAULT_EVENTS,
    asynchronous: bool = True,
    skip_user_id: int | None = 2,
    basic_auth: tuple[str, str] | None = None,
    headers: Mapping[str, str] | None = None,
    retry: Mapping[str, Any] | bool = True,
    command: str = "POST",
) -> str:
    """A complete web-service document whose requester POSTs every event to ``url``.

    Args:
        url: the connector's webhook URL; ``user:password@`` in it becomes BasicAuth.
        invoker: the invoker's name.
        events: the events to subscribe (e.g. ``TicketDynamicFieldUpdate_SLAOverride``).
        asynchronous: ``Asynchronous: '1'`` (sent by the daemon) or ``'0'`` (inline).
        skip_user_id: a ``ChangeBy`` Regexp condition ignoring changes by this UserID;
            None subscribes without a condition.
        basic_auth: (user, password) for ``Authentication: BasicAuth``.
        headers: ``AdditionalHeaders`` (e.g. a shared token).
        retry: True for the facts' ``RequestRetry`` (10 s, x2, max 60 s, 3 retries, 600 s),
            a mapping to override its keys, False for no ``ErrorHandling`` at all.
        command: the HTTP method of the invoker's controller mapping.
    """
    parts = urlsplit(url)
    if parts.username is not None and basic_auth is None:
        basic_auth = (unquote(parts.username), unquote(parts.password or ""))
    host = f"{parts.scheme}://{parts.netloc.rsplit('@', 1)[-1]}"
    controller = parts.path or "/"
    if parts.query:
        controller += f"?{parts.query}"
    condition = None
    if skip_user_id is not None:
        match = f"^(?!{skip_user_id}$)\\d+$"
        condition = {
            "ConditionLinking": "and",
            "Condition": {
                "1": {"Type": "and", "Fields": {"ChangeBy": {"Type": "Regexp", "Match": match}}}
            },
        }
    subscriptions = []
    for event in events:
        entry: dict[str, Any] = {"Event": event, "Asynchronous": "1" if asynchronous else "0"}
        if condition is not None:
            entry["Condition"] = condition
        subscriptions.append(entry)
    config: dict[str, Any] = {
        "Host": host,
        "DefaultCommand": command,
        "Timeout": "30",
        "ContentType": "JSON",
        "InvokerControllerMapping": {invoker: {"Controller": controller, "Command": command}},
        "SSL": {"UseSSL": "No"},
        "Proxy": {"UseProxy": "No"},
        "X509": {"UseX509": "No"},
    }
    if basic_auth is not None:
        config["Authentication"] = {
            "AuthType": "BasicAuth",
            "BasicAuthUser": basic_auth[0],
            "BasicAuthPassword": basic_auth[1],
        }
    if headers:
        config["AdditionalHeaders"] = dict(headers)
    requester: dict[str, Any] = {
        "Transport": {"Type": "HTTP::REST", "Config": config},
        "Invoker": {
            invoker: {
                "Type": "Ticket::Generic",
                "Description": "Tell the Bitrix SLA connector that a ticket changed.",
                "Events": subscriptions,
                "MappingInbound": {},
                "MappingOutbound": {},
                "GetAllArticleAttachments": "0",
            }
        },
    }
    if retry is not False:
        module = {
            "Type": "RequestRetry",
            "ScheduleRetry": "1",
            "RetryIntervalStart": "10",
            "RetryIntervalFactor": "2",
            "RetryIntervalMax": "60",
            "RetryCountMax": "3",
            "RetryPeriodMax": "600",
            "StopAfterMatch": "backend",
            "InvokerFilter": [],
            "ErrorStageFilter": [],
            "ErrorMessageContentFilter": "",
        }
        if isinstance(retry, Mapping):
            module.update({k: v if isinstance(v, list) else str(v) for k, v in retry.items()})
        requester["ErrorHandling"] = {"RetryOnFailure": module}
        requester["ErrorHandlingPriority"] = ["RetryOnFailure"]
    document = {
        "Description": "Bitrix SLA connector",
        "Debugger": {"DebugThreshold": "debug", "TestMode": "0"},
        "RemoteSystem": "",
        "Provider": _provider(),
        "Requester": requester,
    }
    return yaml.safe_dump(document, sort_keys=False, allow_unicode=True)


def _provider() -> dict[str, Any]:
    operations = {name: {"Type": kind} for name, (_, _, kind) in DEFAULT_ROUTES.items()}
    routes = {
        name: {"Route": route, "RequestMethod": list(methods)}
        for name, (route, methods, _) in DEFAULT_ROUTES.items()
    }
    return {
        "Operation": operations,
        "Transport": {
            "Type": "HTTP::REST",
            "Config": {"KeepAlive": "", "MaxLength": "100000000", "RouteOperationMapping": routes},
        },
    }
