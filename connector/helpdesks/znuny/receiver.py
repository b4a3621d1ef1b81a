"""HTTP side of Znuny: authenticate an invoker request and turn it into an :class:`IncomingEvent`.

How Znuny behaves as a webhook sender (facts §1):

* The ``Ticket::Generic`` invoker POSTs ``{"Event": {...}, "Ticket": {...}}`` as JSON (the
  captured request says ``Content-Type: application/json``), authenticated by the REST
  transport's ``BasicAuth`` or by ``AdditionalHeaders`` (a shared header token). We check
  either in constant time.
* Znuny builds the BasicAuth header as ``'Basic ' . encode_base64("$User:$Password")``
  (``Kernel/GenericInterface/Transport/HTTP/REST.pm``). Perl's ``encode_base64`` breaks its
  output into 76-character lines and LWP sends each line break of a header value as a space,
  so for credentials longer than 57 bytes the base64 text arrives with a space inside. Spaces
  and tabs inside the base64 text are therefore removed before it is decoded; anything else
  that is not base64 is still refused.
* Without ``PrepareRequest::OmittedFields`` (a SysConfig setting, see ``README.md``) the body
  carries every article of the ticket (``Ticket.Articles``) on every event and outgrows the
  edge's ``max_body_bytes`` on long tickets. The first such body is accepted but logged once
  as a warning that names the setting.
* It counts a request as delivered only if the status is ``20x`` and a non-204 answer has a
  body; 200 with an empty body is an error and gets retried (``RequestRetry``). So we answer
  ``200 {}``.
* **There is no delivery id.** The body is rebuilt at send time (``TicketDeepGet`` on every
  attempt) and asynchronous tasks are sent by up to five daemon workers in parallel, so
  deliveries arrive **out of order** and a retry of an old event may carry newer ticket data.
  The dedup key is therefore derived from what identifies one ticket state: event name, ticket
  id, the ticket's ``Changed`` time, the event's ``ArticleID`` or ``FieldName``/``Value``, and
  a digest of the ticket data the policy reads. An exact retry of an unchanged ticket maps to
  the same key (deduplicated); anything newer maps to a new key and is never dropped.
* Events we act on are listed in :data:`HANDLED_EVENTS`; ``TicketDynamicFieldUpdate_<Name>``
  is handled for every DF except the four the connector writes itself, which are refused as a
  loop hazard (facts §5, guard 1). Unknown events are refused with a typed error (422) that
  tells the admin which invoker event to remove; Znuny logs it in the web service debugger.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Collection

from pydantic import ValidationError

from connector.errors import AuthError, PayloadError
from connector.helpdesks.base import IncomingEvent, load_json
from connector.helpdesks.signatures import (
    HeaderSource,
    basic_credentials,
    check_token,
    header,
    tokens_match,
)
from connector.helpdesks.znuny.payload import InvokerRequest

log = logging.getLogger(__name__)
DF_UPDATE = "TicketDynamicFieldUpdate_"
#: the SysConfig setting that keeps articles out of the invoker body
OMITTED_FIELDS_SETTING = "GenericInterface::Invoker::Ticket::Generic::PrepareRequest::OmittedFields"

#: Events that can change the SLA decision, and why (facts §1 "Events usable").
HANDLED_EVENTS: dict[str, str] = {
    "TicketCreate": "a new ticket needs its SLA",
    "ArticleCreate": "the first customer article is the text the classifier reads",
    "TicketCustomerUpdate": "the customer decides the tier",
    "TicketPriorityUpdate": "a priority may be an agent override",
    "TicketQueueUpdate": "a queue may decide the tier (tiers.yaml group rules)",
    "TicketTitleUpdate": "the title is classified",
    "TicketStateUpdate": "a reopened ticket needs its SLA again",
}
#: Scalar ticket attributes in the dedup digest (besides every ``DynamicField_*``).
_DIGEST_KEYS = ("Title", "Queue", "Priority", "State", "CustomerID", "CustomerUserID")
MAX_DELIVERY_ID = 200


class UnsupportedEventError(PayloadError):
    """The invoker sent an event this connector does not handle; remove it from the invoker."""


class ZnunyReceiver:
    """:class:`~connector.helpdesks.base.WebhookReceiver` for one Znuny instance.

    Args:
        instance: the configured instance name.
        secret: ``instance.webhook_secret``: the BasicAuth password or the header token.
        auth: ``"basic"`` or ``"header"``.
        basic_user: the BasicAuth user name the invoker sends.
        header_name: the header carrying the token (``auth="header"``).
        managed_fields: the DF names the connector writes; their update events are refused.
    """

    kind = "znuny"

    def __init__(
        self,
        instance: str,
        secret: str,
        *,
        auth: str = "basic",
        basic_user: str = "znuny",
        header_name: str = "X-Bitrix-SLA-Token",
        managed_fields: Collection[str] = (),
    ) -> None:
        if not secret:
            raise ValueError(f"znuny instance {instance!r}: the webhook secret must not be empty")
        if auth not in ("basic", "header"):
            raise ValueError(f"znuny instance {instance!r}: unknown webhook auth {auth!r}")
        self.instance = instance
        self._secret = secret
        self._auth = auth
        self._basic_user = basic_user
        self._header_name = header_name
        self._managed = frozenset(managed_fields)
        self._warned_articles = False
        self.success: tuple[int, dict[str, object]] = (200, {})

    def authenticate(self, headers: HeaderSource, body: bytes) -> None:
        """Raise :class:`~connector.errors.AuthError` unless the credentials match.

        The message says what is missing or wrong, never what was sent.
        """
        if self._auth == "header":
            check_token(self._secret, headers, self._header_name)
            return
        given = header(headers, "Authorization")
        if not given:
            raise AuthError("missing Authorization header (the invoker must use BasicAuth)")
        scheme, _, encoded = given.strip().partition(" ")
        if scheme.lower() != "basic" or not encoded.strip():
            raise AuthError("Authorization header is not Basic credentials")
        decoded = basic_credentials(encoded)  # Znuny's encode_base64 wraps at 76 characters
        if decoded is None:
            raise AuthError("Authorization header is not valid Basic credentials")
        if not tokens_match(f"{self._basic_user}:{self._secret}", decoded):
            raise AuthError("BasicAuth user or password does not match the configuration")

    def parse(self, headers: HeaderSource, body: bytes) -> IncomingEvent:
        """The ticket id, event name and derived delivery id of an authenticated request.

        Raises:
            PayloadError: not JSON, not the ``Ticket::Generic`` shape (the message names the
                field), or an event that is refused (:class:`UnsupportedEventError`).
        """
        raw = load_json(body)
        if not isinstance(raw, dict):
            raise PayloadError(f"body must be a JSON object, not {type(raw).__name__}")
        try:
            request = InvokerRequest.model_validate(raw)
        except ValidationError as exc:
            raise PayloadError(_describe(exc)) from None
        event, ticket = request.event, request.ticket
        self._check_event(event.event)
        if not self._warned_articles and ticket.attribute("Articles") is not None:
            self._warned_articles = True
            log.warning(
                "znuny instance %s: the invoker sends every article of the ticket "
                "(Ticket.Articles) with every event; long tickets will exceed the edge's "
                "max_body_bytes and be refused with 413. Set SysConfig %s for the invoker to "
                "'Articles;Article' (see connector/helpdesks/znuny/README.md)",
                self.instance,
                OMITTED_FIELDS_SETTING,
            )
        if event.ticket_id is not None and event.ticket_id != ticket.ticket_id:
            raise PayloadError(
                f"Event.TicketID {event.ticket_id} and Ticket.TicketID {ticket.ticket_id} differ"
            )
        return IncomingEvent(
            ticket_id=ticket.ticket_id,
            delivery_id=delivery_id(request),
            event=event.event,
        )

    def _check_event(self, name: str) -> None:
        if name in HANDLED_EVENTS:
            return
        if name.startswith(DF_UPDATE):
            field = name.removeprefix(DF_UPDATE)
            if field in self._managed:
                raise UnsupportedEventError(
                    f"event {name} is the connector's own field; remove it from the invoker's "
                    "events, it would loop"
                )
            if field:
                return
        handled = ", ".join([*HANDLED_EVENTS, f"{DF_UPDATE}<Name>"])
        raise UnsupportedEventError(
            f"unsupported Znuny event {name[:80]!r}; remove it from the invoker's events "
            f"(handled: {handled})"
        )


def delivery_id(request: InvokerRequest) -> str:
    """The dedup key of one invoker request; see the module docstring for why these parts.

    ``<Event>/<TicketID>/<Changed>[/article-<ArticleID>][/<FieldName>=<value digest>]/<digest>``
    where the last digest covers every ``DynamicField_*`` and the scalar ticket attributes the
    policy reads, so a retry that carries newer data (the payload is rebuilt on each attempt,
    ``Changed`` has one-second resolution) is a new delivery.
    """
    event, ticket = request.event, request.ticket
    parts = [event.event[:80], ticket.ticket_id, ticket.changed]
    if event.article_id is not None:
        parts.append(f"article-{event.article_id}")
    if event.field_name is not None:
        parts.append(f"{event.field_name[:40]}={_digest(event.value)}")
    state = {key: ticket.attribute(key) for key in _DIGEST_KEYS}
    state["DynamicFields"] = ticket.dynamic_fields()
    parts.append(_digest(state))
    key = "/".join(parts)
    if len(key) > MAX_DELIVERY_ID:  # absurdly long names or ids: keep the key unique but short
        key = f"{event.event[:60]}/{hashlib.sha256(key.encode()).hexdigest()}"
    return key


def _digest(value: object) -> str:
    text = json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _describe(exc: ValidationError) -> str:
    """Name the first bad field the way Znuny spells it (``Ticket.TicketID``)."""
    first = exc.errors()[0]
    where = ".".join(str(part) for part in first["loc"]) or "body"
    if first["type"] == "missing":
        return f"missing {where} (is the invoker of type Ticket::Generic?)"
    return f"{where}: {first['msg']}"
