"""The sandbox's REST API over a real socket: auth, read shapes, permissions, errors."""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator

import pytest
import requests

from connector.sandbox.zammad import ADMIN_TOKEN, INTEGRATION_TOKEN, ZammadSandbox
from tests.clock import Clock
from tests.sandbox.zammad import START, Api, customer_ticket, license_attribute

ISO_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


@pytest.fixture
def zammad() -> Iterator[ZammadSandbox]:
    with ZammadSandbox(clock=Clock(START)) as sandbox:
        yield sandbox


# --- authentication -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("authorization", "error"),
    [
        (None, "Authentication required"),
        ("Basic dXNlcjpwYXNz", "Invalid BasicAuth credentials"),  # user:pass, unknown user
        ("Token token=wrong", "Invalid token!"),
        ("Token token=", "Invalid token!"),
        ("Bearer wrong", "Invalid token!"),
    ],
)
def test_requests_without_a_valid_token_are_401(
    zammad: ZammadSandbox, authorization: str | None, error: str
) -> None:
    customer_ticket(zammad)
    client = Api(zammad.base_url, token=None)
    headers = {"Authorization": authorization} if authorization else {}
    response = client("GET", "/api/v1/tickets/1", headers=headers)
    assert (response.status_code, response.json()) == (401, {"error": error, "error_human": error})
    client.close()


@pytest.mark.parametrize("scheme", ["Token token={}", "Bearer {}"])
def test_token_and_bearer_identify_the_acting_user(zammad: ZammadSandbox, scheme: str) -> None:
    client = Api(zammad.base_url, token=None)
    headers = {"Authorization": scheme.format(INTEGRATION_TOKEN)}
    me = client("GET", "/api/v1/users/me", headers=headers).json()
    assert (me["id"], me["login"]) == (zammad.integration_user_id, "sla-bot@example.com")
    client.close()


@pytest.mark.parametrize("password", ["пароль", "päss", "a:b"])
def test_basic_auth_takes_the_utf8_password_of_a_login_or_email(
    zammad: ZammadSandbox, password: str
) -> None:
    zammad.set_password("sla-bot@example.com", password)
    client = Api(zammad.base_url, token=None)
    for login in ("sla-bot@example.com", "SLA-BOT@example.com"):
        pair = base64.b64encode(f"{login}:{password}".encode()).decode()
        me = client("GET", "/api/v1/users/me", headers={"Authorization": f"Basic {pair}"})
        assert (me.status_code, me.json()["id"]) == (200, zammad.integration_user_id)
    client.close()


@pytest.mark.parametrize(
    "credentials",
    [
        "sla-bot@example.com:päss".encode("latin-1"),  # what requests' auth= sends
        b"sla-bot@example.com:wrong",
        b"sla-bot@example.com",
        b"admin@example.com:p\xc3\xa4ss",  # no password set for the admin
    ],
)
def test_basic_auth_refuses_other_bytes(zammad: ZammadSandbox, credentials: bytes) -> None:
    zammad.set_password("sla-bot@example.com", "päss")
    client = Api(zammad.base_url, token=None)
    pair = base64.b64encode(credentials).decode()
    answer = client("GET", "/api/v1/users/me", headers={"Authorization": f"Basic {pair}"})
    error = "Invalid BasicAuth credentials"
    assert (answer.status_code, answer.json()) == (401, {"error": error, "error_human": error})
    client.close()


def test_custom_tokens_map_to_logins() -> None:
    with ZammadSandbox(tokens={"t-1": "admin@example.com", "t-2": "robot@example.com"}) as other:
        admin, robot = Api(other.base_url, "t-1"), Api(other.base_url, "t-2")
        assert admin("GET", "/api/v1/users/me").json()["id"] == other.admin_user_id
        assert robot("GET", "/api/v1/users/me?expand=true").json()["roles"] == ["Agent"]
        with Api(other.base_url, ADMIN_TOKEN) as default_token:
            assert default_token("GET", "/api/v1/users/me").status_code == 401
        admin.close()
        robot.close()


def test_from_header_needs_an_admin(zammad: ZammadSandbox, api: Api) -> None:
    ticket_id = customer_ticket(zammad)
    as_admin = Api(zammad.base_url, ADMIN_TOKEN)
    put = as_admin(
        "PUT",
        f"/api/v1/tickets/{ticket_id}",
        json={"title": "x"},
        headers={"From": "sla-bot@example.com"},
    )
    assert put.json()["updated_by_id"] == zammad.integration_user_id
    refused = api("GET", "/api/v1/users/me", headers={"From": "admin@example.com"})
    assert (refused.status_code, refused.json()["error"]) == (403, "Not authorized")
    as_admin.close()


# --- reading ----------------------------------------------------------------------------------


def test_ticket_without_expand_has_ids_only(zammad: ZammadSandbox, api: Api) -> None:
    ticket_id = customer_ticket(zammad, org="ACME")
    body = api("GET", f"/api/v1/tickets/{ticket_id}").json()
    assert body["number"] == f"31{ticket_id:06d}"
    assert {"group_id", "priority_id", "state_id", "organization_id", "owner_id"} <= set(body)
    assert {"group", "state", "priority", "customer", "article_ids"}.isdisjoint(body)
    assert (body["priority_id"], body["owner_id"], body["article_count"]) == (2, 1, 1)
    assert body["created_at"] == body["updated_at"] == "2026-03-02T09:00:00.000Z"
    assert body["escalation_at"] is None and body["preferences"] == {}


def test_ticket_with_expand_has_names_as_strings(zammad: ZammadSandbox, api: Api) -> None:
    zammad.add_group("Support")
    ticket_id = customer_ticket(zammad, org="ACME", group="Support", priority="3 high")
    body = api("GET", f"/api/v1/tickets/{ticket_id}", params={"expand": "true"}).json()
    names = {key: body[key] for key in ("group", "organization", "state", "priority", "owner")}
    assert names == {
        "group": "Support",
        "organization": "ACME",
        "state": "new",
        "priority": "3 high",
        "owner": "-",
    }
    assert body["customer"] == body["created_by"] == body["updated_by"]
    assert body["customer"].startswith("customer")
    assert (body["create_article_sender"], body["create_article_type"]) == ("Customer", "email")
    assert body["article_ids"] == [1] and body["ticket_time_accounting_ids"] == []


def test_articles_by_ticket_show_sender_and_body(zammad: ZammadSandbox, api: Api) -> None:
    ticket_id = customer_ticket(zammad, body="<p>It is down</p>")
    zammad.add_article(
        ticket_id, "We are on it", sender="Agent", article_type="note", internal=True
    )
    articles = api("GET", f"/api/v1/ticket_articles/by_ticket/{ticket_id}").json()
    assert [(a["sender"], a["body"], a["internal"]) for a in articles] == [
        ("Customer", "<p>It is down</p>", False),
        ("Agent", "We are on it", True),
    ]
    assert articles[0]["content_type"] == "text/html"
    assert ISO_MS.match(articles[0]["created_at"])
    assert api("GET", f"/api/v1/ticket_articles/{articles[1]['id']}").json()["type"] == "note"


def test_users_and_organizations_carry_custom_attributes(zammad: ZammadSandbox, api: Api) -> None:
    license_attribute(zammad)
    org = zammad.add_organization("Studio", bitrix_license_type="partner")
    user = zammad.add_customer("ana@studio.example", firstname="Ana", organization="Studio")
    org_body = api("GET", f"/api/v1/organizations/{org['id']}").json()
    assert org_body["bitrix_license_type"] == "partner"
    assert org_body["member_ids"] == [user["id"]] and "members" not in org_body
    expanded = api("GET", f"/api/v1/organizations/{org['id']}?expand=true").json()
    assert expanded["members"] == ["ana@studio.example"]
    plain = api("GET", f"/api/v1/users/{user['id']}").json()
    assert (plain["organization_id"], plain["email"]) == (org["id"], "ana@studio.example")
    assert "organization" not in plain
    assert api("GET", f"/api/v1/users/{user['id']}?expand=true").json()["organization"] == "Studio"


def test_tickets_created_over_rest_are_201(zammad: ZammadSandbox, api: Api) -> None:
    customer = zammad.add_customer("li@example.org")
    body = {
        "title": "Help",
        "group": "Users",
        "customer_id": customer["id"],
        "article": {"body": "Please call", "type": "phone", "internal": False},
    }
    response = api("POST", "/api/v1/tickets", params={"expand": "true"}, json=body)
    assert response.status_code == 201
    created = response.json()
    assert (created["created_by"], created["create_article_sender"]) == (
        "sla-bot@example.com",
        "Agent",
    )
    assert created["state"] == "new" and created["priority"] == "2 normal"


# --- errors and permissions ------------------------------------------------------------------


def test_missing_records_and_routes_are_404(api: Api) -> None:
    missing = api("GET", "/api/v1/tickets/999")
    assert missing.status_code == 404
    assert missing.json()["error"] == "Couldn't find Ticket with 'id'=999"
    assert api("GET", "/api/v1/nothing").status_code == 404
    assert api("PATCH", "/api/v1/tickets/1", json={}).status_code == 404


def test_admin_endpoints_refuse_the_integration_user_until_granted(
    zammad: ZammadSandbox, api: Api
) -> None:
    paths = ["/api/v1/webhooks", "/api/v1/triggers", "/api/v1/object_manager_attributes"]
    assert {api("GET", path).status_code for path in paths} == {403}
    assert api("GET", paths[0]).json() == {
        "error": "Not authorized",
        "error_human": "Not authorized",
    }
    zammad.grant_admin("sla-bot@example.com")
    assert {api("GET", path).status_code for path in paths} == {200}


def test_customers_see_only_their_own_tickets(zammad: ZammadSandbox) -> None:
    mine = customer_ticket(zammad)
    other = customer_ticket(zammad)
    login = zammad.ticket(mine, expand=True)["customer"]
    zammad.add_token("customer-token", login)
    client = Api(zammad.base_url, "customer-token")
    assert client("GET", f"/api/v1/tickets/{mine}").status_code == 200
    assert client("GET", f"/api/v1/tickets/{other}").status_code == 403
    assert (
        client(
            "POST", "/api/v1/tags/add", json={"item": "x", "object": "Ticket", "o_id": mine}
        ).status_code
        == 403
    )
    client.close()


def test_invalid_json_is_400(zammad: ZammadSandbox, api: Api) -> None:
    ticket_id = customer_ticket(zammad)
    response = api(
        "PUT",
        f"/api/v1/tickets/{ticket_id}",
        data=b"{nope",
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 400
    assert zammad.ticket(ticket_id)["updated_at"] == "2026-03-02T09:00:00.000Z"


def test_user_search_finds_by_login_email_or_name(zammad: ZammadSandbox) -> None:
    zammad.add_customer("ivan@romashka.example", firstname="Иван", lastname="Петров")
    found = requests.get(
        f"{zammad.base_url}/api/v1/users/search",
        params={"query": "петров", "limit": 5},
        headers={"Authorization": f"Token token={INTEGRATION_TOKEN}"},
        timeout=5,
    )
    assert found.status_code == 200
    assert [user["login"] for user in found.json()] == ["ivan@romashka.example"]
