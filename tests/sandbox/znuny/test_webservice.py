"""Web-service YAML: what is accepted, what is refused by name, conditions, provider routes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from connector.errors import ConfigError
from connector.sandbox.fake_helpdesk import wait_until
from connector.sandbox.znuny import RetryPolicy, ZnunySandbox, webservice_yaml
from connector.sandbox.znuny.webservice import EventCondition, condition_holds, parse_webservice
from tests.sandbox.znuny import ROOT, SLABOT, Api, Sink

#: the facts doc's requester example, as an admin would import it
FACTS_EXAMPLE = """
Requester:
  Transport:
    Type: HTTP::REST
    Config:
      Host: http://127.0.0.1:18080
      DefaultCommand: POST
      Timeout: '30'
      ContentType: JSON
      Authentication: {AuthType: BasicAuth, BasicAuthUser: u, BasicAuthPassword: p}
      AdditionalHeaders: {X-Webhook-Source: znuny}
      SSL: {UseSSL: 'No'}
      SSLNoHostnameVerification: ''
      X509: {UseX509: 'No'}
      Proxy: {UseProxy: 'No'}
      InvokerControllerMapping:
        TicketEventAsync: {Controller: /hook/:Event.Event, Command: POST}
  Invoker:
    TicketEventAsync:
      Type: Ticket::Generic
      Events:
      - {Event: TicketCreate, Asynchronous: '1'}
      - Event: TicketDynamicFieldUpdate_SupportTier
        Asynchronous: '1'
        Condition:
          ConditionLinking: and
          Condition:
            '1': {Type: and, Fields: {ChangeBy: {Type: Regexp, Match: '^(?!2$)\\d+$'}}}
      MappingInbound: {}
      MappingOutbound: {}
      GetAllArticleAttachments: '0'
  ErrorHandling:
    RetryOnFailure: {Type: RequestRetry, ScheduleRetry: '1', RetryIntervalStart: '10',
                     RetryIntervalFactor: '2', RetryIntervalMax: '60', RetryCountMax: '3',
                     RetryPeriodMax: '600', StopAfterMatch: backend, InvokerFilter: [],
                     ErrorStageFilter: [], ErrorMessageContentFilter: ''}
  ErrorHandlingPriority: [RetryOnFailure]
"""


def test_the_facts_example_is_accepted() -> None:
    config = parse_webservice(FACTS_EXAMPLE, "GenericTicketConnectorREST")
    assert config.Requester is not None
    invoker = config.Requester.Invoker["TicketEventAsync"]
    assert [e.Event for e in invoker.Events] == [
        "TicketCreate",
        "TicketDynamicFieldUpdate_SupportTier",
    ]
    assert invoker.Events[0].Asynchronous is True
    retry = config.Requester.ErrorHandling
    assert retry is not None
    assert (retry["RetryOnFailure"].RetryIntervalStart, retry["RetryOnFailure"].RetryCountMax) == (
        10,
        3,
    )
    assert config.routes()["TicketSearchPOST"] == (
        "/TicketSearch",
        ("POST",),
        "Ticket::TicketSearch",
    )


def test_the_generated_document_round_trips() -> None:
    document = webservice_yaml("http://u:p@127.0.0.1:8080/webhooks/znuny/main", skip_user_id=2)
    config = parse_webservice(document, "X")
    transport = config.rest_requester
    assert transport is not None
    assert transport.Host == "http://127.0.0.1:8080"
    assert transport.Authentication == {
        "AuthType": "BasicAuth",
        "BasicAuthUser": "u",
        "BasicAuthPassword": "p",
    }
    assert transport.InvokerControllerMapping["SLAWebhook"].Controller == "/webhooks/znuny/main"


def _with(path: list[str], value: Any) -> str:
    document = yaml.safe_load(FACTS_EXAMPLE)
    target = document
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return str(yaml.safe_dump(document))


@pytest.mark.parametrize(
    ("path", "value", "named"),
    [
        (["Requester", "Transport", "Type"], "HTTP::SOAP", "Requester.Transport.Type"),
        (
            ["Requester", "ErrorHandling", "RetryOnFailure", "RetryIntervalFactor"],
            "3",
            "Requester.ErrorHandling.RetryOnFailure.RetryIntervalFactor",
        ),
        (
            ["Requester", "Invoker", "TicketEventAsync", "MappingOutbound"],
            {"Type": "XSLT", "Config": {}},
            "Requester.Invoker.TicketEventAsync.MappingOutbound",
        ),
        (
            ["Requester", "Invoker", "TicketEventAsync", "Events"],
            [
                {
                    "Event": "X",
                    "Condition": {
                        "Condition": {"1": {"Fields": {"A": {"Type": "Hash", "Match": "x"}}}}
                    },
                }
            ],
            "Requester.Invoker.TicketEventAsync.Events.0.Condition",
        ),
    ],
)
def test_what_cannot_be_modelled_is_refused_by_name(
    path: list[str], value: Any, named: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_webservice(_with(path, value), "GenericTicketConnectorREST")
    assert named in str(caught.value)


def test_jwt_authentication_is_refused_when_configured() -> None:
    document = _with(["Requester", "Transport", "Config", "Authentication"], {"AuthType": "JWT"})
    with pytest.raises(ConfigError, match="JWT is not modelled"):
        ZnunySandbox().configure_webservice(document)


def condition(linking: str, *groups: tuple[str, dict[str, dict[str, Any]]]) -> EventCondition:
    return EventCondition.model_validate(
        {
            "ConditionLinking": linking,
            "Condition": {str(n): {"Type": t, "Fields": f} for n, (t, f) in enumerate(groups, 1)},
        }
    )


CHANGE_BY_NOT_2 = {"ChangeBy": {"Type": "Regexp", "Match": r"^(?!2$)\d+$"}}


@pytest.mark.parametrize(
    ("cond", "data", "holds"),
    [
        (condition("and", ("and", CHANGE_BY_NOT_2)), {"ChangeBy": 1}, True),
        (condition("and", ("and", CHANGE_BY_NOT_2)), {"ChangeBy": 2}, False),
        (condition("and", ("and", CHANGE_BY_NOT_2)), {"ChangeBy": 12}, True),
        (condition("and", ("and", CHANGE_BY_NOT_2)), {}, False),
        (
            condition("and", ("and", {"Queue": {"Type": "String", "Match": "VIP"}})),
            {"Queue": "VIP"},
            True,
        ),
        (
            condition("and", ("and", {"Queue": {"Type": "String", "Match": "VIP"}})),
            {"Queue": "VIPs"},
            False,
        ),
        (
            condition("and", ("and", {"Queue": {"Type": "Array", "Match": ["A", "VIP"]}})),
            {"Queue": "VIP"},
            True,
        ),
        (
            condition(
                "and", ("or", {"Queue": {"Type": "String", "Match": "VIP"}, **CHANGE_BY_NOT_2})
            ),
            {"Queue": "Raw", "ChangeBy": 1},
            True,
        ),
        (
            condition(
                "or",
                ("and", {"Queue": {"Type": "String", "Match": "VIP"}}),
                ("and", CHANGE_BY_NOT_2),
            ),
            {"Queue": "Raw", "ChangeBy": 2},
            False,
        ),
        (
            condition(
                "xor",
                ("and", {"Queue": {"Type": "String", "Match": "VIP"}}),
                ("and", CHANGE_BY_NOT_2),
            ),
            {"Queue": "VIP", "ChangeBy": 1},
            False,
        ),
        (None, {}, True),
    ],
)
def test_condition_checks(cond: EventCondition | None, data: dict[str, Any], holds: bool) -> None:
    assert condition_holds(cond, data) is holds


def test_provider_routes_come_from_the_document() -> None:
    document = """
Provider:
  Operation:
    Get: {Type: Ticket::TicketGet}
  Transport:
    Type: HTTP::REST
    Config:
      RouteOperationMapping:
        Get: {Route: /Tickets/:TicketID, RequestMethod: [GET]}
"""
    with ZnunySandbox() as znuny:
        znuny.create_ticket(title="t", customer_user="c@shop.example", body="b")
        znuny.configure_webservice(document)
        moved = requests.get(f"{znuny.base_url}/Tickets/1", params=ROOT, timeout=5)
        assert moved.json()["Ticket"][0]["TicketID"] == 1
        stock = requests.get(f"{znuny.base_url}/Ticket/1", params=ROOT, timeout=5)
        assert stock.status_code == 500


SHIPPED = Path(__file__).resolve().parents[3] / "connector" / "helpdesks" / "znuny"


def test_the_connectors_shipped_files_work_in_the_sandbox() -> None:
    """The adapter's importable web service and field definitions, loaded as Znuny would."""
    if not (SHIPPED / "webservice.yml").exists():
        pytest.skip("the Znuny adapter ships no webservice.yml yet")
    sink = Sink()
    root = sink.url.removesuffix("/znuny/hook")
    document = yaml.safe_load((SHIPPED / "webservice.yml").read_text(encoding="utf-8"))
    document["Requester"]["Transport"]["Config"]["Host"] = root
    with ZnunySandbox(retry=RetryPolicy(start=0.05)) as znuny:
        try:
            created = znuny.import_dynamic_fields(
                (SHIPPED / "dynamic_fields.yml").read_text(encoding="utf-8")
            )
            assert "SLAOverride" in created
            znuny.configure_webservice(document)
            ticket = znuny.create_ticket(title="t", customer_user="c@shop.example", body="b")
            wait_until(lambda: len(sink.received) == 3)
            assert sorted(sink.events()) == [
                "ArticleCreate",
                "TicketCreate",
                "TicketCustomerUpdate",
            ]
            api = Api(znuny.base_url)
            override = {"DynamicField": [{"Name": "SLAOverride", "Value": "consulting"}]}
            api.patch(ticket, override, auth=SLABOT)
            assert znuny.webhooks_pending == 0
            api.patch(ticket, {"DynamicField": [{"Name": "SLAOverride", "Value": "emergency"}]})
            wait_until(lambda: len(sink.received) == 4)
            assert sink.received[-1].event == "TicketDynamicFieldUpdate_SLAOverride"
            assert sink.received[-1].path == "/webhooks/znuny/main"
        finally:
            sink.close()


def test_an_event_without_asynchronous_runs_inline() -> None:
    document = _with(["Requester", "Invoker", "TicketEventAsync", "Events"], [{"Event": "X"}])
    config = parse_webservice(document, "GenericTicketConnectorREST")
    assert config.Requester is not None
    assert config.Requester.Invoker["TicketEventAsync"].Events[0].Asynchronous is False
