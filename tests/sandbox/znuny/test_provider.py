"""The provider on a real socket: base URL, authentication, TicketGet, transport errors, faults."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
import requests

from connector.sandbox.znuny import ZnunySandbox
from tests.clock import Clock
from tests.sandbox.znuny import ROOT, START, Api


@pytest.fixture
def clock() -> Clock:
    return Clock(START)


@pytest.fixture
def znuny(clock: Clock) -> Iterator[ZnunySandbox]:
    with ZnunySandbox(clock=clock) as sandbox:
        sandbox.add_customer_company("acme-gold", "ACME Gold Corp", bitrix_license_type="gold")
        sandbox.add_customer_user(
            "alice",
            email="alice@acme-gold.example",
            customer_id="acme-gold",
            first_name="Alice",
            last_name="Gold",
        )
        sandbox.add_dynamic_field("SLADueDate", "DateTime")
        sandbox.create_ticket(
            title="Printer on fire", customer_user="alice", body="Help, the printer is on fire."
        )
        yield sandbox


@pytest.fixture
def api(znuny: ZnunySandbox) -> Iterator[Api]:
    client = Api(znuny.base_url)
    yield client
    client.session.close()


def test_base_url_names_the_web_service(znuny: ZnunySandbox) -> None:
    assert znuny.base_url.endswith(
        "/znuny/nph-genericinterface.pl/Webservice/GenericTicketConnectorREST"
    )
    assert znuny.base_url.startswith("http://127.0.0.1:")


# --- authentication ---------------------------------------------------------------------------


def test_login_in_the_query(api: Api) -> None:
    assert api.get_ticket(1)["Ticket"][0]["TicketID"] == 1


def test_login_in_headers(api: Api) -> None:
    headers = {"X-OTRS-Header-UserLogin": "slabot", "X-OTRS-Header-Password": "slabot"}
    answer = api("GET", "/Ticket/1", headers=headers)
    assert answer.json()["Ticket"][0]["Title"] == "Printer on fire"


def test_the_password_header_is_checked_as_the_bytes_that_arrived(znuny: ZnunySandbox) -> None:
    """Znuny hands ``X-OTRS-Header-Password`` to the auth backend undecoded and compares the
    password's UTF-8 bytes: the UTF-8 bytes match, the Latin-1 byte of the same letter not."""
    agents = {"root@localhost": "root", "agent": "Pässwört"}
    with ZnunySandbox(agents=agents) as other:
        other.create_ticket(title="t", customer_user="c@shop.example", body="b")
        url = f"{other.base_url}/Ticket/1"

        def code(password: bytes) -> str | None:
            headers = {"X-OTRS-Header-UserLogin": b"agent", "X-OTRS-Header-Password": password}
            answer = requests.get(url, headers=headers, timeout=5).json()
            return answer["Error"]["ErrorCode"] if "Error" in answer else None

        assert code("Pässwört".encode()) is None
        assert code("Pässwört".encode("latin-1")) == "TicketGet.AuthFail"
        body = {"UserLogin": "agent", "Password": "Pässwört"}  # JSON: decoded text
        assert "Error" not in requests.get(url, params=body, timeout=5).json()


def test_login_in_the_body(api: Api) -> None:
    answer = api("PATCH", "/Ticket/1", json={**ROOT, "Ticket": {"Title": "Renamed"}})
    assert answer.json() == {"TicketID": "1", "TicketNumber": "2026112810000011"}


def test_session_id_from_session_create(api: Api, znuny: ZnunySandbox) -> None:
    session = api("POST", "/Session", json=ROOT).json()["SessionID"]
    assert api("GET", "/Ticket/1", params={"SessionID": session}).json()["Ticket"]
    header = {"X-OTRS-Header-SessionID": session}
    assert api("GET", "/Ticket/1", headers=header).json()["Ticket"]
    znuny.expire_sessions()
    expired = api("GET", "/Ticket/1", params={"SessionID": session}).json()
    assert expired["Error"]["ErrorCode"] == "TicketGet.AuthFail"


@pytest.mark.parametrize(
    ("method", "path", "operation"),
    [("GET", "/Ticket/1", "TicketGet"), ("PATCH", "/Ticket/1", "TicketUpdate")],
)
def test_wrong_password_is_auth_fail_with_http_200(
    api: Api, method: str, path: str, operation: str
) -> None:
    answer = api(method, path, params={"UserLogin": "root@localhost", "Password": "nope"})
    assert answer.status_code == 200
    assert answer.json()["Error"] == {
        "ErrorCode": f"{operation}.AuthFail",
        "ErrorMessage": f"{operation}: User could not be authenticated!",
    }
    assert "nope" not in answer.text


def test_no_credentials_is_a_missing_parameter(api: Api) -> None:
    answer = api("GET", "/Ticket/1")
    assert answer.json()["Error"]["ErrorCode"] == "TicketGet.MissingParameter"


def test_session_create_refuses_a_wrong_password(api: Api) -> None:
    answer = api("POST", "/Session", json={"UserLogin": "root@localhost", "Password": "x"})
    assert answer.json()["Error"]["ErrorCode"] == "SessionCreate.AuthFail"


def test_uri_parameters_override_body_parameters(api: Api, znuny: ZnunySandbox) -> None:
    body = {"UserLogin": "root@localhost", "Password": "wrong", "Ticket": {"Title": "From body"}}
    answer = api("PATCH", "/Ticket/1", params=ROOT, json=body)
    assert "Error" not in answer.json()
    assert znuny.ticket(1)["Title"] == "From body"


# --- TicketGet ------------------------------------------------------------------------------


def test_ticket_get_lists_every_dynamic_field_and_all_articles(api: Api) -> None:
    ticket = api.get_ticket(1, DynamicFields=1, AllArticles=1)["Ticket"][0]
    assert ticket["DynamicField"] == [
        {"Name": "ProcessManagementActivityID", "Value": None},
        {"Name": "ProcessManagementAttachment", "Value": None},
        {"Name": "ProcessManagementProcessID", "Value": None},
        {"Name": "SLADueDate", "Value": None},
        {"Name": "TicketCalendarEndTime", "Value": None},
        {"Name": "TicketCalendarStartTime", "Value": None},
    ]
    assert not any(key.startswith("DynamicField_") for key in ticket)
    (article,) = ticket["Article"]
    assert (article["SenderType"], article["Body"]) == ("customer", "Help, the printer is on fire.")
    assert article["From"] == "alice@acme-gold.example"
    expected = {
        "TicketNumber": "2026112810000011",
        "Queue": "Raw",
        "QueueID": 2,
        "State": "new",
        "StateType": "new",
        "Priority": "3 normal",
        "CustomerID": "acme-gold",
        "CustomerUserID": "alice",
        "Created": "2026-11-28 04:00:07",
        "Changed": "2026-11-28 04:00:07",
        "CreateBy": 1,
        "ChangeBy": 1,
    }
    assert {key: ticket[key] for key in expected} == expected


def test_ticket_get_without_flags_has_no_fields_or_articles(api: Api) -> None:
    ticket = api.get_ticket(1)["Ticket"][0]
    assert "DynamicField" not in ticket
    assert "Article" not in ticket


def test_times_are_in_the_otrs_time_zone(clock: Clock) -> None:
    with ZnunySandbox(clock=clock, otrs_time_zone="Europe/Moscow") as sandbox:
        ticket_id = sandbox.create_ticket(title="t", customer_user="a@b.example", body="b")
        assert sandbox.ticket(ticket_id)["Created"] == "2026-11-28 07:00:07"
        assert START.hour == 4


def test_missing_ticket_is_access_denied(api: Api) -> None:
    answer = api("GET", "/Ticket/99", params=ROOT)
    assert answer.status_code == 200
    assert answer.json()["Error"] == {
        "ErrorCode": "TicketGet.AccessDenied",
        "ErrorMessage": "TicketGet: User does not have access to the ticket!",
    }


def test_ticket_list_returns_several_tickets(api: Api, znuny: ZnunySandbox) -> None:
    znuny.create_ticket(title="second", customer_user="alice", body="b")
    answer = api("GET", "/TicketList", params={**ROOT, "TicketID": ["1", "2"]}).json()
    assert [ticket["TicketID"] for ticket in answer["Ticket"]] == [1, 2]


# --- transport errors -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"), [("GET", "/Nowhere"), ("DELETE", "/Ticket/1"), ("PUT", "/Ticket/1")]
)
def test_unknown_route_is_a_plain_text_500(api: Api, method: str, path: str) -> None:
    answer = api(method, path, params=ROOT)
    assert answer.status_code == 500
    assert answer.headers["Content-Type"].startswith("text/plain")
    assert "Error while determine Operation" in answer.text
    assert "root" not in answer.text  # the query string (credentials) is not echoed


def test_undecodable_json_is_a_plain_text_500(api: Api, znuny: ZnunySandbox) -> None:
    answer = api("PATCH", "/Ticket/1", data=b'{"Ticket": ', params=ROOT)
    assert answer.status_code == 500
    assert answer.headers["Content-Type"].startswith("text/plain")
    assert znuny.writes() == []


def test_unknown_web_service_closes_the_connection(znuny: ZnunySandbox) -> None:
    url = znuny.base_url.replace("GenericTicketConnectorREST", "Other") + "/Ticket/1"
    with pytest.raises(requests.ConnectionError):
        requests.get(url, params=ROOT, timeout=5)
    by_id = f"{znuny.root_url}/znuny/nph-genericinterface.pl/WebserviceID/1/Ticket/1"
    assert requests.get(by_id, params=ROOT, timeout=5).json()["Ticket"]


# --- faults, pause, call log ----------------------------------------------------------------


def test_faults(api: Api, znuny: ZnunySandbox) -> None:
    znuny.faults.fail_next(1, status=503, retry_after=2)
    refused = api("GET", "/Ticket/1", params=ROOT)
    assert (refused.status_code, refused.headers["Retry-After"]) == (503, "2")
    assert api("GET", "/Ticket/1", params=ROOT).status_code == 200
    znuny.faults.drop_next(1, after_apply=True, methods=["PATCH"])
    with pytest.raises(requests.ConnectionError):
        api("PATCH", "/Ticket/1", json={**ROOT, "Ticket": {"Title": "Applied"}})
    assert znuny.ticket(1)["Title"] == "Applied"
    assert [c.status for c in znuny.calls("PATCH")] == [None]


def test_pause_refuses_connections_and_resume_keeps_the_data(api: Api, znuny: ZnunySandbox) -> None:
    znuny.pause()
    with pytest.raises(requests.ConnectionError):
        api("GET", "/Ticket/1", params=ROOT)
    znuny.resume()
    assert api.get_ticket(1)["Ticket"][0]["Title"] == "Printer on fire"


def test_call_log_counts_concurrent_requests_per_ticket(znuny: ZnunySandbox) -> None:
    znuny.faults.latency(0.2)
    threads = [threading.Thread(target=Api(znuny.base_url).get_ticket, args=(1,)) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert znuny.max_concurrent_per_ticket() == 2
    assert [call.ticket_id for call in znuny.calls("GET")] == ["1", "1"]
