"""The webhook payload models accept what Zammad really sends and refuse what it never sends."""

from __future__ import annotations

import pytest

from connector.errors import PayloadError
from connector.helpdesks.zammad.payload import (
    NamedPayload,
    OrganizationPayload,
    UserPayload,
    WebhookPayload,
    check_shape,
)

from .conftest import fixture


def payload(name: str) -> WebhookPayload:
    return WebhookPayload.model_validate(check_shape(fixture(name)["body"]))


def test_created_ticket_keeps_every_column_and_expands_associations() -> None:
    ticket = payload("ticket__created").ticket
    assert (ticket.id, ticket.number, ticket.state) == (4711, "31004711", "new")
    assert isinstance(ticket.customer, UserPayload)
    assert (ticket.customer.login, ticket.customer.organization_id) == ("ana@studio.example", 9)
    assert isinstance(ticket.organization, OrganizationPayload)
    assert ticket.organization.extra()["bitrix_license_type"] == "partner"
    assert isinstance(ticket.priority, NamedPayload)
    assert ticket.priority.name == "2 normal"
    extra = ticket.extra()
    assert extra["escalation_at"] is None  # null columns are present, not omitted
    assert extra["bitrix_sla_due_at"] is None  # custom attributes sit next to columns
    assert extra["preferences"] == {"channel_id": 3}


def test_article_of_a_created_ticket() -> None:
    article = payload("ticket__created").article
    assert (article.id, article.sender, article.content_type) == (9001, "Customer", "text/html")
    assert not article.is_empty


def test_attribute_only_update_has_an_empty_article() -> None:
    assert payload("ticket__updated_no_article").article.is_empty


def test_customer_change_carries_the_new_customer_and_organization() -> None:
    ticket = payload("ticket__customer_changed").ticket
    assert isinstance(ticket.customer, UserPayload)
    assert (ticket.customer_id, ticket.customer.extra()["bitrix_license_key"]) == (
        77,
        "ABC-12-1234567890AB",
    )
    assert ticket.organization_id == 12


def test_names_instead_of_objects_are_accepted() -> None:
    body = {"ticket": {"id": 5, "organization": "ACME", "group": "Users", "customer": "a@b.c"}}
    ticket = WebhookPayload.model_validate(check_shape(body)).ticket
    assert (ticket.organization, ticket.group, ticket.customer) == ("ACME", "Users", "a@b.c")


def test_a_digit_string_id_is_tolerated() -> None:
    assert WebhookPayload.model_validate({"ticket": {"id": "42"}}).ticket.id == 42


@pytest.mark.parametrize("value", [True, 0, -3, 4.5, "4711-a", [4711]])
def test_odd_ticket_ids_are_refused(value: object) -> None:
    with pytest.raises(ValueError, match=r"ticket\.id"):
        WebhookPayload.model_validate({"ticket": {"id": value}})


def test_null_article_is_read_as_empty() -> None:
    shaped = check_shape({"ticket": {"id": 1}, "article": None})
    assert WebhookPayload.model_validate(shaped).article.is_empty


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ([1, 2], "JSON object"),
        ({"ticket_id": 4711}, "missing 'ticket'"),
        ({"text": "hi", "attachments": []}, "pre-defined chat webhook"),
        ({"ticket": "4711"}, "ticket must be an object"),
        ({"ticket": {"number": "31004711"}}, "missing ticket.id"),
        ({"ticket": {"id": None}}, "missing ticket.id"),
        ({"ticket": {"id": 1}, "article": []}, "article must be an object"),
    ],
)
def test_shapes_zammad_never_sends_by_default(body: object, message: str) -> None:
    with pytest.raises(PayloadError, match=message):
        check_shape(body)
