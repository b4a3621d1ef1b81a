"""Shared token and HMAC signature checks (connector.helpdesks.signatures)."""

from __future__ import annotations

import pytest
from werkzeug.datastructures import Headers

from connector.errors import AuthError
from connector.helpdesks.signatures import (
    Algorithm,
    HeaderSource,
    check_signature,
    check_token,
    header,
    sign,
    signature_matches,
    tokens_match,
)

# RFC 2104 style test vector (as on Wikipedia's HMAC page)
KEY = "key"
BODY = b"The quick brown fox jumps over the lazy dog"
SHA1 = "sha1=de7c9b85b8b78aa6bc8a7a36f70a90701c9db4d9"
SHA256 = "sha256=f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8"


@pytest.mark.parametrize("headers", [{"x-fake-token": "a"}, Headers({"X-FAKE-TOKEN": "a"})])
def test_header_lookup_ignores_case(headers: HeaderSource) -> None:
    assert header(headers, "X-Fake-Token") == "a"
    assert header(headers, "X-Other") is None


def test_tokens_match_only_the_configured_secret() -> None:
    assert tokens_match("s3cret", "s3cret")
    assert not tokens_match("s3cret", "s3cret ")
    assert not tokens_match("s3cret", None)
    assert not tokens_match("s3cret", "пароль")  # non-ASCII is compared, not an exception
    assert not tokens_match("", "")  # an unset secret accepts nothing


def test_check_token_says_missing_or_wrong() -> None:
    check_token("s3cret", {"X-Fake-Token": "s3cret"}, "X-Fake-Token")
    with pytest.raises(AuthError, match="missing X-Fake-Token header"):
        check_token("s3cret", {}, "X-Fake-Token")
    with pytest.raises(AuthError, match="does not match"):
        check_token("s3cret", {"x-fake-token": "guess"}, "X-Fake-Token")


def test_sign_matches_known_vectors() -> None:
    assert sign(KEY, BODY, "sha1") == SHA1
    assert sign(KEY.encode(), BODY, "sha256") == SHA256


@pytest.mark.parametrize("given", [SHA1, SHA256, SHA1.upper().replace("SHA1=", "sha1=")])
def test_valid_signatures_pass(given: str) -> None:
    check_signature(KEY, BODY, given)
    assert signature_matches(KEY, BODY, given)


@pytest.mark.parametrize(
    ("secret", "body", "given", "algorithms", "reason"),
    [
        (KEY, BODY, None, ("sha1",), "missing X-Hub-Signature"),
        (KEY, BODY, "de7c9b85b8b78aa6bc8a7a36f70a90701c9db4d9", ("sha1",), "not of the form"),
        (KEY, BODY, SHA256, ("sha1",), "uses 'sha256'; expected one of: sha1"),
        (KEY, BODY, "md5=abc", ("sha1", "sha256"), "uses 'md5'"),
        (KEY, BODY + b" ", SHA1, ("sha1",), "does not match the body"),
        ("other", BODY, SHA1, ("sha1",), "does not match the body"),
        ("", BODY, SHA1, ("sha1",), "no secret is configured"),
    ],
)
def test_invalid_signatures_say_why(
    secret: str, body: bytes, given: str | None, algorithms: tuple[Algorithm, ...], reason: str
) -> None:
    with pytest.raises(AuthError, match=reason):
        check_signature(secret, body, given, algorithms=algorithms, name="X-Hub-Signature")
    assert not signature_matches(secret, body, given, algorithms=algorithms)
