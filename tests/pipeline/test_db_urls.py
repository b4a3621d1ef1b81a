"""How the job store shows and opens database URLs: never a password's text, never a traceback.

SQLAlchemy ends a URL's password at its first ``@``, so the rest of a password holding an
unescaped ``@`` becomes the host: a mask of "the password" and the driver's message (which
names the host) showed it. A port that is no number fails in SQLAlchemy's ``int()``.
"""

from __future__ import annotations

import pytest

from connector.errors import StoreUnavailableError
from connector.pipeline import db
from connector.pipeline.store import JobStore


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (
            "postgresql+psycopg://sla:S3cr@tail-of-secret@127.0.0.1:1/sla",
            "postgresql+psycopg://sla:***@127.0.0.1:1/sla",
        ),
        (
            "postgresql+psycopg://sla:S3cr@tail/of-secret@db/sla?sslmode=require",
            "postgresql+psycopg://sla:***@db/sla?…",
        ),
        ("postgresql+psycopg://sla:S3cret@db:notaport/sla", "postgresql+psycopg://…"),
        ("host=db user=sla password=S3cret://x", "(not a database URL)"),
        (
            "postgresql+psycopg://sla@db/sla?password=S3cret",
            "postgresql+psycopg://sla@db/sla?password=%2A%2A%2A",
        ),
        ("postgresql+psycopg://sla:S3cret@db/sla", "postgresql+psycopg://sla:***@db/sla"),
        ("sqlite:///./data/sla.db", "sqlite:///./data/sla.db"),
        (
            "postgresql+psycopg://sla:S3cr?et@tail@db/sla",
            "postgresql+psycopg://sla:***@db/sla",
        ),
        (
            "postgresql+psycopg://sla:S3cr@tail@db/sla?application_name=svc@web",
            "postgresql+psycopg://sla:***@…",
        ),
    ],
)
def test_redact_never_shows_password_text(url: str, shown: str) -> None:
    assert db.redact(url) == shown


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("postgresql+psycopg://sla:S3cr@tail-of-secret@127.0.0.1:1/sla", "percent-encode it"),
        ("postgresql+psycopg://sla:S3cret@db:notaport/sla", "the port is not a number"),
        ("postgresql+psycopg://sla:S3cret@db:70000/sla", "from 1 to 65535"),
        # a '?' in the password is no query: the '@' after it still ends the host
        ("postgresql+psycopg://sla:S3c?r@tail@127.0.0.1:1/sla", "percent-encode it"),
        # SQLAlchemy would take the password's tail after its '?' for a query and drop it
        ("postgresql+psycopg://sla:S3cr@tail?x@127.0.0.1:1/sla", "percent-encode it"),
        ("postgresql+psycopg://sla:S3cr@tail/x@127.0.0.1:1/sla", "percent-encode it"),
    ],
)
def test_a_url_sqlalchemy_would_misread_is_refused_before_connecting(url: str, reason: str) -> None:
    with pytest.raises(StoreUnavailableError) as caught:
        JobStore.open(url)
    message = str(caught.value)
    assert message.startswith("cannot open the job store at postgresql+psycopg://"), message
    assert reason in message
    assert "S3c" not in message and "tail" not in message and "notaport" not in message


def test_a_value_error_while_opening_is_one_readable_error() -> None:
    """A ``ValueError`` from the driver's setup (a malformed option) is reported like any
    other failure to open the store, without echoing the text it quotes."""
    url = "postgresql+psycopg://sla:S3cret@db/sla"
    with pytest.raises(StoreUnavailableError) as caught, db.opening(url):
        raise ValueError("invalid literal for int() with base 10: 'S3cret'")
    message = str(caught.value)
    assert message == (
        "cannot open the job store at postgresql+psycopg://sla:***@db/sla: ValueError (the "
        "database URL or its options are malformed)"
    )
    assert isinstance(caught.value.__cause__, ValueError)


QUERY_AT_URLS = [
    (
        "postgresql+psycopg://app:pw@db/sla?application_name=svc@web",
        "postgresql+psycopg://app:***@db/sla?application_name=svc%40web",
    ),
    (
        "postgresql+psycopg://app:pw@db/sla?sslrootcert=/etc/certs/ca@2025.pem",
        "postgresql+psycopg://app:***@db/sla?sslrootcert=%2Fetc%2Fcerts%2Fca%402025.pem",
    ),
    (
        "postgresql+psycopg://app:p%40ss@db:5432/sla?application_name=svc@web",
        "postgresql+psycopg://app:***@db:5432/sla?application_name=svc%40web",
    ),
    (
        "postgresql+psycopg://app:pw@/sla?host=/run/postgresql&application_name=a@b",
        "postgresql+psycopg://app:***@/sla?application_name=a%40b&host=%2Frun%2Fpostgresql",
    ),
]


@pytest.mark.parametrize(("url", "shown"), QUERY_AT_URLS)
def test_an_at_sign_in_the_query_string_is_no_password_at_sign(url: str, shown: str) -> None:
    """SQLAlchemy keeps an ``@`` of the query string in the query: such a URL is valid, and
    is shown with its real host and no password text."""
    assert db.url_problem(url) is None
    assert db.redact(url) == shown
    assert "pw" not in shown and "p%40ss" not in shown


@pytest.mark.parametrize(
    "url",
    [
        "postgresql+psycopg://app:a?b@c@host/sla",
        "postgresql+psycopg://app:a?b@c@host/sla?application_name=svc@web",
    ],
)
def test_a_question_mark_in_the_password_does_not_hide_its_at_sign(url: str) -> None:
    problem = db.url_problem(url)
    assert problem is not None and "percent-encode it" in problem
    shown = db.redact(url)
    assert shown.startswith("postgresql+psycopg://app:***@"), shown
    assert "a?b" not in shown and "c@" not in shown
