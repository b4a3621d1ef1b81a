"""Checking that a webhook really comes from the helpdesk: shared tokens and HMAC signatures.

Helpdesks prove a webhook is theirs in one of two ways: a secret sent as-is in a header
(Znuny's ``AdditionalHeaders``, the fake's ``X-Fake-Token``), or an HMAC of the raw body under a
shared key (Zammad's ``X-Hub-Signature: sha1=<lower-case hex>``, HMAC-SHA1 only, no timestamp;
GitHub-style ``sha256=<hex>`` for others). Every comparison here is constant-time
(:func:`hmac.compare_digest`) so response timing leaks nothing about the secret, and the
signature must be computed over the exact bytes received, before any JSON parsing.

Header names are looked up case-insensitively because the edge may hand over a werkzeug
``Headers`` object or a plain dict with whatever spelling the client used.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from collections.abc import Collection, Iterable
from typing import Literal, Protocol

from connector.errors import AuthError

Algorithm = Literal["sha1", "sha256"]
ALGORITHMS: tuple[Algorithm, ...] = ("sha1", "sha256")


class HeaderSource(Protocol):
    """What both a plain ``dict`` and werkzeug's ``Headers`` offer (``Headers`` is no Mapping)."""

    def get(self, key: str, /) -> str | None: ...

    def items(self) -> Iterable[tuple[str, str]]: ...


def header(headers: HeaderSource, name: str) -> str | None:
    """The value of header ``name`` in any spelling, or None if it was not sent."""
    value = headers.get(name)
    if value is not None:
        return value
    wanted = name.lower()
    for key, found in headers.items():
        if key.lower() == wanted:
            return found
    return None


def tokens_match(expected: str, given: str | None) -> bool:
    """Whether ``given`` equals the configured secret, compared in constant time.

    An empty configured secret never matches: an unset token must not accept every request.
    """
    if not expected or given is None:
        return False
    return hmac.compare_digest(expected.encode(), given.encode())


#: whitespace a wrapped base64 text may carry: Perl's ``encode_base64`` (Znuny's invoker) breaks
#: its output into 76-character lines, and LWP sends each line break of a header as a space
_FOLDS = re.compile(r"[ \t]+")


def basic_credentials(encoded: str) -> str | None:
    """The ``user:password`` a Basic ``Authorization`` value's base64 text holds, read as UTF-8
    (RFC 7617); None when it is not base64 of UTF-8 text. Spaces and tabs inside are ignored."""
    try:
        return base64.b64decode(_FOLDS.sub("", encoded), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None


def sign(secret: str | bytes, body: bytes, algorithm: Algorithm = "sha256") -> str:
    """``"<algorithm>=<lower-case hex HMAC of body>"``, as a helpdesk would send it."""
    key = secret.encode() if isinstance(secret, str) else secret
    digest = hmac.new(key, body, getattr(hashlib, algorithm)).hexdigest()
    return f"{algorithm}={digest}"


def signature_matches(
    secret: str | bytes,
    body: bytes,
    given: str | None,
    *,
    algorithms: Collection[Algorithm] = ALGORITHMS,
) -> bool:
    """Whether ``given`` (``sha1=<hex>`` or ``sha256=<hex>``) signs ``body`` with ``secret``."""
    try:
        check_signature(secret, body, given, algorithms=algorithms)
    except AuthError:
        return False
    return True


def check_token(expected: str, headers: HeaderSource, name: str) -> None:
    """Raise :class:`AuthError` saying whether header ``name`` is missing or wrong."""
    given = header(headers, name)
    if not given:
        raise AuthError(f"missing {name} header")
    if not tokens_match(expected, given):
        raise AuthError(f"{name} header does not match the configured token")


def check_signature(
    secret: str | bytes,
    body: bytes,
    given: str | None,
    *,
    algorithms: Collection[Algorithm] = ALGORITHMS,
    name: str = "signature",
) -> None:
    """Raise :class:`AuthError` unless ``given`` is a valid HMAC signature of ``body``.

    Args:
        secret: the shared key configured on both sides; an empty key is refused.
        body: the raw request body, exactly as received.
        given: the header value, e.g. ``"sha1=5d61..."``; hex may be in any case.
        algorithms: which digests this helpdesk may use (Zammad: only ``sha1``).
        name: the header name, for the error message.
    """
    if not secret:
        raise AuthError(f"{name} cannot be checked: no secret is configured")
    if not given:
        raise AuthError(f"missing {name}")
    algorithm, sep, digest = given.strip().partition("=")
    algorithm = algorithm.lower()
    if not sep or not digest:
        raise AuthError(f"{name} is not of the form <algorithm>=<hex>")
    chosen = next((known for known in algorithms if known == algorithm), None)
    if chosen is None or chosen not in ALGORITHMS:
        allowed = ", ".join(sorted(algorithms))
        raise AuthError(f"{name} uses {algorithm!r}; expected one of: {allowed}")
    expected = sign(secret, body, chosen)
    if not hmac.compare_digest(expected.encode(), f"{chosen}={digest.lower()}".encode()):
        raise AuthError(f"{name} does not match the body")
