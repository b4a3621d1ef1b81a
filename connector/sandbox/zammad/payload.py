"""One webhook request of the fake Zammad, rendered when it is sent (``TriggerWebhookJob``).

Facts §1.1, §2 and §0:

* The payload is rebuilt from the **current** state on every attempt, not when the trigger
  fired. A deleted trigger, ticket or article discards the job; an inactive or deleted webhook
  ends it (logged, not retried).
* Default payload: ``{"ticket": {...}, "article": {...}}`` (see
  :func:`~connector.sandbox.zammad.views.payload_ticket`); ``article`` is ``{}`` without one.
* Body: compact JSON in UTF-8 with Rails' escaping of ``<``, ``>``, ``&``, U+2028 and U+2029 as
  ``\\u003c`` etc. (*inference from Rails defaults*, §1.3) — re-serialising the parsed JSON does
  not reproduce the signed bytes.
* Headers: ``Content-Type: application/json; charset=utf-8``, ``User-Agent: Zammad User
  Agent``, ``X-Zammad-Trigger`` (the trigger's name, sent as raw UTF-8 bytes — *inference*:
  Ruby's Net::HTTP does not encode header values, so a name like "SLA 010 – created" reaches a
  WSGI server as Latin-1 mojibake), ``X-Zammad-Delivery``, ``X-Hub-Signature:
  sha1=<hex HMAC-SHA1 of the body>`` when a signature token is set and the body is not empty,
  basic auth when both user and password are set, ``Authorization: Bearer`` when a bearer
  token is set (7.x). Basic credentials are encoded as UTF-8: Ruby's ``Net::HTTP#basic_auth``
  packs the (UTF-8) string ``"user:password"`` as base64 (``pack("m0")``), whereas ``requests``'
  ``auth=`` would encode Latin-1 and fail on Cyrillic.
* Custom payload (§2.2): ``#{object.attr.attr}`` placeholders in the JSON template; a
  placeholder that is a whole string and resolves to a number, boolean, list or hash is inserted
  as raw JSON; times render as ``2025-03-04 10:30:00 UTC``; nil as ``""``; an unknown path as
  ``#{ticket.foo / no such method}``.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from connector.helpdesks.http import basic_authorization
from connector.helpdesks.signatures import sign
from connector.sandbox.zammad.state import ARTICLE_TYPES, SENDERS, Row, Store
from connector.sandbox.zammad.triggers import Job
from connector.sandbox.zammad.views import payload_article, payload_ticket, plain

USER_AGENT = "Zammad User Agent"
CONTENT_TYPE = "application/json; charset=utf-8"
_PLACEHOLDER = re.compile(r"#\{([a-z0-9_.?!]+)\}")
_RAILS_ESCAPES = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026"}
_RAILS_ESCAPES |= {"\u2028": "\\u2028", "\u2029": "\\u2029"}
_LINKS = {
    "Ticket": {
        "customer": "User",
        "owner": "User",
        "created_by": "User",
        "updated_by": "User",
        "organization": "Organization",
        "group": "Group",
        "priority": "TicketPriority",
        "state": "TicketState",
    },
    "TicketArticle": {"created_by": "User", "updated_by": "User", "origin_by": "User"},
    "User": {"organization": "Organization", "created_by": "User", "updated_by": "User"},
}


class Discarded(Exception):
    """The job ends without a request (and without retries); the message says why."""


@dataclass(frozen=True)
class Outgoing:
    """A rendered request.

    Attributes:
        method: ``POST`` unless the webhook says otherwise (7.x ``http_method``).
        url: the webhook endpoint.
        headers: header name → value (bytes for values that may hold non-ASCII text).
        body: the exact bytes sent and signed.
        verify: the webhook's ``ssl_verify``.
        trigger: the trigger's name, for the delivery log.
    """

    method: str
    url: str
    headers: dict[str, str | bytes]
    body: bytes
    verify: bool
    trigger: str


def rails_json(value: object) -> bytes:
    """``value.to_json`` as Rails writes it: compact, UTF-8, HTML-unsafe characters escaped."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    for char, escaped in _RAILS_ESCAPES.items():
        text = text.replace(char, escaped)
    return text.encode("utf-8")


def render(store: Store, job: Job, base_url: str) -> Outgoing:
    """Build the request for ``job`` from the current state; :class:`Discarded` if it ends."""
    with store.lock:
        webhook = store.tables["Webhook"].get(job.webhook_id)
        trigger = store.tables["Trigger"].get(job.trigger_id)
        ticket = store.tables["Ticket"].get(job.ticket_id)
        article = store.tables["TicketArticle"].get(job.article_id) if job.article_id else None
        if trigger is None or ticket is None or (job.article_id and article is None):
            raise Discarded("the trigger, ticket or article no longer exists")
        if webhook is None or not webhook["active"]:
            raise Discarded(f"webhook {job.webhook_id} is inactive or deleted")
        if webhook["customized_payload"] and webhook["custom_payload"]:
            content = _custom(store, str(webhook["custom_payload"]), ticket, article, base_url)
        else:
            content = {
                "ticket": payload_ticket(store, ticket),
                "article": payload_article(store, article),
            }
        body = rails_json(content)
        headers: dict[str, str | bytes] = {
            "Content-Type": CONTENT_TYPE,
            "User-Agent": USER_AGENT,
            "X-Zammad-Trigger": str(trigger["name"]).encode("utf-8"),
            "X-Zammad-Delivery": job.delivery_id,
        }
        if webhook["signature_token"] and body:
            headers["X-Hub-Signature"] = sign(str(webhook["signature_token"]), body, "sha1")
        if webhook["bearer_token"]:
            headers["Authorization"] = f"Bearer {webhook['bearer_token']}"
        user, password = webhook["basic_auth_username"], webhook["basic_auth_password"]
        if user and password:  # with a bearer token too, basic wins (7.x order: not in the facts)
            headers["Authorization"] = basic_authorization(str(user), str(password))
        return Outgoing(
            method=str(webhook["http_method"]).upper(),
            url=str(webhook["endpoint"]),
            headers=headers,
            body=body,
            verify=bool(webhook["ssl_verify"]),
            trigger=str(trigger["name"]),
        )


def _custom(store: Store, template: str, ticket: Row, article: Row | None, base: str) -> object:
    host = urlsplit(base)
    roots: dict[str, Any] = {
        "ticket": ("Ticket", ticket),
        "article": ("TicketArticle", article) if article else {},
        "config": {"fqdn": host.netloc, "http_type": host.scheme, "ticket_hook": "Ticket#"},
        "notification": {
            "subject": ticket["title"],
            "link": f"{base}/#ticket/zoom/{ticket['id']}",
            "message": "",
            "body": "",
            "changes": "",
        },
    }

    def resolve(path: str) -> object:
        current: Any = roots
        for segment in path.split("."):
            current = _step(store, current, segment)
            if current is _MISSING:
                return _MISSING
        return plain(store, current[0], current[1]) if isinstance(current, tuple) else current

    return _walk(json.loads(template), resolve)


_MISSING = object()


def _step(store: Store, current: Any, segment: str) -> Any:
    if isinstance(current, dict):
        return current.get(segment, _MISSING)
    if not isinstance(current, tuple) or current[1] is None:
        return _MISSING
    table, row = current
    linked = _LINKS.get(table, {}).get(segment)
    if linked is not None:
        target = store.tables[linked].get(row.get(f"{segment}_id"))
        return (linked, target) if target is not None else None
    if segment == "fullname" and table == "User":
        return f"{row['firstname']} {row['lastname']}".strip()
    if table == "TicketArticle" and segment in ("sender", "type"):
        return (SENDERS if segment == "sender" else ARTICLE_TYPES).get(row[f"{segment}_id"])
    return row.get(segment, _MISSING)


def _walk(node: object, resolve: Callable[[str], object]) -> object:
    if isinstance(node, dict):
        return {key: _walk(value, resolve) for key, value in node.items()}
    if isinstance(node, list):
        return [_walk(value, resolve) for value in node]
    if not isinstance(node, str):
        return node
    whole = _PLACEHOLDER.fullmatch(node)
    if whole is not None:
        value = resolve(whole.group(1))
        if isinstance(value, bool | int | float | list | dict):
            return value
    return _PLACEHOLDER.sub(lambda m: _text(resolve(m.group(1)), m.group(1)), node)


def _text(value: object, path: str) -> str:
    if value is _MISSING:
        return f"#{{{path} / no such method}}"
    if value is None:
        return ""
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | dict):
        return json.dumps(value, default=str)
    return str(value)
