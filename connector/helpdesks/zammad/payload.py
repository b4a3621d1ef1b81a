"""The default Zammad webhook payload as pydantic models: ``{"ticket": {...}, "article": {...}}``.

What Zammad sends (facts §2.1, ``TriggerWebhookJob`` default payload, checked against the docs
sample ``manage/webhook/payload.rst`` and §9.1):

* exactly two top-level keys; ``article`` is ``{}`` when the change carried no article (an
  attribute-only update, e.g. an agent moving the ticket to another organization);
* ``ticket`` holds every column, ``null`` ones included, every custom object attribute at the
  same level as built-in columns, the ``*_ids`` lists, and these associations expanded into
  full objects: ``owner, customer, created_by, updated_by, organization, priority, group``;
  ``state`` is a plain name; ``number`` is a string; ids are integers;
* timestamps are ISO 8601 UTC with milliseconds (``2025-03-04T08:12:40.120Z``);
* no tags, no "created/updated" field: the event is only in the ``X-Zammad-Trigger`` header;
* the payload is rebuilt from the *current* database state at every delivery attempt, so it
  may be newer than the change that fired the trigger (or older than the ticket by the time
  the worker reads it) — which is why only the ticket id is used and the worker re-reads.

The models therefore pin down only what the connector relies on (``ticket.id``) and stay
permissive about the rest: unknown keys are kept, expanded objects may also arrive as plain
names (as in the REST ``expand=true`` form), and no value the connector ignores can make a
real delivery fail. A pre-defined (Slack, Mattermost, …) or custom payload is recognised and
refused with a message that says what to change in Zammad.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from connector.errors import PayloadError


def _ticket_id(value: object) -> int:
    """A Zammad ticket id: a positive integer; a string of digits is tolerated, a bool is not."""
    if isinstance(value, bool):
        raise ValueError("must be an integer, not a boolean")
    if isinstance(value, int):
        number = value
    elif isinstance(value, str) and value.strip().isdigit():
        number = int(value.strip())
    else:
        raise ValueError("must be an integer")
    if number <= 0:
        raise ValueError("must be a positive integer")
    return number


TicketId = Annotated[int, BeforeValidator(_ticket_id)]


class _Open(BaseModel):
    """Base of every payload model: keep unknown keys (custom attributes, newer columns)."""

    model_config = ConfigDict(extra="allow", frozen=True)

    def extra(self) -> dict[str, Any]:
        """The keys this model does not declare, e.g. custom object attributes."""
        return dict(self.model_extra or {})


class UserPayload(_Open):
    """An expanded user (``customer``, ``owner``, ``created_by``, ``updated_by``).

    Zammad strips ``password``, ``preferences``, ``last_login``, ``login_failed``,
    ``group_ids``/``groups`` and ``authorization(_ids)`` from user objects in payloads; custom
    user attributes (e.g. ``bitrix_license_key``) are included.
    """

    id: int | None = None
    login: str | None = None
    email: str | None = None
    firstname: str | None = None
    lastname: str | None = None
    organization_id: int | None = None
    organization: str | None = Field(default=None, description="the organization's name")
    vip: bool | None = None


class OrganizationPayload(_Open):
    """An expanded organization, with its custom attributes (e.g. ``bitrix_license_type``)."""

    id: int | None = None
    name: str | None = None
    shared: bool | None = None
    active: bool | None = None
    domain: str | None = None


class NamedPayload(_Open):
    """An expanded ``priority`` (``"3 high"``) or ``group`` (``"2nd Level"``)."""

    id: int | None = None
    name: str | None = None


class TicketPayload(_Open):
    """``payload["ticket"]``: all ticket columns, custom attributes and expanded associations."""

    id: TicketId
    number: str | int | None = None
    title: str | None = None
    state: str | None = None
    state_id: int | None = None
    priority_id: int | None = None
    group_id: int | None = None
    customer_id: int | None = None
    organization_id: int | None = None
    owner_id: int | None = None
    created_by_id: int | None = None
    updated_by_id: int | None = None
    created_at: str | None = None
    updated_at: str | None = None
    customer: UserPayload | str | None = None
    organization: OrganizationPayload | str | None = None
    owner: UserPayload | str | None = None
    created_by: UserPayload | str | None = None
    updated_by: UserPayload | str | None = None
    priority: NamedPayload | str | None = None
    group: NamedPayload | str | None = None


class ArticlePayload(_Open):
    """``payload["article"]``: the article of the change, or ``{}`` when there was none.

    ``sender`` is ``"Customer"``, ``"Agent"`` or ``"System"``; ``body`` is HTML when
    ``content_type`` is ``text/html``; each attachment carries an authenticated download
    ``url`` but never its content.
    """

    id: int | None = None
    ticket_id: int | None = None
    sender: str | None = None
    type: str | None = None
    internal: bool | None = None
    content_type: str | None = None
    body: str | None = None

    @property
    def is_empty(self) -> bool:
        """True for the ``{}`` Zammad sends with attribute-only updates."""
        return self.id is None and not self.model_extra and self.body is None


class WebhookPayload(BaseModel):
    """The whole default payload; top-level keys other than the two are ignored."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    ticket: TicketPayload
    article: ArticlePayload = Field(default_factory=ArticlePayload)


#: Top-level keys of payloads Zammad builds for pre-defined webhook types (facts §2.3: Slack
#: ``{mrkdwn, text, attachments}``, Mattermost adds ``channel/username/icon_url``; Teams and
#: Rocket.Chat, ntfy are chat notifications of the same kind). Seen here, the admin picked a
#: pre-defined type instead of a plain webhook.
CHAT_PAYLOAD_KEYS = frozenset(
    {"mrkdwn", "text", "attachments", "channel", "username", "icon_url", "@type", "sections"}
)


def check_shape(data: object) -> dict[str, Any]:
    """The decoded body as a dict with a ``ticket`` object, or a :class:`PayloadError`.

    Distinguishes the ways a Zammad webhook can be misconfigured, so the refusal (visible
    under the webhook's "Recent logs" in Zammad) tells the admin what to fix.
    """
    if not isinstance(data, dict):
        raise PayloadError(
            f"body must be a JSON object (Zammad's default payload), not {type(data).__name__}"
        )
    if "ticket" not in data:
        if data.keys() & CHAT_PAYLOAD_KEYS:
            raise PayloadError(
                "unsupported payload: this looks like a pre-defined chat webhook (Slack, "
                "Mattermost, …); use a plain webhook with the default payload"
            )
        keys = ", ".join(sorted(str(key) for key in data)[:8]) or "none"
        raise PayloadError(
            "unsupported payload: missing 'ticket' (keys: "
            f"{keys}); use the webhook's default payload, not a custom one"
        )
    ticket = data["ticket"]
    if not isinstance(ticket, dict):
        raise PayloadError(f"ticket must be an object, not {type(ticket).__name__}")
    if "id" not in ticket or ticket["id"] is None:
        raise PayloadError("missing ticket.id")
    if "article" in data and data["article"] is not None and not isinstance(data["article"], dict):
        raise PayloadError(f"article must be an object, not {type(data['article']).__name__}")
    if data.get("article") is None:
        data = {**data, "article": {}}
    return data
