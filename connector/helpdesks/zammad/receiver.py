"""HTTP side of a Zammad instance: check a trigger webhook's signature, read its ticket id.

How Zammad sends a webhook (facts §1.1, ``TriggerWebhookJob`` and ``UserAgent``):

* ``POST`` (7.x may be configured to ``PUT``/``PATCH``/``DELETE``; the edge route takes POST,
  so keep the default), ``Content-Type: application/json; charset=utf-8``,
  ``User-Agent: Zammad User Agent``, compact JSON body;
* ``X-Zammad-Trigger``: the trigger's name (or a scheduler job's), the only hint of the event;
* ``X-Zammad-Delivery``: the delivery job's UUID, *(inference)* the same on every retry —
  the edge's dedup key;
* ``X-Hub-Signature: sha1=<lower-case hex>`` = HMAC-SHA1 of the raw body keyed with the
  webhook's signature token; sent only when a token is set **and** the body is not empty;
  no SHA-256 variant and no timestamp, so replays can only be limited by deduplication;
* ``Authorization: Basic …`` when basic-auth user and password are set (≥ 5.4), or
  ``Authorization: Bearer …`` (7.x);
* any non-2xx answer, any redirect and a timeout (open 4 s, read 30 s) is a failure, retried
  4 times after 10/20/30/40 s, then dropped silently.

The signature is checked over the exact bytes received: Rails' ``to_json`` escapes ``<``, ``>``
and ``&`` as ``\\u003c``…, so re-serialising the parsed JSON would not reproduce them.
"""

from __future__ import annotations

import contextlib
import hashlib

from pydantic import SecretStr, ValidationError

from connector.errors import AuthError, PayloadError
from connector.helpdesks.base import IncomingEvent, load_json
from connector.helpdesks.signatures import (
    Algorithm,
    HeaderSource,
    basic_credentials,
    check_signature,
    header,
    tokens_match,
)
from connector.helpdesks.zammad.options import ZammadOptions
from connector.helpdesks.zammad.payload import WebhookPayload, check_shape

SIGNATURE_HEADER = "X-Hub-Signature"
DELIVERY_HEADER = "X-Zammad-Delivery"
TRIGGER_HEADER = "X-Zammad-Trigger"
_MAX_ID = 200
#: Zammad signs with SHA-1 only (facts §1.1); a ``sha256=`` header is not Zammad's.
_ALGORITHMS: tuple[Algorithm, ...] = ("sha1",)


class ZammadReceiver:
    """:class:`~connector.helpdesks.base.WebhookReceiver` for one Zammad instance.

    Args:
        instance: the configured instance name.
        options: the instance's validated options (which checks are on).
        secret: the webhook's HMAC SHA1 signature token; required when
            ``options.verify_signature`` is on.
    """

    kind = "zammad"

    def __init__(
        self, instance: str, options: ZammadOptions, secret: SecretStr | str | None
    ) -> None:
        value = secret.get_secret_value() if isinstance(secret, SecretStr) else (secret or "")
        if options.verify_signature and not value:
            raise ValueError(f"zammad instance {instance!r}: the webhook secret must not be empty")
        if not options.verify_signature and options.webhook_auth is None:
            raise ValueError(f"zammad instance {instance!r}: webhooks need some authentication")
        self.instance = instance
        self._options = options
        self._secret = value
        #: Zammad ignores the body of a 2xx; 202 says "stored, processed later".
        self.success: tuple[int, dict[str, object]] = (202, {"status": "accepted"})

    def authenticate(self, headers: HeaderSource, body: bytes) -> None:
        """Raise :class:`~connector.errors.AuthError` unless every configured check passes.

        With a secret configured an unsigned request is refused too: Zammad always signs a
        non-empty body when the webhook has a token, so a missing signature means the request
        is not from that webhook (or the token was removed in Zammad).
        """
        if self._options.verify_signature:
            check_signature(
                self._secret,
                body,
                header(headers, SIGNATURE_HEADER),
                algorithms=_ALGORITHMS,
                name=SIGNATURE_HEADER,
            )
        scheme = self._options.webhook_auth
        if scheme == "basic":
            self._check_basic(header(headers, "Authorization"))
        elif scheme == "bearer":
            self._check_bearer(header(headers, "Authorization"))

    def parse(self, headers: HeaderSource, body: bytes) -> IncomingEvent:
        """The ticket id, trigger name and delivery id of an authenticated webhook.

        Raises:
            PayloadError: not JSON, not the default payload, or no usable ``ticket.id``; the
                message names the field.
        """
        data = load_json(body)
        try:
            payload = WebhookPayload.model_validate(check_shape(data))
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(part) for part in first["loc"])
            message = str(first["msg"]).removeprefix("Value error, ")
            raise PayloadError(f"{where}: {message}") from None
        trigger = trigger_name(header(headers, TRIGGER_HEADER))
        return IncomingEvent(
            ticket_id=str(payload.ticket.id),
            delivery_id=delivery_id(headers, payload, trigger),
            event=trigger,
        )

    def _check_basic(self, authorization: str | None) -> None:
        scheme, _, encoded = (authorization or "").strip().partition(" ")
        if scheme.lower() != "basic" or not encoded.strip():
            raise AuthError("missing basic authentication")
        decoded = basic_credentials(encoded)
        if decoded is None:
            raise AuthError("malformed basic authentication")
        user, _, password = decoded.partition(":")
        expected_password = self._options.webhook_basic_password
        user_ok = tokens_match(self._options.webhook_basic_user or "", user)
        password_ok = tokens_match(
            expected_password.get_secret_value() if expected_password else "", password
        )
        if not (user_ok and password_ok):
            raise AuthError("basic authentication does not match")

    def _check_bearer(self, authorization: str | None) -> None:
        scheme, _, token = (authorization or "").strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise AuthError("missing bearer token")
        expected = self._options.webhook_bearer_token
        if not tokens_match(expected.get_secret_value() if expected else "", token.strip()):
            raise AuthError("bearer token does not match")


def trigger_name(value: str | None) -> str:
    """``X-Zammad-Trigger`` as the admin typed it, at most 200 characters.

    Ruby's Net::HTTP writes header values as raw UTF-8 bytes; WSGI servers decode headers as
    Latin-1, so "SLA 010 – created" arrives as "SLA 010 â\x80\x93 created" *(inference from
    both libraries' behaviour)*. Such text is decoded again; anything else is kept as is.
    """
    text = (value or "").strip()
    with contextlib.suppress(UnicodeEncodeError, UnicodeDecodeError):
        text = text.encode("latin-1").decode("utf-8")
    return text[:_MAX_ID]


def delivery_id(headers: HeaderSource, payload: WebhookPayload, trigger: str) -> str:
    """``X-Zammad-Delivery``, or a stable id derived from what identifies the change.

    Zammad always sends the header; without it (a proxy dropping headers, a hand-made test
    request) the id is a hash of trigger name, ticket id, ``updated_at`` and article id. The
    payload is rebuilt on each retry, but these stay the same until the ticket changes again,
    and a later change deserves its own event anyway. An over-long header is hashed.
    """
    given = (header(headers, DELIVERY_HEADER) or "").strip()
    if given:
        if len(given) <= _MAX_ID:
            return given
        return "sha256:" + hashlib.sha256(given.encode()).hexdigest()
    parts = [
        trigger,
        str(payload.ticket.id),
        payload.ticket.updated_at or "",
        str(payload.article.id or ""),
    ]
    digest = hashlib.sha256("\x1f".join(parts).encode()).hexdigest()
    return f"derived:{digest}"
