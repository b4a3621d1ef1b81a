"""Znuny's JSON shapes and times: the captured request parses unchanged; OTRSTimeZone counts."""

from __future__ import annotations

import datetime as dt
import zoneinfo

import pytest
from pydantic import ValidationError

from connector.helpdesks.znuny import load_dynamic_fields
from connector.helpdesks.znuny.options import SHIPPED_DYNAMIC_FIELDS
from connector.helpdesks.znuny.payload import (
    ErrorBody,
    InvokerRequest,
    TicketGetAnswer,
    TicketSearchAnswer,
    format_time,
    from_iso,
    iso_utc,
    parse_time,
)

from . import captured, fixture

MOSCOW = zoneinfo.ZoneInfo("Europe/Moscow")
BERLIN = zoneinfo.ZoneInfo("Europe/Berlin")


def test_captured_request_parses_unchanged() -> None:
    request = InvokerRequest.model_validate(captured()["body"])
    assert (request.event.event, request.event.ticket_id) == ("TicketCreate", "2")
    assert (request.ticket.ticket_id, request.ticket.changed) == ("2", "2026-11-28 04:00:07")


def test_flat_dynamic_field_keys_become_a_dict_by_name() -> None:
    fields = InvokerRequest.model_validate(captured()["body"]).ticket.dynamic_fields()
    assert fields["SLADueDate"] is None
    assert set(fields) >= {"SLADueDate", "SupportTier", "SupportScope", "SLAScopeTags"}


def test_ticket_id_is_a_string_in_update_events() -> None:
    request = InvokerRequest.model_validate(fixture("TicketPriorityUpdate"))
    assert request.event.ticket_id == "2"
    assert request.ticket.attribute("Priority") == "5 very high"


def test_dynamic_field_event_carries_field_and_value() -> None:
    event = InvokerRequest.model_validate(fixture("TicketDynamicFieldUpdate_SLAOverride")).event
    assert (event.field_name, event.value) == ("SLAOverride", "emergency")


def test_article_event_carries_article_id() -> None:
    assert InvokerRequest.model_validate(fixture("ArticleCreate")).event.article_id == "2"


def test_missing_ticket_block_is_refused() -> None:
    with pytest.raises(ValidationError, match="Ticket"):
        InvokerRequest.model_validate(fixture("missing_ticket"))


def test_boolean_ticket_id_is_refused() -> None:
    body = fixture("TicketCreate")
    body["Ticket"]["TicketID"] = True
    with pytest.raises(ValidationError):
        InvokerRequest.model_validate(body)


def test_changed_must_be_a_znuny_time() -> None:
    body = fixture("TicketCreate")
    body["Ticket"]["Changed"] = "2026-11-28T04:00:07Z"
    with pytest.raises(ValidationError, match="Changed"):
        InvokerRequest.model_validate(body)


def test_time_in_otrs_time_zone_converts_to_utc() -> None:
    assert iso_utc("2026-11-28 07:00:07", MOSCOW) == "2026-11-28T04:00:07Z"
    assert parse_time("2026-11-28 04:00:07", dt.UTC) == dt.datetime(
        2026, 11, 28, 4, 0, 7, tzinfo=dt.UTC
    )


def test_utc_due_time_converts_to_otrs_time_zone() -> None:
    assert from_iso("2026-07-01T10:00:00Z", BERLIN) == "2026-07-01 12:00:00"  # summer time
    assert from_iso("2026-12-01T10:00:00+00:00", BERLIN) == "2026-12-01 11:00:00"


def test_round_trip_keeps_the_instant() -> None:
    moment = dt.datetime(2026, 3, 29, 0, 30, tzinfo=dt.UTC)  # the night Berlin changes clocks
    assert parse_time(format_time(moment, BERLIN), BERLIN) == moment


def test_a_wall_time_shown_twice_is_the_later_instant() -> None:
    """Znuny's Perl ``DateTime`` takes the latest UTC time for an ambiguous local time."""
    moment = parse_time("2026-10-25 02:30:00", BERLIN)  # CEST, then again as CET
    assert moment.astimezone(dt.UTC) == dt.datetime(2026, 10, 25, 1, 30, tzinfo=dt.UTC)
    assert format_time(moment, BERLIN) == "2026-10-25 02:30:00"


def test_a_skipped_wall_time_keeps_the_offset_before_the_change() -> None:
    moment = parse_time("2026-03-29 02:30:00", BERLIN)  # the clocks jump from 02:00 to 03:00
    assert moment.astimezone(dt.UTC) == dt.datetime(2026, 3, 29, 1, 30, tzinfo=dt.UTC)


def test_null_or_odd_error_fields_read_as_text() -> None:
    empty = ErrorBody.model_validate({"ErrorCode": None, "ErrorMessage": None})
    assert (empty.code, empty.message, empty.permanent) == ("", "", False)
    odd = ErrorBody.model_validate({"ErrorCode": "TicketGet.WrongStructure", "ErrorMessage": 5})
    assert (odd.message, odd.permanent) == ("5", True)


@pytest.mark.parametrize("text", ["2026-11-28", "2026-11-28T04:00:07", "", "28.11.2026 04:00"])
def test_other_time_formats_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="not a Znuny time"):
        parse_time(text, dt.UTC)


def test_naive_iso_due_time_is_refused() -> None:
    with pytest.raises(ValueError, match="offset"):
        from_iso("2026-12-01T10:00:00", dt.UTC)


def test_ticket_get_answer_reads_dynamic_field_list() -> None:
    answer = TicketGetAnswer.model_validate(
        {
            "Ticket": [
                {
                    "TicketID": 7,
                    "Created": "2026-11-28 04:00:07",
                    "DynamicField": [{"Name": "BitrixSLATier", "Value": "partner"}],
                }
            ]
        }
    )
    assert answer.ticket[0].ticket_id == "7"
    assert answer.ticket[0].dynamic_fields() == {"BitrixSLATier": "partner"}


def test_empty_search_answer_means_no_hits() -> None:
    assert TicketSearchAnswer.model_validate({}).ticket_ids == []
    assert TicketSearchAnswer.model_validate({"TicketID": ["3", 2]}).ticket_ids == ["3", "2"]


def test_shipped_dynamic_fields_file_parses() -> None:
    fields = load_dynamic_fields(SHIPPED_DYNAMIC_FIELDS).dynamic_fields
    assert fields["BitrixSLADueAt"].field_type == "DateTime"
    assert fields["BitrixSLATags"].field_type == "Multiselect"
    assert fields["BitrixSLADueAt"].possible_values is None
