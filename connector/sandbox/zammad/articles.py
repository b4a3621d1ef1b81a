"""Ticket articles of the fake Zammad: added inside a create or update transaction.

What an article carries (facts §2.1, §9.1): ``sender`` (``Customer``/``Agent``/``System``,
ids 2/1/3), ``type`` (``email``, ``phone``, ``note``, ``web``), ``from``, ``to``, ``subject``,
``content_type`` (``text/html`` for e-mail, as in §9.1), ``body``, ``internal``. Adding one
bumps the ticket's ``article_count``, sets ``create_article_sender``/``_type`` for the first
article and, for a public article, ``last_contact_at`` and ``last_contact_customer_at`` /
``last_contact_agent_at``. An unknown sender or type is a 422 without human text.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from connector.sandbox.zammad.errors import ApiError, invalid
from connector.sandbox.zammad.state import ARTICLE_TYPES, SENDERS, Row, Store


def add_article(
    store: Store, ticket: Row, params: Mapping[str, Any], actor_id: int, sender: str
) -> Row:
    """Add an article to ``ticket`` (the caller holds the lock and runs the transaction).

    Args:
        store: the sandbox's tables.
        ticket: the ticket row, updated in place.
        params: the ``article`` hash of the request (``body`` required).
        actor_id: the author.
        sender: the default sender name when ``params`` names none.
    """
    sender_id = _code(SENDERS, params.get("sender", sender), "sender")
    type_id = _code(ARTICLE_TYPES, params.get("type", "note"), "type")
    body = params.get("body")
    if not isinstance(body, str) or not body:
        raise invalid("Body can't be blank")
    author = store.tables["User"][actor_id]
    address = f"{author['firstname']} {author['lastname']} <{author['email']}>".strip()
    internal = bool(params.get("internal", False))
    row = store.insert(
        "TicketArticle",
        {
            "ticket_id": ticket["id"],
            "type_id": type_id,
            "sender_id": sender_id,
            "from": params.get("from", address),
            "to": params.get("to", ""),
            "cc": params.get("cc", ""),
            "subject": params.get("subject", ticket["title"]),
            "reply_to": None,
            "message_id": None,
            "message_id_md5": None,
            "in_reply_to": None,
            "content_type": params.get("content_type", "text/html"),
            "references": None,
            "body": body,
            "internal": internal,
            "preferences": {},
            "origin_by_id": params.get("origin_by_id"),
        },
        actor_id,
    )
    ticket["article_count"] += 1
    if ticket["create_article_sender_id"] is None:
        ticket["create_article_sender_id"] = sender_id
        ticket["create_article_type_id"] = type_id
    if not internal and SENDERS[sender_id] != "System":
        ticket["last_contact_at"] = row["created_at"]
        side = "customer" if SENDERS[sender_id] == "Customer" else "agent"
        ticket[f"last_contact_{side}_at"] = row["created_at"]
    return row


def _code(codes: dict[int, str], value: object, what: str) -> int:
    for code, name in codes.items():
        if str(value).lower() in (name.lower(), str(code)):
            return code
    raise ApiError(422, f"No lookup value found for '{what}': {value!r}", None)
