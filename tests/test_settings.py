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
        ("mysql://sla:s3cret@db.example/sla", "DATABASE_URL: unsupported database 'mysql'; use"),
        ("postgresql+psycopg2://sla:s3cret@db/sla", "unsupported database 'postgresql+psycopg2'"),
        ("s3cret", "DATABASE_URL: not a database URL; use sqlite:///PATH or postgresql+psycopg"),
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
    assert any(
        issue.startswith("environment: BITRIX_SLA_WORKER_CONCURRENCY:") for issue in found
    ), found


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        # infinity passes "greater than 0", then breaks the worker's timers at start
        ("BITRIX_SLA_LEASE_SECONDS", "inf", "Input should be a finite number"),
        ("BITRIX_SLA_SETTLE_SECONDS", "nan", "Input should be a finite number"),
        # a retention beyond what a timedelta holds would crash the worker as it starts
        (
            "BITRIX_SLA_EVENT_RETENTION_DAYS",
            "1e12",
            "Input should be less than or equal to 36500",
        ),
    ],
)
def test_numbers_must_be_finite_and_sane(variable: str, value: str, expected: str) -> None:
    found = issues({variable: value})
    assert f"environment: {variable}: {expected}" in found, found


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
    assert found == [
        "environment: BITRIX_SLA_BACKUP_INTERVAL_HOURS: Input should be greater than 0"
    ]


# -- database URLs that SQLAlchemy would misread ------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "postgresql+psycopg://sla:S3cr@tail-of-secret@127.0.0.1:5432/sla",
        "postgres://sla:S3cr@tail-of-secret@db/sla",
        "postgresql+psycopg://sla:S3cr@tail/of-secret@db/sla",  # the tail in the database name
    ],
)
def test_a_password_with_an_unescaped_at_sign_is_refused(tmp_path: Path, url: str) -> None:
    """SQLAlchemy ends the password at its first ``@``: the rest became the host, and was shown
    by every message that hid "the password" (``sla:***@tail-of-secret@127.0.0.1``)."""
    for found in (
        issues({"DATABASE_URL": url}),
        issues({}, write(tmp_path, {"database_url": url})),
    ):
        assert len(found) == 1, found
        assert "database_url" in found[0] or "DATABASE_URL" in found[0]
        assert "percent-encode" in found[0] and "BITRIX_SLA_DATABASE_PASSWORD" in found[0]
        assert "S3cr" not in found[0] and "tail" not in found[0] and "secret" not in found[0]


def test_a_percent_encoded_at_sign_in_the_password_is_fine() -> None:
    from sqlalchemy.engine.url import make_url

    settings = load_settings({"DATABASE_URL": "postgresql+psycopg://sla:S3cr%40tail@db/sla"})
    url = make_url(settings.database_url.get_secret_value())
    assert (url.password, url.host) == ("S3cr@tail", "db")


@pytest.mark.parametrize(
    "url",
    [
        "host=db user=sla password=S3cr3t://x",  # a libpq keyword string, not a URL
        "password=S3cr3t sqlite://x",
    ],
)
def test_what_is_no_scheme_is_never_echoed(url: str) -> None:
    found = issues({"DATABASE_URL": url})
    assert found == [
        "environment: DATABASE_URL: not a database URL; use sqlite:///PATH or "
        "postgresql+psycopg://USER:PASSWORD@HOST:PORT/DATABASE"
    ], found


@pytest.mark.parametrize(
    ("port", "expected"),
    [
        ("notaport", "the port is not a number"),
        ("99999", "the port is not a number from 1 to 65535"),
    ],
)
def test_a_bad_port_is_a_config_error(tmp_path: Path, port: str, expected: str) -> None:
    """``…@db:notaport/sla`` passed check-config, then every command that opened the store
    ended in SQLAlchemy's ``ValueError`` traceback."""
    url = f"postgresql+psycopg://sla:S3cr3t@db:{port}/sla"
    found = issues({"DATABASE_URL": url})
    assert len(found) == 1 and found[0].startswith(f"environment: DATABASE_URL: {expected}")
    assert "S3cr3t" not in found[0] and port not in found[0].partition(expected)[0]
    found = issues({}, write(tmp_path, {"database_url": url}))
    assert found[0].startswith(f"{tmp_path / 'settings.yaml'}: database_url: {expected}")


def test_check_config_refuses_a_bad_port(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.cli import run

    monkeypatch.setenv("DATABASE_URL", "postgresql+psycopg://sla:S3cr3t@db:notaport/sla")
    for argv in (("check-config",), ("db", "upgrade")):
        code, out = run(*argv)
        assert code == 1
        said = out + capsys.readouterr().err
        assert "environment: DATABASE_URL: the port is not a number;" in said, said
        assert "Traceback" not in said and "S3cr3t" not in said


# -- the environment wins, and is named ------------------------------------------------------


@pytest.mark.parametrize(
    ("variable", "key"),
    [
        ("BITRIX_SLA_ADMIN_TOKEN", "admin_token"),
        ("DATABASE_URL", "database_url"),
        ("BITRIX_SLA_DATABASE_PASSWORD", "database_password"),
    ],
)
@pytest.mark.parametrize("spelling", ["", "_env", "_file"])
def test_the_environment_wins_over_every_spelling_of_a_secret(
    tmp_path: Path, variable: str, key: str, spelling: str
) -> None:
    """README: "the environment wins". With ``admin_token_file:`` in the file and
    ``BITRIX_SLA_ADMIN_TOKEN`` set, the service refused to start ("give one of …")."""
    secret = tmp_path / "secret"
    secret.write_text("from-the-file\n", encoding="utf-8")
    in_file = {
        "": "from-the-file",
        "_env": "FROM_THE_FILE",
        "_file": str(secret),
    }[spelling]
    data = {f"{key}{spelling}": in_file}
    values = {
        "admin_token": "env-admin-token",
        "database_url": "postgresql+psycopg://sla@env-db/sla",
        "database_password": "env-password",
    }
    environ = {variable: values[key], "FROM_THE_FILE": "from-the-file"}
    if key == "database_password":
        environ["DATABASE_URL"] = "postgresql+psycopg://sla@db/sla"
    if key == "database_url" and spelling == "":
        data[key] = "sqlite:///from-the-file.db"
    settings = load_settings(environ, write(tmp_path, data))
    if key == "database_password":
        assert settings.database_url.get_secret_value().endswith(":env-password@db/sla")
    else:
        value = getattr(settings, key)
        assert value is not None and value.get_secret_value() == values[key]


def test_errors_in_variables_name_the_variable_not_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, {"lease_seconds": 0, "instances": []})
    found = issues({"BITRIX_SLA_MAX_BODY_BYTES": "1MiB"}, path)
    assert sorted(found) == sorted(
        [
            "environment: BITRIX_SLA_MAX_BODY_BYTES: Input should be a valid integer, unable "
            "to parse string as an integer",
            f"{path}: lease_seconds: Input should be greater than 0",
        ]
    ), found


def test_a_check_of_several_keys_blames_the_environment_when_a_variable_set_the_key(
    tmp_path: Path,
) -> None:
    path = write(tmp_path, {"database_url": "sqlite:///x.db"})
    found = issues({"BITRIX_SLA_DATABASE_PASSWORD": "s3cret"}, path)
    assert found == [
        "environment: database_password: only a PostgreSQL database_url takes a password"
    ], found


# -- secrets written inline must be strings --------------------------------------------------


@pytest.mark.parametrize(
    ("line", "key"),
    [
        ("admin_token: 01234567", "admin_token"),  # YAML 1.1: octal, 342391
        ("admin_token: yes", "admin_token"),  # True
        ("admin_token: 0x1F2E", "admin_token"),  # 7982
        ("admin_token: [s3cret]", "admin_token"),
        ("database_password: 1234567", "database_password"),
        ("instances: [{name: main, kind: fake, url: x, token: 01234567}]", "instances[0].token"),
        (
            "instances: [{name: main, kind: fake, url: x, webhook_secret: 2026-01-31}]",
            "instances[0].webhook_secret",
        ),
    ],
)
def test_a_secret_that_yaml_reads_as_no_string_is_refused(
    tmp_path: Path, line: str, key: str
) -> None:
    """``admin_token: 01234567`` used to become the token ``342391``, silently."""
    path = tmp_path / "settings.yaml"
    path.write_text(line + "\n", encoding="utf-8")
    found = issues({"DATABASE_URL": "postgresql+psycopg://sla@db/sla"}, path)
    assert found == [f"{path}: {key}: must be a string; quote it"], found


def test_a_secret_option_that_yaml_reads_as_no_string_is_refused(tmp_path: Path) -> None:
    from connector.helpdesks.znuny.options import load_options

    path = write(tmp_path, {})
    path.write_text(
        "instances: [{name: zn, kind: znuny, url: 'https://h/x', webhook_secret: w,"
        " options: {user_login: u, password: 01234567, integration_user_id: 2}}]\n",
        encoding="utf-8",
    )
    (instance,) = load_settings({}, path).instances
    with pytest.raises(ConfigError) as caught:
        load_options(instance, {})
    assert [str(issue) for issue in caught.value.issues] == [
        "settings: instances.zn.options.password: must be a string; quote it"
    ]


def test_quoted_secrets_are_taken_as_written(tmp_path: Path) -> None:
    path = tmp_path / "settings.yaml"
    path.write_text("admin_token: '01234567'\n", encoding="utf-8")
    token = load_settings({}, path).admin_token
    assert token is not None and token.get_secret_value() == "01234567"


# -- inline option secrets and reprs ---------------------------------------------------------


def test_inline_option_secrets_are_not_in_reprs(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        {
            "instances": [
                {
                    "name": "main",
                    "kind": "znuny",
                    "url": "https://z.example/x",
                    "webhook_secret": "w",
                    "options": {
                        "user_login": "agent",
                        "password": "AgentS3cret",
                        "webhook_bearer_token": "Bearer-S3cret",
                        "extra": [{"client_secret": "Nested-S3cret"}],
                    },
                }
            ]
        },
    )
    settings = load_settings({}, path)
    (instance,) = settings.instances
    for text in (repr(settings), str(settings), repr(instance), str(instance)):
        assert "S3cret" not in text, text
        assert "'user_login': 'agent'" in text
    # the adapters still read the options as written
    assert instance.options["password"] == "AgentS3cret"


def test_option_secrets_still_reach_the_adapters(tmp_path: Path) -> None:
    from connector.helpdesks.znuny.options import load_options

    path = write(tmp_path, BASE)
    instance = load_settings({}, path).instances[1]
    options = load_options(instance, {})
    assert options.password.get_secret_value() == "p"
    assert "'password': '**********'" in repr(instance)


# -- an empty admin token ---------------------------------------------------------------------


@pytest.mark.parametrize("spelling", ["inline", "blank", "_file", "_env"])
def test_an_empty_admin_token_is_refused(tmp_path: Path, spelling: str) -> None:
    """An empty token turned the admin API on with a token no request can match."""
    empty = tmp_path / "empty"
    empty.write_text("\n", encoding="utf-8")
    data, key = {
        "inline": ({"admin_token": ""}, "admin_token"),
        "blank": ({"admin_token": "   "}, "admin_token"),
        "_file": ({"admin_token_file": str(empty)}, "admin_token_file"),
        "_env": ({"admin_token_env": "EMPTY"}, "admin_token_env"),
    }[spelling]
    path = write(tmp_path, data)
    found = issues({"EMPTY": ""}, path)
    assert found == [
        f"{path}: {key}: the admin token is empty; give one, or none at all to keep the "
        "admin API off"
    ], found


def test_a_blank_admin_token_variable_is_refused() -> None:
    found = issues({"BITRIX_SLA_ADMIN_TOKEN": " "})
    assert found == [
        "environment: BITRIX_SLA_ADMIN_TOKEN: the admin token is empty; give one, or none at "
        "all to keep the admin API off"
    ]
