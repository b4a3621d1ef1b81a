"""Shared fixtures: real databases for the job store (a SQLite file and a PostgreSQL database).

PostgreSQL comes from ``$TEST_POSTGRES_URL`` or 127.0.0.1:5432/test (trust auth, as on the
project's machines and CI). Without it, a throwaway cluster is started when ``initdb`` exists;
otherwise the PostgreSQL tests are skipped with the reason — except under ``CI=true``, where a
missing PostgreSQL fails the run.
"""

from __future__ import annotations

import getpass
import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from tests.processes import free_port

DEFAULT_POSTGRES = f"postgresql+psycopg://{getpass.getuser()}@127.0.0.1:5432/test"


def _reachable(url: str) -> bool:
    try:
        engine = create_engine(url, connect_args={"connect_timeout": 3})
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        engine.dispose()
        return True
    except Exception:
        return False


class _Throwaway:
    """A private PostgreSQL cluster in a temporary directory, for machines without one."""

    def __init__(self) -> None:
        self.directory = Path(tempfile.mkdtemp(prefix="bsla-pg-"))
        self.port = free_port()
        self.prefix: list[str] = []
        if os.geteuid() == 0:  # initdb refuses root: run as the postgres user
            shutil.chown(self.directory, "postgres")
            self.prefix = ["runuser", "-u", "postgres", "--"]
        data = self.directory / "data"
        subprocess.run(
            [*self.prefix, "initdb", "-D", str(data), "-A", "trust", "-U", "postgres"],
            check=True,
            capture_output=True,
        )
        subprocess.run(
            [
                *self.prefix,
                "pg_ctl",
                "-D",
                str(data),
                "-o",
                f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1",
                "-w",
                "start",
                "-l",
                str(self.directory / "log"),
            ],
            check=True,
            capture_output=True,
        )
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def stop(self) -> None:
        subprocess.run(
            [*self.prefix, "pg_ctl", "-D", str(self.directory / "data"), "-m", "immediate", "stop"],
            check=False,
            capture_output=True,
        )
        shutil.rmtree(self.directory, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_admin_url() -> Iterator[str]:
    """A URL of a PostgreSQL database in which tests may create databases."""
    url = os.environ.get("TEST_POSTGRES_URL", DEFAULT_POSTGRES)
    if _reachable(url):
        yield url
        return
    reason = f"PostgreSQL not reachable at {make_url(url).render_as_string(hide_password=True)}"
    if shutil.which("initdb") and shutil.which("pg_ctl"):
        try:
            cluster = _Throwaway()
        except (subprocess.CalledProcessError, OSError, LookupError) as exc:
            reason += f"; throwaway cluster failed: {exc}"
        else:
            try:
                yield cluster.url
            finally:
                cluster.stop()
            return
    else:
        reason += "; no initdb to start a throwaway cluster"
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (PostgreSQL tests must run in CI)")
    pytest.skip(reason)


@pytest.fixture
def postgres_url(postgres_admin_url: str) -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test, dropped afterwards."""
    name = f"bsla_{uuid.uuid4().hex[:12]}"
    admin = create_engine(postgres_admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(postgres_admin_url).set(database=name)
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The same test on a real SQLite file and on a real PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.db'}"
    return str(request.getfixturevalue("postgres_url"))
