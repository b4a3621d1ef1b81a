"""Turning Zammad JSON values into the neutral snapshot's: attributes, names, times, article text.

* Custom object attributes are not marked as such: they sit among the built-in columns of a
  ticket, user or organization (facts §2.1, §4.4, §4.6). The built-in column lists below are
  taken from the facts doc's field lists and samples (§2.1, §4.6, §5.3, §9.1, §9.2); whatever is
  not on them is treated as a custom attribute. An unknown built-in column that slips through
  is harmless: rules and overrides only look at the names they are configured with.
* Attribute values: ``select``/``input``/``tree_select`` (``"a::b"``) are strings,
  ``multiselect`` a list of strings, ``boolean`` a bool, ``integer`` an int, ``date``
  ``"YYYY-MM-DD"``, ``datetime`` ISO 8601 UTC with milliseconds (facts §4.7, §2.1).
* Articles (facts §2.1): ``sender`` is ``"Customer"``, ``"Agent"`` or ``"System"`` (with
  ``sender_id`` 2 for Customer in the samples); ``content_type`` ``text/html`` bodies are HTML.
"""

from __future__ import annotations

import datetime as dt
import html
import re
from collections.abc import Iterable, Mapping
from html.parser import HTMLParser
from typing import Any

from connector.policy.ticket import FieldValue

MAX_BODY_CHARS = 20_000  # classification needs the opening, not a 2 MB HTML newsletter
CUSTOMER_SENDER_ID = 2  # facts §9.1: "sender": "Customer", "sender_id": 2

_COMMON = frozenset(
    {"id", "note", "active", "created_at", "updated_at", "created_by_id", "updated_by_id",
     "created_by", "updated_by", "preferences", "image", "image_source", "vip"}
)  # fmt: skip
TICKET_COLUMNS = _COMMON | frozenset(
    {"number", "title", "group_id", "priority_id", "state_id", "organization_id", "owner_id",
     "customer_id", "group", "organization", "state", "priority", "owner", "customer",
     "first_response_at", "first_response_escalation_at", "first_response_in_min",
     "first_response_diff_in_min", "update_escalation_at", "update_in_min",
     "update_diff_in_min", "close_at", "close_escalation_at", "close_in_min",
     "close_diff_in_min", "escalation_at", "last_contact_at", "last_contact_agent_at",
     "last_contact_customer_at", "last_owner_update_at", "last_close_at", "pending_time",
     "create_article_type_id", "create_article_sender_id", "create_article_type",
     "create_article_sender", "article_count", "article_ids", "ticket_time_accounting_ids",
     "time_unit", "checklist_id", "referencing_checklist_ids", "mention_user_ids"}
)  # fmt: skip
USER_COLUMNS = _COMMON | frozenset(
    {"login", "firstname", "lastname", "email", "web", "phone", "fax", "mobile", "department",
     "street", "zip", "city", "country", "address", "verified", "source", "organization",
     "organization_id", "organization_ids", "organizations", "role_ids", "roles",
     "out_of_office", "out_of_office_start_at", "out_of_office_end_at",
     "out_of_office_replacement_id", "karma_user_ids", "overview_sorting_ids",
     "last_login", "login_failed", "password", "group_ids", "groups", "authorization_ids",
     "authorizations"}
)  # fmt: skip
ORGANIZATION_COLUMNS = _COMMON | frozenset(
    {"name", "shared", "domain", "domain_assignment", "member_ids", "members",
     "secondary_member_ids", "secondary_members"}
)  # fmt: skip


def custom_fields(values: Mapping[str, Any], builtin: Iterable[str]) -> dict[str, FieldValue]:
    """The custom attributes among ``values``, as snapshot field values."""
    known = frozenset(builtin)
    found: dict[str, FieldValue] = {}
    for name, value in values.items():
        if name in known:
            continue
        usable, converted = field_value(value)
        if usable:
            found[name] = converted
    return found


def field_value(value: Any) -> tuple[bool, FieldValue]:
    """``(True, value)`` for a JSON value a rule can match; ``(False, None)`` for objects."""
    if value is None or isinstance(value, bool | int | float | str):
        return True, value
    if isinstance(value, list) and all(
        isinstance(item, str | int | float) and not isinstance(item, bool) for item in value
    ):
        return True, [str(item) for item in value]
    return False, None


def person_name(first: str | None, last: str | None, login: str | None) -> str | None:
    """``"Ana Silva"``; Zammad's placeholder ``"-"`` (the nobody user) and blanks dropped."""
    parts = [part.strip() for part in (first, last) if part and part.strip() not in ("", "-")]
    return " ".join(parts) or login or None


def utc_iso(value: object) -> str | None:
    """A datetime attribute as ``YYYY-MM-DDTHH:MM:SSZ``; None for empty; odd text kept as is.

    Zammad answers ``"2025-03-04T12:12:40.000Z"``; the plan compares instants, and writing
    back the same instant in another spelling would be a pointless update.
    """
    if value is None or value == "":
        return None
    raw = str(value).strip()
    try:
        moment = dt.datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        return raw
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)  # Zammad stores and answers UTC
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def first_customer_text(articles: Iterable[Mapping[str, Any]]) -> str:
    """Text of the first article the customer wrote (else the first public, else the first).

    A ticket an agent opens for a caller starts with an *Agent* ``phone`` article; its text is
    still the customer's request, hence the fallbacks.
    """
    ordered = sorted(articles, key=lambda a: (str(a.get("created_at") or ""), _int(a.get("id"))))
    chosen = next((a for a in ordered if _is_customer(a)), None)
    if chosen is None:
        chosen = next((a for a in ordered if a.get("internal") is not True), None)
    if chosen is None and ordered:
        chosen = ordered[0]
    if chosen is None:
        return ""
    body = chosen.get("body")
    if not isinstance(body, str):
        return ""
    content_type = str(chosen.get("content_type") or "").lower()
    plain = html_to_text(body) if "html" in content_type else body.strip()
    return plain[:MAX_BODY_CHARS]


def _is_customer(article: Mapping[str, Any]) -> bool:
    sender = article.get("sender")
    if isinstance(sender, str):
        return sender.strip().lower() == "customer"
    return article.get("sender_id") == CUSTOMER_SENDER_ID


def _int(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


_BLOCKS = frozenset(
    {"p", "div", "br", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "pre",
     "table", "ul", "ol", "hr", "section", "article", "header", "footer"}
)  # fmt: skip
_SILENT = frozenset({"script", "style", "head", "title", "template"})


class _TextExtractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._silent = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SILENT:
            self._silent += 1
        elif tag in _BLOCKS:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in _SILENT:
            self._silent = max(self._silent - 1, 0)
        elif tag in _BLOCKS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._silent:
            self.parts.append(data)


_SILENT_BLOCK = re.compile(
    r"<(script|style|head|title|template)\b[^>]*>.*?</\1\s*>", re.IGNORECASE | re.DOTALL
)
_DECLARATION = re.compile(r"<!--.*?-->|<![^>]*>|<\?[^>]*>", re.DOTALL)  # also <![if …]>
_BLOCK_TAG = re.compile(r"</?(?:" + "|".join(sorted(_BLOCKS)) + r")\b[^>]*>", re.IGNORECASE)
_TAG = re.compile(r"</?[a-zA-Z][^>]*>")


def html_to_text(markup: str) -> str:
    """Readable text of an HTML article body: tags dropped, blocks on their own lines.

    Never raises. Python's :mod:`html.parser` gives up with ``AssertionError`` on markup it
    does not know, e.g. Outlook's conditional sections (``<![if !mso]>`` written as
    ``<![if-mso[``) or ``<![ CDATA[``; mail clients send such bodies, and one odd e-mail must
    not stop the ticket's SLA. Such a body falls back to :func:`_strip_tags`.
    """
    parser = _TextExtractor()
    try:
        parser.feed(markup)
        parser.close()
    except Exception:  # 3.11 raises AssertionError; older versions raised other types
        joined = _strip_tags(markup)
    else:
        joined = "".join(parser.parts)
    joined = html.unescape(joined).replace("\xa0", " ")
    lines = (re.sub(r"[ \t\r\f\v]+", " ", line).strip() for line in joined.split("\n"))
    return re.sub(r"\n{2,}", "\n", "\n".join(lines)).strip()


def _strip_tags(markup: str) -> str:
    """A plain tag strip for markup :mod:`html.parser` refuses: scripts, styles, comments and
    ``<!…>`` sections dropped, block tags turned into line breaks, other tags removed."""
    text = _SILENT_BLOCK.sub("", markup)
    text = _DECLARATION.sub("", text)
    text = _BLOCK_TAG.sub("\n", text)
    return _TAG.sub("", text)
