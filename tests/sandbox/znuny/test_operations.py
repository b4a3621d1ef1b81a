"""TicketUpdate and TicketCreate over REST: validation (HTTP 200 + Error), atomicity, ChangeBy."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from connector.sandbox.znuny import ZnunySandbox
from tests.clock import Clock
from tests.sandbox.znuny import ROOT, SLABOT, START, Api

TIERS = {"PossibleValues": {"gold": "Gold", "silver": "Silver"}, "PossibleNone": 1}
SCOPES = {"PossibleValues": {"email": "E-mail", "phone": "Phone", "chat": "Chat"}}


def stored(znuny: ZnunySandbox, ticket_id: int) -> dict[str, Any]:
    """The ticket as stored: its TicketGet hash without ``Age`` (which moves with the clock)."""
    return {k: v for k, v in znuny.ticket(ticket_id).items() if k != "Age"}


@pytest.fixture
def clock() -> Clock:
    return Clock(START)


@pytest.fixture
def znuny(clock: Clock) -> Iterator[ZnunySandbox]:
    with ZnunySandbox(clock=clock) as sandbox:
        sandbox.add_customer_user("alice", email="alice@acme.example", customer_id="acme")
        sandbox.add_dynamic_field("SLADueDate", "DateTime")
        sandbox.add_dynamic_field("SupportTier", "Dropdown", config=TIERS)
        sandbox.add_dynamic_field("SupportScope", "Multiselect", config=SCOPES)
        sandbox.add_dynamic_field("SLANote", "Text")
        sandbox.create_ticket(title="Printer on fire", customer_user="alice", body="Help")
        yield sandbox


@pytest.fixture
def api(znuny: ZnunySandbox) -> Iterator[Api]:
    client = Api(znuny.base_url)
    yield client
    client.session.close()


def test_update_writes_fields_and_answers_ids_as_strings(api: Api, znuny: ZnunySandbox) -> None:
    answer = api.patch(
        1,
        {
            "DynamicField": [
                {"Name": "SLADueDate", "Value": "2026-12-01 12:00:00"},
                {"Name": "SupportScope", "Value": ["email", "phone"]},
                {"Name": "SupportTier", "Value": "gold"},
            ]
        },
    )
    assert answer == {"TicketID": "1", "TicketNumber": "2026112810000011"}
    fields = {f["Name"]: f["Value"] for f in api.get_ticket(1, DynamicFields=1)["Ticket"][0][
        "DynamicField"
    ]}  # fmt: skip
    assert fields["SLADueDate"] == "2026-12-01 12:00:00"
    assert fields["SupportScope"] == ["email", "phone"]
    assert fields["SupportTier"] == "gold"
    assert len(znuny.writes(1)) == 1


@pytest.mark.parametrize(
    ("field", "expected"),
    [
        ({"Name": "NoSuchField", "Value": "x"}, "DynamicField->Name parameter is invalid!"),
        ({"Name": "SLADueDate", "Value": "2026-12-01T12:00:00Z"}, "Value parameter is invalid!"),
        ({"Name": "SLADueDate", "Value": "2026-02-30 12:00:00"}, "Value parameter is invalid!"),
        ({"Name": "SLADueDate", "Value": "2026-12-01"}, "Value parameter is invalid!"),
        ({"Name": "SupportTier", "Value": "platinum"}, "Value parameter is invalid!"),
        ({"Name": "SupportScope", "Value": ["email", "fax"]}, "Value parameter is invalid!"),
        ({"Name": "SLANote", "Value": ["a", "b"]}, "Value parameter is invalid!"),
    ],
)
def test_invalid_field_is_an_error_with_http_200_and_changes_nothing(
    api: Api, znuny: ZnunySandbox, clock: Clock, field: dict[str, Any], expected: str
) -> None:
    before = stored(znuny, 1)
    clock.advance(seconds=60)
    body = {
        "Ticket": {"Title": "Should not be applied", "Priority": "5 very high"},
        "DynamicField": [{"Name": "SLANote", "Value": "valid but not applied"}, field],
    }
    answer = api("PATCH", "/Ticket/1", json={**ROOT, **body})
    assert answer.status_code == 200
    error = answer.json()["Error"]
    assert error["ErrorCode"] == "TicketUpdate.InvalidParameter"
    assert error["ErrorMessage"].endswith(expected)
    assert stored(znuny, 1) == before
    assert znuny.writes() == []


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"DynamicField": [{"Name": "SLANote", "Value": None}]}, "TicketUpdate.MissingParameter"),
        ({"DynamicField": [{"Value": "x"}]}, "TicketUpdate.MissingParameter"),
        ({"Ticket": {"Queue": "No such queue"}}, "TicketUpdate.InvalidParameter"),
        ({"Ticket": {"State": "solved"}}, "TicketUpdate.InvalidParameter"),
        ({"Article": {"Subject": "no body"}}, "TicketUpdate.MissingParameter"),
    ],
)
def test_other_refusals(api: Api, znuny: ZnunySandbox, body: dict[str, Any], code: str) -> None:
    before = stored(znuny, 1)
    answer = api("PATCH", "/Ticket/1", json={**ROOT, **body})
    assert (answer.status_code, answer.json()["Error"]["ErrorCode"]) == (200, code)
    assert stored(znuny, 1) == before


def test_update_of_a_missing_ticket_is_access_denied(api: Api) -> None:
    answer = api("PATCH", "/Ticket/42", json={**ROOT, "Ticket": {"Title": "x"}})
    assert answer.json()["Error"]["ErrorCode"] == "TicketUpdate.AccessDenied"


def test_every_write_sets_change_by_and_changed(
    api: Api, znuny: ZnunySandbox, clock: Clock
) -> None:
    clock.advance(seconds=90)
    api.patch(1, {"DynamicField": {"Name": "SupportTier", "Value": "gold"}}, auth=SLABOT)
    ticket = znuny.ticket(1)
    assert (ticket["ChangeBy"], ticket["Changed"]) == (2, "2026-11-28 04:01:37")
    assert ticket["CreateBy"] == 1


def test_a_customer_article_leaves_change_by_and_changed_alone(
    api: Api, znuny: ZnunySandbox, clock: Clock
) -> None:
    """``ArticleCreate`` inserts article and history rows only (``MIMEBase.pm``): after the
    integration agent's write, a customer's follow-up leaves ``ChangeBy`` at that agent."""
    clock.advance(seconds=30)
    api.patch(1, {"DynamicField": {"Name": "SupportTier", "Value": "gold"}}, auth=SLABOT)
    before = stored(znuny, 1)
    clock.advance(seconds=30)
    znuny.add_article(1, body="any news?", sender_type="customer", user_id=1)
    after = stored(znuny, 1)
    assert (after["ChangeBy"], after["Changed"]) == (2, before["Changed"])
    assert after["UnlockTimeout"] == before["UnlockTimeout"] == 0


def test_an_agent_article_resets_the_unlock_timeout_and_sets_change_by(
    znuny: ZnunySandbox, clock: Clock
) -> None:
    """``ArticleCreate`` calls ``TicketUnlockTimeoutUpdate`` for an agent article, and for a
    customer article answering one; that update sets ``ChangeBy`` and ``Changed``."""
    clock.advance(seconds=30)
    znuny.add_article(1, body="We are on it.", sender_type="agent", user_id=2)
    ticket = znuny.ticket(1)
    assert (ticket["ChangeBy"], ticket["Changed"]) == (2, "2026-11-28 04:00:37")
    assert ticket["UnlockTimeout"] == int(clock.now.timestamp())
    clock.advance(seconds=30)
    znuny.add_article(1, body="Thanks, still broken.", sender_type="customer", user_id=1)
    ticket = znuny.ticket(1)
    assert (ticket["ChangeBy"], ticket["Changed"]) == (1, "2026-11-28 04:01:07")


def test_a_malformed_ticket_id_is_wrong_structure(api: Api) -> None:
    for ticket_id in ("0", "abc", "01"):
        answer = api("GET", f"/Ticket/{ticket_id}", params=ROOT).json()
        assert answer["Error"] == {
            "ErrorCode": "TicketGet.WrongStructure",
            "ErrorMessage": "TicketGet: Invalid ticket ID parameter(s) found!",
        }


def test_writing_the_same_value_changes_nothing(
    api: Api, znuny: ZnunySandbox, clock: Clock
) -> None:
    api.patch(1, {"DynamicField": {"Name": "SupportTier", "Value": "gold"}})
    before = stored(znuny, 1)
    clock.advance(seconds=60)
    api.patch(1, {"DynamicField": {"Name": "SupportTier", "Value": "gold"}}, auth=SLABOT)
    assert stored(znuny, 1) == before


def test_empty_string_clears_a_field(api: Api, znuny: ZnunySandbox) -> None:
    api.patch(1, {"DynamicField": [{"Name": "SLADueDate", "Value": "2026-12-01 12:00:00"}]})
    api.patch(1, {"DynamicField": [{"Name": "SLADueDate", "Value": ""}]})
    assert znuny.ticket(1)["DynamicField_SLADueDate"] is None


def test_ticket_attributes_and_article(api: Api, znuny: ZnunySandbox) -> None:
    znuny.add_queue("VIP")
    answer = api.patch(
        1,
        {
            "Ticket": {"Queue": "VIP", "PriorityID": "4", "State": "open"},
            "Article": {"Subject": "Note", "Body": "Moved", "ContentType": "text/plain"},
        },
    )
    assert answer["ArticleID"] == "2"
    ticket = api.get_ticket(1, AllArticles=1, ArticleOrder="DESC")["Ticket"][0]
    assert (ticket["Queue"], ticket["Priority"], ticket["StateType"]) == ("VIP", "4 high", "open")
    assert [a["SenderType"] for a in ticket["Article"]] == ["agent", "customer"]


def test_ticket_create_over_rest(api: Api, znuny: ZnunySandbox) -> None:
    body = {
        "Ticket": {
            "Title": "Site down",
            "Queue": "Raw",
            "State": "new",
            "Priority": "3 normal",
            "CustomerUser": "alice",
        },
        "Article": {"Subject": "Site down", "Body": "500 everywhere", "ContentType": "text/plain"},
        "DynamicField": [{"Name": "SupportTier", "Value": "silver"}],
    }
    answer = api("POST", "/Ticket", json={**ROOT, **body}).json()
    assert answer == {"TicketID": "2", "TicketNumber": "2026112810000021", "ArticleID": "2"}
    created = znuny.ticket(2)
    assert (created["CustomerID"], created["DynamicField_SupportTier"]) == ("acme", "silver")
    missing = api("POST", "/Ticket", json={**ROOT, "Ticket": {"Title": "x"}}).json()
    assert missing["Error"]["ErrorCode"] == "TicketCreate.MissingParameter"
    assert znuny.ticket_ids() == [1, 2]


def test_python_api_refusals_raise_value_error(znuny: ZnunySandbox) -> None:
    with pytest.raises(ValueError, match="InvalidParameter"):
        znuny.update_ticket(1, dynamic_fields={"SupportTier": "platinum"})
    with pytest.raises(ValueError, match="already exists"):
        znuny.add_dynamic_field("SupportTier", "Text")
