"""Settings: a YAML file overlaid by the environment, secrets by reference, clear errors."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings

from connector.errors import ConfigError
from connector.helpdesks.registry import build_all, close_adapters
from connector.settings import DEFAULT_DATABASE_URL, load_settings
from tests.strategies import json_values, one_change

INSTANCE = {"name": "main", "kind": "zammad", "url": "https://helpdesk.example"}


def write(tmp_path: Path, data: object) -> Path:
    path = tmp_path / "settings.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


def issues(environ: dict[str, str], file: Path | None = None) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_settings(environ, file)
    return [str(issue) for issue in caught.value.issues]


def test_defaults_without_anything() -> None:
    settings = load_settings({})
    assert settings.database_url.get_secret_value() == DEFAULT_DATABASE_URL
    assert settings.is_sqlite
    assert settings.instances == ()
    assert settings.admin_token is None


def test_environment_wins_over_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, {"lease_seconds": 10, "worker_concurrency": 2})
    settings = load_settings({"BITRIX_SLA_LEASE_SECONDS": "45"}, path)
    assert (settings.lease_seconds, settings.worker_concurrency) == (45, 2)
    settings = load_settings({"BITRIX_SLA_CONFIG": str(path)})
    assert settings.lease_seconds == 10


def test_secrets_come_from_the_environment_or_files(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("file-token\n", encoding="utf-8")
    path = write(
        tmp_path,
        {
            "admin_token_env": "ADMIN",
            "instances": [
                {**INSTANCE, "token_file": str(token_file), "webhook_secret_env": "HOOK"}
            ],
        },
    )
    settings = load_settings({"ADMIN": "admin-secret", "HOOK": "hook-secret"}, path)
    (instance,) = settings.instances
    assert instance.token is not None and instance.token.get_secret_value() == "file-token"
    assert instance.webhook_secret is not None
    assert instance.webhook_secret.get_secret_value() == "hook-secret"
    assert settings.admin_token is not None
    # secrets never show up in reprs or dumps
    text = repr(settings) + settings.model_dump_json()
    assert "admin-secret" not in text and "hook-secret" not in text and "file-token" not in text


def test_database_url_with_a_password_is_hidden() -> None:
    url = "postgresql+psycopg://sla:s3cret@db.example/sla"
    settings = load_settings({"DATABASE_URL": url})
    assert not settings.is_sqlite
    assert "s3cret" not in repr(settings)


@pytest.mark.parametrize(
    ("given", "meant"),
    [
        ("postgres://sla:pw@db.example/sla", "postgresql+psycopg://sla:pw@db.example/sla"),
        ("postgresql://sla@db.example:6432/sla", "postgresql+psycopg://sla@db.example:6432/sla"),
        ("postgresql+psycopg://sla@db/sla", "postgresql+psycopg://sla@db/sla"),
        ("sqlite:////var/lib/sla.db", "sqlite:////var/lib/sla.db"),
    ],
)
def test_plain_postgres_urls_name_the_installed_driver(given: str, meant: str) -> None:
    assert load_settings({"DATABASE_URL": given}).database_url.get_secret_value() == meant


@pytest.mark.parametrize("password", ["plain", "p@ss:w/rd?#%41 é", "%"])
def test_a_database_password_of_any_characters_reaches_the_driver(
    tmp_path: Path, password: str
) -> None:
    from sqlalchemy import create_engine
    from sqlalchemy.engine.url import make_url

    secret = tmp_path / "db-password"
    secret.write_text(password + "\n", encoding="utf-8")
    path = write(tmp_path, {"database_password_file": str(secret)})
    settings = load_settings({"DATABASE_URL": "postgres://sla@db.example:5432/sla"}, path)
    url = make_url(settings.database_url.get_secret_value())
    assert (url.drivername, url.username, url.host, url.port, url.database) == (
        "postgresql+psycopg",
        "sla",
        "db.example",
        5432,
        "sla",
    )
    # what SQLAlchemy hands psycopg when it connects: the password as written, not as escaped
    engine = create_engine(url)
    _args, kwargs = engine.dialect.create_connect_args(engine.url)
    assert (kwargs["password"], kwargs["host"], kwargs["user"]) == (password, "db.example", "sla")
    assert password not in repr(settings)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("sqlite:///./data/sla.db", "database_password: only a PostgreSQL database_url takes"),
        ("postgresql+psycopg://sla:other@db/sla", "database_url holds a password too"),
    ],
)
def test_a_database_password_needs_a_postgresql_url_without_one(url: str, expected: str) -> None:
    found = issues({"DATABASE_URL": url, "BITRIX_SLA_DATABASE_PASSWORD": "s3cret"})
    assert any(expected in issue for issue in found), found
    assert not any("s3cret" in issue or "other" in issue for issue in found), found


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("mysql://sla:s3cret@db.example/sla", "database_url: unsupported database 'mysql'; use"),
        ("postgresql+psycopg2://sla:s3cret@db/sla", "unsupported database 'postgresql+psycopg2'"),
        ("s3cret", "database_url: not a database URL; use sqlite:///PATH or postgresql+psycopg"),
    ],
)
def test_unsupported_database_urls_are_refused_without_their_secrets(
    url: str, expected: str
) -> None:
    found = issues({"DATABASE_URL": url})
    assert any(expected in issue for issue in found), found
    assert not any("s3cret" in issue for issue in found), found


@pytest.mark.parametrize(
    ("data", "environ", "expected"),
    [
        # a negative number names its key
        ({"lease_seconds": -1}, {}, "lease_seconds: Input should be greater than 0"),
        # an unknown key is refused, not ignored
        ({"lease_secs": 5}, {}, "lease_secs: Extra inputs are not permitted"),
        # an instance name that would not fit in a URL
        (
            {"instances": [{**INSTANCE, "name": "Main Desk"}]},
            {},
            "instances[0]: name 'Main Desk': use lower-case letters",
        ),
        # a secret named by an unset variable
        ({"instances": [{**INSTANCE, "token_env": "NOPE"}]}, {}, "NOPE is not set"),
        # two ways of giving one secret
        (
            {"instances": [{**INSTANCE, "token": "a", "token_env": "B"}]},
            {"B": "b"},
            "give one of token, token_env, token_file",
        ),
        # the same instance twice
        ({"instances": [INSTANCE, INSTANCE]}, {}, "instance zammad/main is listed twice"),
        # not a list (a number was a TypeError; a mapping was read as a list of its keys)
        ({"instances": 1.5}, {}, "instances: expected a list of instances, not float"),
        (
            {"instances": {"main": INSTANCE}},
            {},
            "instances: expected a list of instances, not dict",
        ),
    ],
)
def test_errors_name_what_is_wrong(
    tmp_path: Path, data: object, environ: dict[str, str], expected: str
) -> None:
    found = issues(environ, write(tmp_path, data))
    assert any(expected in issue for issue in found), found


def test_environment_values_are_validated() -> None:
    found = issues({"BITRIX_SLA_WORKER_CONCURRENCY": "many"})
    assert any(issue.startswith("environment: worker_concurrency:") for issue in found), found


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        # infinity passes "greater than 0", then breaks the worker's timers at start
        ("BITRIX_SLA_LEASE_SECONDS", "inf", "lease_seconds: Input should be a finite number"),
        ("BITRIX_SLA_SETTLE_SECONDS", "nan", "settle_seconds: Input should be a finite number"),
        # a retention beyond what a timedelta holds would crash the worker as it starts
        (
            "BITRIX_SLA_EVENT_RETENTION_DAYS",
            "1e12",
            "event_retention_days: Input should be less than or equal to 36500",
        ),
    ],
)
def test_numbers_must_be_finite_and_sane(variable: str, value: str, expected: str) -> None:
    found = issues({variable: value})
    assert any(expected in issue for issue in found), found


def test_a_file_that_is_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "settings.yaml"
    path.write_bytes("# настройки\ninstances: []\n".encode("cp1251"))
    assert issues({}, path) == [f"{path}: line 1: not UTF-8 (byte 0xed); save the file as UTF-8"]


def test_a_file_that_is_not_a_mapping(tmp_path: Path) -> None:
    found = issues({}, write(tmp_path, ["a", "list"]))
    assert found == [f"{tmp_path / 'settings.yaml'}: expected a mapping at the top"]


BASE = {
    "database_url": "sqlite:///x.db",
    "admin_token": "admin",
    "event_retention_days": 30,
    "instances": [
        {**INSTANCE, "token": "a", "webhook_secret": "b", "options": {"tag_prefix": "sla:"}},
        {
            "name": "zn",
            "kind": "znuny",
            "url": "https://helpdesk.example/otrs/nph-genericinterface.pl/Webservice/BitrixSLA",
            "webhook_secret": "b",
            "options": {"user_login": "u", "password": "p", "integration_user_id": 2},
        },
    ],
}


@settings(max_examples=150, deadline=None)
@given(one_change(BASE) | json_values)
def test_any_settings_file_loads_or_names_the_problem(document: object) -> None:
    """A settings file with one value anywhere replaced or removed, or any YAML data at all:
    the settings and every instance's options load, or ConfigError names the file and a
    reason; never another exception (``instances: 1.5`` was a TypeError)."""
    with tempfile.TemporaryDirectory() as directory:
        path = write(Path(directory), document)
        try:
            close_adapters(build_all(load_settings({}, path)))
        except ConfigError as exc:
            found = exc.issues
        else:
            return
    assert found
    assert all(issue.file == str(path) and issue.message for issue in found), found


def test_periodic_backups_from_the_environment() -> None:
    settings = load_settings(
        {"BITRIX_SLA_BACKUP_DIR": "/var/backups/sla", "BITRIX_SLA_BACKUP_KEEP": "3"}
    )
    assert (settings.backup_dir, settings.backup_keep) == (Path("/var/backups/sla"), 3)
    assert settings.backup_interval_hours == 24
    found = issues({"BITRIX_SLA_BACKUP_DIR": "/b", "BITRIX_SLA_BACKUP_INTERVAL_HOURS": "0"})
    assert found == ["environment: backup_interval_hours: Input should be greater than 0"]
