"""The shipped ``webservice.yml`` and ``dynamic_fields.yml``: they parse, cover the policy, import.

"Every value the policy can produce" is computed here from the mappings files themselves (not
with the code under test) and cross-checked by running the real decision over the
classification corpus and over every tier × override combination.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
from typing import Any

import pytest
import yaml

from connector.helpdesks.znuny import load_dynamic_fields, load_options
from connector.helpdesks.znuny.options import SHIPPED_DYNAMIC_FIELDS
from connector.helpdesks.znuny.receiver import HANDLED_EVENTS
from connector.helpdesks.znuny.setup import WEBSERVICE_FILE, render_webservice
from connector.mappings import load_mappings
from connector.policy.decision import TOPICS, Policy, decide
from connector.policy.ticket import Party, TicketSnapshot
from connector.sandbox.znuny import ZnunySandbox

from . import MAPPINGS, ROOT, znuny_instance

NOW = dt.datetime(2026, 11, 30, 9, 0, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def policy() -> Policy:
    return load_mappings(MAPPINGS).policy


@pytest.fixture(scope="module")
def possible() -> dict[str, set[str]]:
    fields = load_dynamic_fields(SHIPPED_DYNAMIC_FIELDS).dynamic_fields
    return {name: set(d.possible_values or {}) for name, d in fields.items()}


def mapping(name: str) -> Any:
    return yaml.safe_load((MAPPINGS / name).read_text(encoding="utf-8"))


def test_tier_dropdown_offers_every_tier(possible: dict[str, set[str]]) -> None:
    assert possible["BitrixSLATier"] == set(mapping("levels.yaml")["matrix"])


def test_level_dropdown_offers_every_level(possible: dict[str, set[str]]) -> None:
    assert possible["BitrixSLALevel"] == set(mapping("levels.yaml")["levels"])


def test_tags_multiselect_offers_every_tag_the_policy_can_produce(
    possible: dict[str, set[str]],
) -> None:
    levels = mapping("levels.yaml")
    prefix = mapping("overrides.yaml")["tag_prefix"]
    reasons = [
        reason["id"]
        for topic in mapping("classification.yaml")["topics"].values()
        for reason in topic.get("out_of_scope") or []
    ]
    expected = {
        *(f"{prefix}tier:{tier}" for tier in levels["matrix"]),
        *(f"{prefix}level:{level}" for level in levels["levels"]),
        f"{prefix}urgency:emergency",
        f"{prefix}urgency:standard",
        *(f"{prefix}topic:{topic}" for topic in TOPICS),
        f"{prefix}scope:in",
        f"{prefix}scope:out",
        *(f"{prefix}out:{reason}" for reason in reasons),
    }
    assert len(reasons) > 10
    assert possible["BitrixSLATags"] == expected


def test_override_dropdowns_offer_every_value_the_overrides_test(
    possible: dict[str, set[str]],
) -> None:
    rules = mapping("overrides.yaml")
    values = {
        rule["value"] for kind in ("urgency", "level") for rule in rules[kind] if "value" in rule
    }
    assert possible["SLAOverride"] == values
    assert possible["SLATopic"] == set(TOPICS)
    assert possible["SLAScope"] == {"in", "out"}


def test_every_decision_on_the_corpus_fits_the_fields(
    policy: Policy, possible: dict[str, set[str]]
) -> None:
    """Each corpus ticket, for every license type and every agent override, fits the fields."""
    lines = (ROOT / "tests" / "data" / "classification_corpus.jsonl").read_text("utf-8")
    licenses = ["partner", "commercial", "enterprise", "demo"]
    overrides = [None, *sorted(possible["SLAOverride"])]
    seen: set[str] = set()
    for index, line in enumerate(lines.splitlines()):
        case = json.loads(line)
        for license_type, override in itertools.product(licenses, overrides):
            ticket = TicketSnapshot(
                id=str(index),
                created_at=NOW,
                subject=case["subject"],
                body=case["body"],
                organization=Party(id="o", fields={"bitrix_license_type": license_type}),
                fields={"sla_override": override} if override else {},
            )
            decision = decide(ticket, policy, NOW)
            assert decision.tier in possible["BitrixSLATier"]
            assert decision.level in possible["BitrixSLALevel"]
            assert set(decision.tags) <= possible["BitrixSLATags"], case["id"]
            seen.update(decision.tags)
    assert {f"sla:level:{level}" for level in possible["BitrixSLALevel"]} <= seen


def test_the_sandbox_imports_the_shipped_files() -> None:
    sandbox = ZnunySandbox(webservice="BitrixSLA")
    created = sandbox.import_dynamic_fields(SHIPPED_DYNAMIC_FIELDS.read_text("utf-8"))
    assert created == list(
        yaml.safe_load(SHIPPED_DYNAMIC_FIELDS.read_text("utf-8"))["DynamicFields"]
    )
    sandbox.configure_webservice(WEBSERVICE_FILE.read_text(encoding="utf-8"))  # unchanged
    instance = znuny_instance(webhook_auth="header")
    sandbox.configure_webservice(render_webservice(instance, load_options(instance), secret="x"))


def test_webservice_has_the_post_search_route_and_the_invoker() -> None:
    document = yaml.safe_load(WEBSERVICE_FILE.read_text(encoding="utf-8"))
    routes = document["Provider"]["Transport"]["Config"]["RouteOperationMapping"]
    assert routes["TicketSearchPOST"] == {"RequestMethod": ["POST"], "Route": "/TicketSearch"}
    assert document["Provider"]["Operation"]["TicketSearchPOST"]["Type"] == "Ticket::TicketSearch"
    invoker = document["Requester"]["Invoker"]["BitrixSLAWebhook"]
    assert invoker["Type"] == "Ticket::Generic"
    assert document["Requester"]["ErrorHandling"]["RetryOnFailure"]["Type"] == "RequestRetry"


def test_webservice_subscribes_the_sla_events_asynchronously_with_the_loop_guard() -> None:
    document = yaml.safe_load(WEBSERVICE_FILE.read_text(encoding="utf-8"))
    events = document["Requester"]["Invoker"]["BitrixSLAWebhook"]["Events"]
    assert [event["Event"] for event in events] == [
        "TicketCreate",
        "ArticleCreate",
        "TicketCustomerUpdate",
        "TicketPriorityUpdate",
        "TicketQueueUpdate",
        "TicketTitleUpdate",
        "TicketStateUpdate",
        "TicketDynamicFieldUpdate_SLAOverride",
        "TicketDynamicFieldUpdate_SLATopic",
        "TicketDynamicFieldUpdate_SLAScope",
    ]
    for event in events:
        assert event["Asynchronous"] == "1"
        check = event["Condition"]["Condition"]["1"]["Fields"]["ChangeBy"]
        assert check == {"Type": "Regexp", "Match": r"^(?!2$)\d+$"}


def test_every_handled_event_is_subscribed_shipped_and_rendered() -> None:
    shipped = yaml.safe_load(WEBSERVICE_FILE.read_text(encoding="utf-8"))
    instance = znuny_instance(integration_user_id=17)
    rendered = yaml.safe_load(render_webservice(instance, load_options(instance)))
    for document in (shipped, rendered):
        events = document["Requester"]["Invoker"]["BitrixSLAWebhook"]["Events"]
        assert set(HANDLED_EVENTS) <= {event["Event"] for event in events}
    rendered_events = rendered["Requester"]["Invoker"]["BitrixSLAWebhook"]["Events"]
    for event in rendered_events:
        if event["Event"] in ("TicketTitleUpdate", "TicketStateUpdate"):
            assert event["Asynchronous"] == "1"
            assert event["Condition"]["Condition"]["1"]["Fields"] == {
                "ChangeBy": {"Type": "Regexp", "Match": r"^(?!17$)\d+$"}
            }


def test_rendered_webservice_fills_in_the_instance() -> None:
    instance = znuny_instance(
        integration_user_id=17,
        webhook_base_url="https://sla.example.ru/",
        override_fields={"sla_override": "Urgent"},
    )
    text = render_webservice(instance, load_options(instance))
    document = yaml.safe_load(text)
    config = document["Requester"]["Transport"]["Config"]
    assert config["Host"] == "https://sla.example.ru"
    assert config["InvokerControllerMapping"]["BitrixSLAWebhook"]["Controller"] == (
        "/webhooks/znuny/main"
    )
    assert config["Authentication"]["BasicAuthUser"] == "znuny-hook"
    assert "hookpw" not in text  # the secret stays a placeholder unless asked for
    events = document["Requester"]["Invoker"]["BitrixSLAWebhook"]["Events"]
    assert events[-1]["Event"] == "TicketDynamicFieldUpdate_Urgent"
    assert {e["Condition"]["Condition"]["1"]["Fields"]["ChangeBy"]["Match"] for e in events} == {
        r"^(?!17$)\d+$"
    }


def test_rendered_webservice_with_header_token() -> None:
    instance = znuny_instance(webhook_auth="header", webhook_header="X-SLA-Token")
    text = render_webservice(instance, load_options(instance), secret="hookpw")
    config = yaml.safe_load(text)["Requester"]["Transport"]["Config"]
    assert "Authentication" not in config
    assert config["AdditionalHeaders"] == {"X-SLA-Token": "hookpw"}


def test_loop_guard_regexp_skips_only_the_integration_agent() -> None:
    import re

    pattern = re.compile(r"^(?!2$)\d+$")
    assert [bool(pattern.search(user)) for user in ("1", "2", "12", "21", "22")] == [
        True,
        False,
        True,
        True,
        True,
    ]
