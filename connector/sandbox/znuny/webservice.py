"""The web-service YAML the sandbox accepts: provider routes, requester invokers, retries.

A Znuny web service is one YAML document (facts §1) with a ``Provider`` (operations the
connector calls, routed by ``Transport.Config.RouteOperationMapping``) and a ``Requester``
(invokers that call the connector). The sandbox reads the same document an admin would import,
validated into pydantic models; what it cannot model (SOAP, XSLT or value mappings, ``Hash`` and
``Module`` conditions) is refused with a :class:`~connector.errors.ConfigError` naming the key
rather than silently ignored.

Conditions (``Event/Handler.pm`` ``_ConditionCheck``, facts §5): groups keyed ``'1'``,
``'2'``... each with ``Type`` and/or/xor over ``Fields``; a field check is ``String`` (equal),
``Regexp`` (search) or ``Array`` (any of); groups are joined by ``ConditionLinking``. Checks see
the ticket's TicketGet data (e.g. ``ChangeBy``), not the event data; for article events the
ticket merged with the article (see :mod:`~connector.sandbox.znuny.invoker`); a missing key
fails.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from connector.errors import ConfigError, ConfigIssue

Linking = Literal["and", "or", "xor"]
#: the stock GenericTicketConnectorREST routes plus the POST search route the connector's
#: web service adds (operation name -> (route, methods, operation type))
DEFAULT_ROUTES: dict[str, tuple[str, tuple[str, ...], str]] = {
    "SessionCreate": ("/Session", ("POST",), "Session::SessionCreate"),
    "TicketCreate": ("/Ticket", ("POST",), "Ticket::TicketCreate"),
    "TicketGet": ("/Ticket/:TicketID", ("GET",), "Ticket::TicketGet"),
    "TicketGetList": ("/TicketList", ("GET",), "Ticket::TicketGet"),
    "TicketSearch": ("/Ticket", ("GET",), "Ticket::TicketSearch"),
    "TicketSearchPOST": ("/TicketSearch", ("POST",), "Ticket::TicketSearch"),
    "TicketUpdate": ("/Ticket/:TicketID", ("PATCH",), "Ticket::TicketUpdate"),
    "TicketHistoryGet": ("/TicketHistory/:TicketID", ("GET",), "Ticket::TicketHistoryGet"),
}


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)


class FieldCheck(_Open):
    Type: Literal["String", "Regexp", "Array"]
    Match: str | int | list[str | int]


class ConditionGroup(_Open):
    Type: Linking = "and"
    Fields: dict[str, FieldCheck]


class EventCondition(_Open):
    ConditionLinking: Linking = "and"
    Condition: dict[str, ConditionGroup]


class EventSubscription(_Open):
    """One ``Events`` entry; without ``Asynchronous: '1'`` the invoker runs inline."""

    Event: str
    Asynchronous: bool = False
    Condition: EventCondition | None = None


class InvokerConfig(_Open):
    Type: Literal["Ticket::Generic"]
    Description: str = ""
    Events: list[EventSubscription] = Field(default_factory=list)
    MappingOutbound: dict[str, Any] | None = None
    MappingInbound: dict[str, Any] | None = None

    @field_validator("MappingOutbound", "MappingInbound")
    @classmethod
    def _keep_only(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        """Only "no mapping" or a Simple mapping that keeps everything is modelled."""
        if not value or not value.get("Type"):
            return value
        config = value.get("Config") or {}
        keeps = all(
            (config.get(k) or {}).get("MapType", "Keep") == "Keep"
            for k in ("KeyMapDefault", "ValueMapDefault")
        )
        if value["Type"] != "Simple" or not keeps or config.get("KeyMapExact"):
            raise ValueError("only a Simple mapping that keeps keys and values is modelled")
        return value


class ControllerMapping(_Open):
    Controller: str
    Command: str | None = None


class RestRequesterConfig(_Open):
    Host: str
    DefaultCommand: str = "POST"
    Timeout: float = 30.0
    ContentType: str = "JSON"
    Authentication: dict[str, Any] | None = None
    AdditionalHeaders: dict[str, str] | None = None
    InvokerControllerMapping: dict[str, ControllerMapping] = Field(default_factory=dict)


class RequesterTransport(_Open):
    Type: str = ""
    config: RestRequesterConfig | None = Field(default=None, alias="Config")


class RequestRetry(_Open):
    """``ErrorHandling`` module ``RequestRetry`` (``ErrorHandling/RequestRetry.pm``)."""

    Type: str
    ScheduleRetry: bool = True
    RetryIntervalStart: float = 60.0
    RetryIntervalFactor: float = 1.0
    RetryIntervalMax: float = 0.0
    RetryCountMax: int = 0
    RetryPeriodMax: float = 0.0
    InvokerFilter: list[str] | None = None
    ErrorStageFilter: list[str] | None = None
    ErrorMessageContentFilter: str = ""

    @field_validator("RetryIntervalFactor")
    @classmethod
    def _factor(cls, value: float) -> float:
        if value not in (1.0, 1.5, 2.0):
            raise ValueError("RetryIntervalFactor must be 1, 1.5 or 2")
        return value


class RequesterConfig(_Open):
    Transport: RequesterTransport = Field(default_factory=RequesterTransport)
    Invoker: dict[str, InvokerConfig] = Field(default_factory=dict)
    ErrorHandling: dict[str, RequestRetry] | None = None
    ErrorHandlingPriority: list[str] | None = None


class RouteMapping(_Open):
    Route: str
    RequestMethod: list[str] = Field(default_factory=list)


class OperationConfig(_Open):
    Type: str


class ProviderTransportConfig(_Open):
    RouteOperationMapping: dict[str, RouteMapping] = Field(default_factory=dict)


class ProviderTransport(_Open):
    Type: str = ""
    config: ProviderTransportConfig | None = Field(default=None, alias="Config")


class ProviderConfig(_Open):
    Operation: dict[str, OperationConfig] = Field(default_factory=dict)
    Transport: ProviderTransport = Field(default_factory=ProviderTransport)


class WebserviceConfig(_Open):
    """The whole document; ``Requester`` is active only with ``Transport.Type: HTTP::REST``."""

    Description: str = ""
    Provider: ProviderConfig | None = None
    Requester: RequesterConfig | None = None

    def routes(self) -> dict[str, tuple[str, tuple[str, ...], str]]:
        """Operation name -> (route, methods, type): the document's, else the defaults."""
        provider = self.Provider
        mapping = provider.Transport.config if provider else None
        if provider is None or mapping is None or not mapping.RouteOperationMapping:
            return dict(DEFAULT_ROUTES)
        routes = {}
        for name, route in mapping.RouteOperationMapping.items():
            operation = provider.Operation.get(name)
            kind = operation.Type if operation else ""
            routes[name] = (route.Route, tuple(m.upper() for m in route.RequestMethod), kind)
        return routes

    @property
    def rest_requester(self) -> RestRequesterConfig | None:
        requester = self.Requester
        if requester is None or requester.Transport.Type != "HTTP::REST":
            return None
        return requester.Transport.config


def parse_webservice(document: str | Mapping[str, Any], name: str) -> WebserviceConfig:
    """Validate a web-service document (YAML text or an already loaded mapping)."""
    where = f"web service {name}"
    raw = yaml.safe_load(document) if isinstance(document, str) else dict(document)
    if not isinstance(raw, dict):
        raise ConfigError([ConfigIssue(where, "", "expected a mapping at the top")])
    try:
        config = WebserviceConfig.model_validate(raw)
    except ValidationError as exc:
        issues = [
            ConfigIssue(where, ".".join(str(p) for p in error["loc"]), error["msg"])
            for error in exc.errors()
        ]
        raise ConfigError(issues) from None
    requester = config.Requester
    kind = requester.Transport.Type if requester else ""
    if kind not in ("", "HTTP::REST"):
        issue = ConfigIssue(where, "Requester.Transport.Type", f"{kind} is not modelled")
        raise ConfigError([issue])
    if kind and requester is not None and requester.Transport.config is None:
        issue = ConfigIssue(where, "Requester.Transport.Config", "Host and DefaultCommand needed")
        raise ConfigError([issue])
    return config


def condition_holds(condition: EventCondition | None, data: Mapping[str, Any]) -> bool:
    """Whether an event subscription's ``Condition`` accepts the ticket data."""
    if condition is None or not condition.Condition:
        return True
    results = [
        _link(group.Type, [_check(check, data.get(key)) for key, check in group.Fields.items()])
        for _, group in sorted(condition.Condition.items())
    ]
    return _link(condition.ConditionLinking, results)


def _check(check: FieldCheck, value: object) -> bool:
    if value is None:
        return False
    values = [str(v) for v in value] if isinstance(value, list) else [str(value)]
    for item in values:
        if check.Type == "String" and item == str(check.Match):
            return True
        if check.Type == "Regexp" and re.search(str(check.Match), item):
            return True
        matches = check.Match if isinstance(check.Match, list) else []
        if check.Type == "Array" and item in [str(m) for m in matches]:
            return True
    return False


def _link(linking: Linking, results: list[bool]) -> bool:
    if linking == "and":
        return all(results)
    if linking == "or":
        return any(results)
    return sum(results) == 1
