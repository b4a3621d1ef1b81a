"""HTTP side of the fake helpdesk: check the shared token and read the ticket id of a webhook.

The fake sends ``POST`` with ``{"ticket_id": "<id>", "event": "ticket.created"}``, the header
``X-Fake-Token: <token>`` and ``X-Fake-Delivery: <uuid4>``, which stays the same across retries
of one event and is therefore the edge's deduplication key. Like real helpdesks it considers
any non-2xx answer a failure and retries.
"""

from __future__ import annotations

import hashlib

from connector.errors import PayloadError
from connector.helpdesks.base import IncomingEvent, load_json
from connector.helpdesks.signatures import HeaderSource, check_token, header

TOKEN_HEADER = "X-Fake-Token"
DELIVERY_HEADER = "X-Fake-Delivery"


class FakeReceiver:
    """:class:`~connector.helpdesks.base.WebhookReceiver` for one fake helpdesk instance.

    Args:
        instance: the configured instance name.
        token: the shared secret the fake sends in ``X-Fake-Token``; must not be empty.
    """

    kind = "fake"

    def __init__(self, instance: str, token: str) -> None:
        if not token:
            raise ValueError(f"fake instance {instance!r}: the webhook token must not be empty")
        self.instance = instance
        self._token = token
        self.success: tuple[int, dict[str, object]] = (202, {"status": "accepted"})

    def authenticate(self, headers: HeaderSource, body: bytes) -> None:
        """Raise :class:`~connector.errors.AuthError` if the token is missing or wrong."""
        check_token(self._token, headers, TOKEN_HEADER)

    def parse(self, headers: HeaderSource, body: bytes) -> IncomingEvent:
        """The ticket id, event name and delivery id of an authenticated webhook.

        Without ``X-Fake-Delivery`` the delivery id is ``sha256:<hex of the body>``, so a
        resent identical body still deduplicates.
        """
        payload = load_json(body)
        if not isinstance(payload, dict):
            raise PayloadError(f"body must be a JSON object, not {type(payload).__name__}")
        if "ticket_id" not in payload:
            raise PayloadError("missing ticket_id")
        ticket_id = payload["ticket_id"]
        if isinstance(ticket_id, bool) or not isinstance(ticket_id, str | int):
            raise PayloadError("ticket_id must be a non-empty string or an integer")
        ticket_id = str(ticket_id).strip()
        if not ticket_id:
            raise PayloadError("ticket_id must be a non-empty string or an integer")
        event = payload.get("event")
        delivery_id = (header(headers, DELIVERY_HEADER) or "").strip()
        if not delivery_id:
            delivery_id = "sha256:" + hashlib.sha256(body).hexdigest()
        return IncomingEvent(
            ticket_id=ticket_id,
            delivery_id=delivery_id,
            event=event if isinstance(event, str) else "",
        )
