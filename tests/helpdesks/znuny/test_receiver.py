"""ZnunyReceiver: one line per event fixture, the derived delivery id, then authentication."""

from __future__ import annotations

import base64
import copy
import json
import logging

import pytest
from werkzeug.datastructures import Headers

from connector.errors import AuthError, PayloadError
from connector.helpdesks.base import IncomingEvent, WebhookReceiver
from connector.helpdesks.znuny import build
from connector.helpdesks.znuny.receiver import UnsupportedEventError, ZnunyReceiver

from . import HOOK_SECRET, HOOK_USER, basic, body_of, captured, fixture, znuny_instance

MANAGED = ("BitrixSLADueAt", "BitrixSLATier", "BitrixSLALevel", "BitrixSLATags")


def receiver(**kwargs: object) -> ZnunyReceiver:
    values: dict[str, object] = {"basic_user": HOOK_USER, "managed_fields": MANAGED}
    values.update(kwargs)
    return ZnunyReceiver("main", HOOK_SECRET, **values)  # type: ignore[arg-type]


def parsed(name: str) -> IncomingEvent:
    return receiver().parse(basic(), body_of(name))


def parsed_body(body: dict[str, object]) -> IncomingEvent:
    return receiver().parse(basic(), json.dumps(body).encode())


def refusal(name: str) -> str:
    with pytest.raises(PayloadError) as caught:
        parsed(name)
    return str(caught.value)


# --- one line per fixture --------------------------------------------------------------------


def test_ticket_create() -> None:
    assert (parsed("TicketCreate").ticket_id, parsed("TicketCreate").event) == ("2", "TicketCreate")


def test_ticket_priority_update() -> None:
    assert parsed("TicketPriorityUpdate").event == "TicketPriorityUpdate"


def test_override_field_update() -> None:
    event = parsed("TicketDynamicFieldUpdate_SLAOverride")
    assert event.event == "TicketDynamicFieldUpdate_SLAOverride"
    assert "/SLAOverride=" in event.delivery_id


def test_article_create() -> None:
    assert "/article-2/" in parsed("ArticleCreate").delivery_id


def test_unknown_event() -> None:
    assert "unsupported Znuny event 'TicketLockUpdate'" in refusal("unknown_event")


def test_missing_ticket() -> None:
    assert refusal("missing_ticket").startswith("missing Ticket")


# --- the captured request ----------------------------------------------------------------------


def test_captured_request_is_accepted_unchanged() -> None:
    request = captured()
    built = build(znuny_instance())[1]
    body = json.dumps(request["body"]).encode()
    built.authenticate(request["headers"], body)
    event = built.parse(request["headers"], body)
    assert (event.ticket_id, event.event) == ("2", "TicketCreate")
    assert event.delivery_id.startswith("TicketCreate/2/2026-11-28 04:00:07/")


def test_success_answer_is_200_with_an_object_body() -> None:
    hook: WebhookReceiver = receiver()
    assert hook.success == (200, {})


# --- refusals ----------------------------------------------------------------------------------


def test_own_field_event_is_refused_as_a_loop() -> None:
    body = fixture("TicketDynamicFieldUpdate_SLAOverride")
    body["Event"]["Event"] = "TicketDynamicFieldUpdate_BitrixSLATier"
    with pytest.raises(UnsupportedEventError, match="would loop"):
        parsed_body(body)


def test_unsupported_event_is_a_payload_error_with_status_422() -> None:
    with pytest.raises(PayloadError) as caught:
        parsed("unknown_event")
    assert caught.value.status == 422


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"not json", "not valid JSON"),
        (b"[1, 2]", "JSON object, not list"),
        (b'{"Ticket": {}}', "missing Event"),
    ],
)
def test_malformed_bodies_are_refused(body: bytes, message: str) -> None:
    with pytest.raises(PayloadError, match=message):
        receiver().parse(basic(), body)


def test_event_and_ticket_must_name_the_same_ticket() -> None:
    body = fixture("TicketPriorityUpdate")
    body["Event"]["TicketID"] = "3"
    with pytest.raises(PayloadError, match="differ"):
        parsed_body(body)


# --- the derived delivery id ------------------------------------------------------------------


def test_a_retry_of_the_same_state_has_the_same_delivery_id() -> None:
    assert parsed("TicketPriorityUpdate").delivery_id == parsed("TicketPriorityUpdate").delivery_id


def test_a_retry_rebuilt_after_a_later_change_is_a_new_delivery() -> None:
    later = fixture("TicketPriorityUpdate")
    later["Ticket"]["Changed"] = "2026-11-28 04:09:00"
    assert parsed_body(later).delivery_id != parsed("TicketPriorityUpdate").delivery_id


def test_two_changes_in_the_same_second_are_two_deliveries() -> None:
    other = fixture("TicketPriorityUpdate")
    other["Ticket"]["Priority"] = "4 high"
    assert parsed_body(other).delivery_id != parsed("TicketPriorityUpdate").delivery_id


def test_an_agent_field_change_in_the_same_second_is_a_new_delivery() -> None:
    other = fixture("TicketPriorityUpdate")
    other["Ticket"]["DynamicField_SupportScope"] = "out"
    assert parsed_body(other).delivery_id != parsed("TicketPriorityUpdate").delivery_id


def test_different_events_of_one_state_are_different_deliveries() -> None:
    assert parsed("TicketCreate").delivery_id != parsed("ArticleCreate").delivery_id


def test_delivery_id_stays_within_its_limit() -> None:
    body = copy.deepcopy(fixture("TicketDynamicFieldUpdate_SLAOverride"))
    body["Event"]["Event"] = "TicketDynamicFieldUpdate_" + "X" * 150
    body["Event"]["FieldName"] = "X" * 150
    body["Event"]["ArticleID"] = "9" * 60
    assert len(parsed_body(body).delivery_id) <= 200


def test_a_body_with_every_article_is_accepted_and_the_setting_named_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    hook = receiver()
    with caplog.at_level(logging.WARNING, logger="connector.helpdesks.znuny.receiver"):
        hook.parse(basic(), json.dumps(captured()["body"]).encode())  # has Ticket.Articles
        hook.parse(basic(), json.dumps(captured()["body"]).encode())
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "PrepareRequest::OmittedFields" in warnings[0]
    assert "'Articles;Article'" in warnings[0]


def test_a_body_without_articles_logs_nothing(caplog: pytest.LogCaptureFixture) -> None:
    body = copy.deepcopy(captured()["body"])
    del body["Ticket"]["Articles"], body["Ticket"]["Article"]  # OmittedFields set in Znuny
    with caplog.at_level(logging.WARNING, logger="connector.helpdesks.znuny.receiver"):
        assert receiver().parse(basic(), json.dumps(body).encode()).ticket_id == "2"
    assert caplog.records == []


# --- authentication ----------------------------------------------------------------------------


def auth_error(headers: dict[str, str], hook: ZnunyReceiver | None = None) -> str:
    with pytest.raises(AuthError) as caught:
        (hook or receiver()).authenticate(headers, b"{}")
    message = str(caught.value)
    assert HOOK_SECRET not in message
    return message


def test_captured_basic_credentials_are_accepted_from_werkzeug_headers() -> None:
    receiver().authenticate(Headers(captured()["headers"]), b"{}")


def test_missing_authorization_is_refused() -> None:
    assert "missing Authorization" in auth_error({"Content-Type": "application/json"})


def test_wrong_password_is_refused() -> None:
    assert "does not match" in auth_error(basic(password="hookpw2"))


def test_wrong_user_is_refused() -> None:
    assert "does not match" in auth_error(basic(user="someone"))


def test_other_scheme_is_refused() -> None:
    assert "not Basic" in auth_error({"Authorization": f"Bearer {HOOK_SECRET}"})


def test_undecodable_basic_credentials_are_refused() -> None:
    assert "not valid Basic" in auth_error({"Authorization": "Basic %%%not-base64"})


def test_password_with_a_colon_prefix_trick_is_refused() -> None:
    token = base64.b64encode(f"{HOOK_USER}:{HOOK_SECRET}:extra".encode()).decode()
    assert "does not match" in auth_error({"Authorization": f"Basic {token}"})


#: what Znuny sends for ``znuny-hook`` : 64 x ``f``, as the receiving server sees it: Perl's
#: ``'Basic ' . encode_base64("znuny-hook:fff…")`` (real perl output) wraps at 76 characters,
#: LWP sends the line break as a space, the server drops the trailing one
LONG_SECRET = "f" * 64
WRAPPED = (
    "Basic em51bnktaG9vazpmZmZmZmZmZmZmZmZmZmZmZmZmZmZmZmZmZmZmZmZmZmZmZmZmZmZmZmZmZmZm"
    " ZmZmZmZmZmZmZmZmZmZmZmZm"
)


def test_basic_credentials_wrapped_by_znuny_are_accepted() -> None:
    receiver_long = ZnunyReceiver("main", LONG_SECRET, basic_user=HOOK_USER)
    receiver_long.authenticate({"Authorization": WRAPPED}, b"{}")
    receiver_long.authenticate({"Authorization": WRAPPED.replace(" Zm", "\tZm")}, b"{}")


def test_wrapped_basic_credentials_are_still_checked() -> None:
    hook = ZnunyReceiver("main", LONG_SECRET[:-1] + "g", basic_user=HOOK_USER)
    assert "does not match" in auth_error({"Authorization": WRAPPED}, hook)
    junk = WRAPPED.replace(" Zm", " *Zm")  # only whitespace may sit inside the base64 text
    hook = ZnunyReceiver("main", LONG_SECRET, basic_user=HOOK_USER)
    assert "not valid Basic" in auth_error({"Authorization": junk}, hook)


def test_header_token_is_accepted_in_any_spelling() -> None:
    hook = receiver(auth="header", header_name="X-Bitrix-SLA-Token")
    hook.authenticate({"x-bitrix-sla-token": HOOK_SECRET}, b"{}")


def test_header_token_mode_ignores_basic_credentials() -> None:
    hook = receiver(auth="header")
    assert "missing X-Bitrix-SLA-Token" in auth_error(basic(), hook)


def test_wrong_header_token_is_refused() -> None:
    hook = receiver(auth="header")
    assert "does not match" in auth_error({"X-Bitrix-SLA-Token": "nope"}, hook)


def test_empty_secret_is_refused_at_construction() -> None:
    with pytest.raises(ValueError, match="must not be empty"):
        ZnunyReceiver("main", "")
