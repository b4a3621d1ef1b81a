"""Bearer-token check for the read-only admin API.

The admin API shows ticket ids, errors and decisions, so it is off unless an operator sets
``BITRIX_SLA_ADMIN_TOKEN``; when off its routes are not registered, so every method on
``/admin/...`` answers 404 as if it did not exist. The comparison is
constant-time (:func:`hmac.compare_digest`) so response timing says nothing about the token.
"""

from __future__ import annotations

import hmac

from pydantic import SecretStr

BEARER = "bearer"
#: Sent with a 401 so clients know which scheme to use (RFC 6750).
CHALLENGE = 'Bearer realm="bitrix-sla-admin"'


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, or None for anything else."""
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != BEARER or not token:
        return None
    return token


def admin_allowed(expected: SecretStr, authorization: str | None) -> bool:
    """Whether the request's bearer token equals the configured admin token.

    An empty configured token never matches, so a blank environment variable cannot open the
    admin API to everyone.
    """
    wanted = expected.get_secret_value()
    given = bearer_token(authorization)
    if not wanted or given is None:
        return False
    return hmac.compare_digest(wanted.encode("utf-8"), given.encode("utf-8"))
