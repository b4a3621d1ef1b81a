"""The job store's schema, engines and migrations: one SQLAlchemy Core code path, two engines.

SQLite (the embedded default, one replica) runs in WAL mode with ``synchronous=FULL`` so a
committed event survives ``kill -9`` and power loss, and every write transaction starts with
``BEGIN IMMEDIATE`` so two writers never deadlock upgrading a read lock. PostgreSQL is the
engine for several replicas (claims use ``FOR UPDATE SKIP LOCKED``).

Migrations are a numbered list applied in order on start (and by ``bitrix-sla db upgrade``);
``schema_version`` records what ran.
"""

from __future__ import annotations

import datetime as dt
import errno
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    Engine,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
    create_engine,
    event,
    func,
    inspect,
    select,
    text,
    update,
)
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.engine.url import URL, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, SQLAlchemyError

from connector.errors import StoreUnavailableError

# How long opening a PostgreSQL connection may take before it fails (unless the URL says,
# with ``?connect_timeout=N``): without it a host that drops packets hangs a worker for minutes.
CONNECT_TIMEOUT_SECONDS = 10


class UtcDateTime(TypeDecorator[dt.datetime]):
    """Aware UTC datetimes on both engines (SQLite keeps no offsets: store naive UTC)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the job store")
        value = value.astimezone(dt.UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(
        self, value: dt.datetime | None, dialect: Dialect
    ) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC)


metadata = MetaData()
Id = BigInteger().with_variant(Integer(), "sqlite")

schema_version = Table(
    "schema_version",
    metadata,
    Column("version", Integer, primary_key=True),
    Column("applied_at", UtcDateTime, nullable=False),
)

events = Table(
    "events",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("received_at", UtcDateTime, nullable=False),
    Column("instance", String(64), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("ticket_id", String(64), nullable=False),
    Column("delivery_id", String(200), nullable=False),
    Column("event", String(200), nullable=False, default=""),
    Column("body", Text, nullable=False),
    Column("job_id", Id, nullable=True),  # v1 only; since v2 events name their job by key
    Column("job_key", String(200), nullable=True),
    UniqueConstraint("kind", "instance", "delivery_id", name="events_delivery_uq"),
)
Index("events_received_idx", events.c.received_at)

jobs = Table(
    "jobs",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("key", String(200), nullable=False),  # kind:instance:ticket_id
    Column("kind", String(32), nullable=False),
    Column("instance", String(64), nullable=False),
    Column("ticket_id", String(64), nullable=False),
    Column("status", String(16), nullable=False),  # queued | running | done | dead
    Column("reason", String(32), nullable=False),  # webhook | sweep | backfill | replay
    Column("events", Integer, nullable=False, default=1),
    Column("attempts", Integer, nullable=False, default=0),
    Column("run_at", UtcDateTime, nullable=False),
    Column("settle_deadline", UtcDateTime, nullable=True),  # latest run_at the settle allows
    Column("lease_until", UtcDateTime, nullable=True),
    Column("locked_by", String(200), nullable=True),
    # a token new with every claim: a run's end and its lease renewals are fenced on it, so a
    # stale run (reaped, then claimed again, perhaps by the same worker) cannot touch the new one
    Column("claim", String(32), nullable=True),
    Column("last_error", Text, nullable=True),
    Column("outcome", String(32), nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("started_at", UtcDateTime, nullable=True),
    Column("finished_at", UtcDateTime, nullable=True),
)
# One queued and one running job per ticket. The predicates are literals on purpose: psycopg 3
# fails ON CONFLICT ... WHERE with a bound parameter once it switches to prepared statements.
QUEUED = text("status = 'queued'")
RUNNING = text("status = 'running'")
Index("jobs_one_queued", jobs.c.key, unique=True, sqlite_where=QUEUED, postgresql_where=QUEUED)
Index("jobs_one_running", jobs.c.key, unique=True, sqlite_where=RUNNING, postgresql_where=RUNNING)
Index("jobs_status_run_at", jobs.c.status, jobs.c.run_at)
Index("jobs_finished_at", jobs.c.finished_at)

decisions = Table(
    "decisions",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("job_id", Id, nullable=False),
    Column("kind", String(32), nullable=False),
    Column("instance", String(64), nullable=False),
    Column("ticket_id", String(64), nullable=False),
    Column("worker", String(200), nullable=False),
    Column("started_at", UtcDateTime, nullable=False),
    Column("finished_at", UtcDateTime, nullable=False),
    Column("duration_ms", Float, nullable=False),
    Column("outcome", String(32), nullable=False),  # applied | unchanged | failed | dead
    Column("decision", JSON, nullable=True),
    Column("plan", JSON, nullable=True),
    Column("calls", JSON, nullable=True),
    Column("error", Text, nullable=True),
)
Index("decisions_ticket_idx", decisions.c.kind, decisions.c.instance, decisions.c.ticket_id)
Index("decisions_finished_idx", decisions.c.finished_at)

schedules = Table(
    "schedules",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("next_run_at", UtcDateTime, nullable=False),
    Column("last_run_at", UtcDateTime, nullable=True),
    Column("last_owner", String(200), nullable=True),
    Column("cursor", String(64), nullable=True),
    # the time of the last tick whose run ended without error: the next run starts from it
    Column("succeeded_at", UtcDateTime, nullable=True),
    # the time of the task's first tick: until one succeeds, every run starts from there
    Column("first_run_at", UtcDateTime, nullable=True),
)


def _v1_initial(connection: Connection) -> None:
    metadata.create_all(connection)


def _add_column(connection: Connection, table: Table, name: str) -> None:
    """``ALTER TABLE … ADD COLUMN`` unless the column exists (a fresh database made by v1's
    ``create_all`` already has every column of the current tables)."""
    present = {column["name"] for column in inspect(connection).get_columns(table.name)}
    if name in present:
        return
    column = table.c[name]
    kind = column.type.compile(dialect=connection.dialect)
    connection.execute(text(f"ALTER TABLE {table.name} ADD COLUMN {name} {kind}"))


def _v2_two_statement_ingest(connection: Connection) -> None:
    """Events name their job by key (no UPDATE after the upsert), and a job keeps the latest
    time its settle window allows, so the upsert itself can push ``run_at`` back."""
    _add_column(connection, events, "job_key")
    _add_column(connection, jobs, "settle_deadline")


def _v3_periodic_success(connection: Connection) -> None:
    """A periodic task remembers its last successful tick, so a failed or interrupted sweep is
    done again from there; every tick run before counts as a success."""
    _add_column(connection, schedules, "succeeded_at")
    connection.execute(
        update(schedules)
        .where(schedules.c.succeeded_at.is_(None))
        .values(succeeded_at=schedules.c.last_run_at)
    )


def _v4_claims_and_first_ticks(connection: Connection) -> None:
    """Runs are fenced on a token of their claim rather than on the worker's name, and a
    periodic task remembers its first tick, so the runs before its first success all start
    from there. A task that ticked before knows only its last tick: it starts from that."""
    _add_column(connection, jobs, "claim")
    _add_column(connection, schedules, "first_run_at")
    connection.execute(
        update(schedules)
        .where(schedules.c.first_run_at.is_(None))
        .values(first_run_at=schedules.c.last_run_at)
    )


# version -> migration; append, never edit a released entry.
MIGRATIONS: dict[int, Callable[[Connection], None]] = {
    1: _v1_initial,
    2: _v2_two_statement_ingest,
    3: _v3_periodic_success,
    4: _v4_claims_and_first_ticks,
}
LATEST = max(MIGRATIONS)


def sqlite_path(url: str) -> Path | None:
    """The file behind a SQLite URL, or None for other engines and in-memory databases."""
    parsed = make_url(url)
    if (
        parsed.get_backend_name() != "sqlite"
        or not parsed.database
        or parsed.database == ":memory:"
    ):
        return None
    return Path(parsed.database)


#: What a URL's scheme may be (RFC 3986): anything else before ``://`` is no scheme, and may
#: be a secret (a libpq keyword string such as ``password=…://…``), so it is never shown.
URL_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*$")
_HIDDEN = "***"


def url_problem(url: str) -> str | None:
    """Why ``url`` cannot name the job store's database, or None; the text never quotes it.

    SQLAlchemy ends a URL's password at its first ``@``: the rest of the password becomes the
    host (``user:p@ss@host`` connects to ``ss@host``, sending part of the password to the DNS
    resolver) and shows up wherever the URL is shown with its password hidden. Such a URL is
    refused, as is one whose port is no number (SQLAlchemy's ``int()`` fails on it).
    """
    scheme, separator, rest = url.partition("://")
    if not separator or not URL_SCHEME.match(scheme):
        return "not a database URL"
    try:
        parsed = make_url(url)
    except ValueError:
        return "the port is not a number"
    except ArgumentError:
        return "not a database URL"
    if _misread(rest, parsed):
        return (
            "the password holds an '@' (or the URL another '@' after its credentials); "
            "percent-encode it ('@' as %40) or give the password in BITRIX_SLA_DATABASE_PASSWORD"
        )
    if parsed.port is not None and not 1 <= parsed.port <= 65535:
        return "the port is not a number from 1 to 65535"
    return None


def _misread(rest: str, parsed: URL) -> bool:
    """Whether SQLAlchemy took part of the password (or of the credentials) for what follows.

    ``rest`` is the URL after ``://`` and ``parsed`` what SQLAlchemy made of it. SQLAlchemy
    ends a password at its first ``@``; the tail of a password holding another ``@`` lands in
    the host (``p@ss@host``), in the database (``p@ss/x@host/db``) or, after a ``?`` of the
    password, in the query, where it is kept (as a key) or dropped. An ``@`` of the query
    string itself (``?application_name=svc@web``) is no problem: SQLAlchemy keeps it there.
    """
    if "@" in (parsed.host or ""):
        return True
    if parsed.password is None:
        return False
    if "@" in (parsed.database or ""):
        return True
    # The password starts after the credentials' first ':' (a user name holds none) and ends
    # at the next '@'; every '@' after that one must be one SQLAlchemy kept in a query value.
    tail = rest.partition(":")[2].partition("@")[2]
    kept = 0
    for key, value in parsed.query.items():
        if "@" in key:
            return True
        values = (value,) if isinstance(value, str) else value
        kept += sum(item.count("@") for item in values)
    return tail.count("@") > kept


def redact(url: str) -> str:
    """``url`` as it may be shown: the password, if any, as ``***``; never any of its text.

    A URL SQLAlchemy would misread (:func:`_misread`: its password holds an unescaped ``@``)
    is shown as :func:`_misread_location` says, since SQLAlchemy would take the password's
    tail for the host; any other URL as SQLAlchemy parses it (an ``@`` of its query string
    stays there); a URL that cannot be parsed is shown as its scheme, if it has one.
    """
    scheme, separator, rest = url.partition("://")
    if not separator or not URL_SCHEME.match(scheme):
        return "(not a database URL)"
    try:
        parsed = make_url(url)
    except (SQLAlchemyError, ValueError):  # not parseable: show only the part before credentials
        return f"{scheme}://…"
    if _misread(rest, parsed):
        return f"{scheme}://{_misread_location(rest)}"
    hidden = {
        key: _HIDDEN if "password" in key.lower() else value for key, value in parsed.query.items()
    }
    return parsed.set(query=hidden).render_as_string(hide_password=True)


def _misread_location(rest: str) -> str:
    """A URL SQLAlchemy would misread, after ``://``, as it may be shown: its user name, the
    password hidden, and the host and database from the last ``@`` on (the query left out).

    Nothing before the last ``@`` is shown, since any of it may be the password's. If that
    ``@`` lies in a query value (a ``=`` since the ``?`` before it), the host is not shown.
    """
    user = rest.partition(":")[0]
    head, _, tail = rest.rpartition("@")
    location, question, _ = tail.partition("?")
    if "?" in head and "=" in head.rpartition("?")[2]:
        return f"{user}:{_HIDDEN}@…"
    return f"{user}:{_HIDDEN}@{location}{'?…' if question else ''}"


@contextmanager
def opening(url: str) -> Iterator[None]:
    """Report a failure to reach or set up the database at ``url`` as one readable error.

    Raises :class:`StoreUnavailableError` naming the database (password hidden) and the
    driver's reason, in place of a driver traceback; the original stays chained for debugging.
    A URL SQLAlchemy would misread (:func:`url_problem`) is refused before anything connects.
    """
    problem = url_problem(url)
    if problem is not None:
        raise StoreUnavailableError(f"cannot open the job store at {redact(url)}: {problem}")
    try:
        yield
    except (SQLAlchemyError, OSError, ValueError) as exc:
        raise StoreUnavailableError(
            f"cannot open the job store at {redact(url)}: {_reason(exc, url)}"
        ) from exc


def driver_message(exc: BaseException) -> str:
    """What the database or the OS said, for a log line: the error's type and the first line
    of its message, without the SQL statement and its parameters (which may hold ticket data)."""
    if isinstance(exc, DBAPIError) and exc.orig is not None:
        return f"{type(exc.orig).__name__}: {_first_line(str(exc.orig))}"
    if isinstance(exc, OSError):
        return f"{type(exc).__name__}: {exc.strerror}"
    return type(exc).__name__


def _first_line(text: str) -> str:
    return next((line.strip() for line in text.splitlines() if line.strip()), "")


def _reason(exc: BaseException, url: str) -> str:
    """The first line of what the driver or the OS said, with the URL's password scrubbed."""
    if isinstance(exc, DBAPIError) and exc.orig is not None:
        text = str(exc.orig)
    elif isinstance(exc, OSError) and exc.strerror:
        text = f"{exc.strerror}: {exc.filename}" if exc.filename else exc.strerror
    elif isinstance(exc, ValueError):
        # a parsing error of the URL's parts (``int()`` of a port) quotes them: never echo it
        text = f"{type(exc).__name__} (the database URL or its options are malformed)"
    else:
        text = str(exc)
    first = _first_line(text) or type(exc).__name__
    try:
        password = make_url(url).password
    except (SQLAlchemyError, ValueError):
        return first
    return first.replace(str(password), "***") if password else first


def make_engine(url: str, **options: Any) -> Engine:
    """An engine set up for the job store's access pattern."""
    path = sqlite_path(url)
    if path is not None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except FileExistsError:  # what mkdir says when the "directory" is a file
            raise NotADirectoryError(errno.ENOTDIR, "not a directory", str(path.parent)) from None
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        options.setdefault("pool_pre_ping", True)
        options.setdefault("pool_size", 10)
        if "connect_timeout" not in parsed.query:
            options.setdefault("connect_args", {"connect_timeout": CONNECT_TIMEOUT_SECONDS})
        return create_engine(url, **options)
    engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False}, **options)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        # Reads marked read_only take no write lock; everything else locks up front.
        # Straight to the driver: this runs for every transaction, and a full SQLAlchemy
        # execution of a constant statement would cost more than the BEGIN itself.
        read_only = connection.get_execution_options().get("read_only", False)
        connection.connection.dbapi_connection.execute(  # type: ignore[union-attr]
            "BEGIN" if read_only else "BEGIN IMMEDIATE"
        )

    return engine


def current_version(engine: Engine) -> int:
    """The applied schema version, 0 for an empty database."""
    with engine.connect() as connection:
        if not inspect(connection).has_table("schema_version"):
            return 0
        version = connection.execute(select(func.max(schema_version.c.version))).scalar()
        return int(version or 0)


def upgrade(engine: Engine) -> list[int]:
    """Apply pending migrations in order; returns the versions applied (idempotent)."""
    applied: list[int] = []
    with engine.begin() as connection:
        if engine.dialect.name == "postgresql":
            # one migrator at a time across replicas
            connection.execute(text("SELECT pg_advisory_xact_lock(7426431)"))
        has_table = inspect(connection).has_table("schema_version")
        version = 0
        if has_table:
            version = int(
                connection.execute(select(func.max(schema_version.c.version))).scalar() or 0
            )
        for number in sorted(MIGRATIONS):
            if number <= version:
                continue
            MIGRATIONS[number](connection)
            connection.execute(
                schema_version.insert().values(version=number, applied_at=dt.datetime.now(dt.UTC))
            )
            applied.append(number)
    return applied
