"""Service settings: environment variables, optionally a YAML file, validated once at start.

Secrets (helpdesk API tokens, webhook secrets, the admin token, a database URL with a password)
come from the environment or from mounted files and are held as ``SecretStr``, so they never
show up in logs, reprs or error messages.

Environment (all optional):
    BITRIX_SLA_CONFIG          path of a YAML settings file (keys as below, lower-case)
    DATABASE_URL               ``sqlite:///./data/bitrix-sla.db`` (default) or
                               ``postgresql+psycopg://user:pass@host/db`` (``postgresql://``
                               and ``postgres://`` mean the same)
    BITRIX_SLA_DATABASE_PASSWORD  PostgreSQL password, when the URL leaves it out (any
                               characters; also ``database_password_file`` in the file)
    BITRIX_SLA_MAPPINGS        mappings directory
    BITRIX_SLA_ADMIN_TOKEN     bearer token for ``/admin/*``; unset = admin endpoints off
    BITRIX_SLA_MAX_BODY_BYTES  largest accepted webhook body (default 1 MiB)
    BITRIX_SLA_LEASE_SECONDS, BITRIX_SLA_MAX_ATTEMPTS, BITRIX_SLA_MAX_AGE_HOURS,
    BITRIX_SLA_BACKOFF_BASE_SECONDS, BITRIX_SLA_BACKOFF_CAP_SECONDS,
    BITRIX_SLA_EVENT_RETENTION_DAYS, BITRIX_SLA_RECONCILE_INTERVAL_SECONDS,
    BITRIX_SLA_WORKER_CONCURRENCY, BITRIX_SLA_SETTLE_SECONDS, BITRIX_SLA_SETTLE_MAX_SECONDS
Helpdesk instances are listed in the settings file (``instances:``); each names its secrets
indirectly: ``token_env: ZAMMAD_TOKEN`` or ``token_file: /run/secrets/zammad-token`` (likewise
``webhook_secret_env`` / ``webhook_secret_file``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from sqlalchemy.engine.url import make_url
from sqlalchemy.exc import ArgumentError

from connector.errors import SETTINGS_FILE, ConfigError, ConfigIssue
from connector.pipeline.db import URL_SCHEME, url_problem
from connector.secrets import SecretError, resolve_secret

DEFAULT_DATABASE_URL = "sqlite:///./data/bitrix-sla.db"
# The URL schemes the job store takes, and the SQLAlchemy dialect+driver each one means: the
# plain PostgreSQL spellings that hosting platforms hand out name the one driver installed.
_DATABASE_SCHEMES = {
    "sqlite": "sqlite",
    "sqlite+pysqlite": "sqlite+pysqlite",
    "postgresql+psycopg": "postgresql+psycopg",
    "postgresql": "postgresql+psycopg",
    "postgres": "postgresql+psycopg",
}
_DATABASE_HINT = "use sqlite:///PATH or postgresql+psycopg://USER:PASSWORD@HOST:PORT/DATABASE"
#: the most worker threads (slots) one process runs: the setting's bound and ``--concurrency``'s
MAX_WORKER_CONCURRENCY = 64
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")


def _secret(
    data: dict[str, Any], key: str, environ: Mapping[str, str], where: str = ""
) -> SecretStr | None:
    """Resolve ``key`` given inline, as ``key_env`` or as ``key_file`` (:mod:`connector.secrets`).

    Settings errors are plain ``ValueError`` texts that start with the key path (``load_settings``
    turns them into one issue of the settings file), so the path (``where``, then the offending
    key) is put into the message here.
    """
    try:
        return resolve_secret(data, key, environ)
    except SecretError as exc:
        path = f"{where}.{exc.key}" if where else exc.key
        raise ValueError(f"{path}: {exc}") from None


#: Words that make an option a secret (``password``, ``webhook_bearer_token``…): its value is
#: masked in reprs. ``<key>_env`` and ``<key>_file`` name where a secret is, and are shown.
_SECRET_OPTION = re.compile(r"password|token|secret", re.IGNORECASE)
_MASK = "**********"
#: A model validator's message starts with the key it blames: ``database_password: …``.
_MODEL_KEY = re.compile(r"^([a-z_]+): ")


def masked_options(value: Any) -> Any:
    """``value`` with the values of secret-named keys (at any depth) replaced by a mask."""
    if isinstance(value, Mapping):
        return {
            key: _MASK
            if isinstance(key, str)
            and _SECRET_OPTION.search(key)
            and not key.endswith(("_env", "_file"))
            and item is not None
            else masked_options(item)
            for key, item in value.items()
        }
    if isinstance(value, list | tuple):
        return [masked_options(item) for item in value]
    return value


class InstanceSettings(BaseModel):
    """One helpdesk the connector serves."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    name: str = Field(description="URL-safe name: /webhooks/<kind>/<name>")
    kind: str = Field(description="adapter kind: zammad, znuny (or fake, for tests)")
    url: str = Field(description="base URL of the helpdesk")
    token: SecretStr | None = None
    webhook_secret: SecretStr | None = None
    verify_tls: bool = True
    timeout_seconds: float = Field(default=10.0, gt=0)
    options: dict[str, Any] = Field(default_factory=dict, description="adapter-specific settings")

    @model_validator(mode="after")
    def _name_is_url_safe(self) -> InstanceSettings:
        if not _NAME.match(self.name):
            raise ValueError(f"name {self.name!r}: use lower-case letters, digits, '-' and '_'")
        return self

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        """The fields for ``repr`` and ``str``, secrets given inline in ``options`` masked.

        The adapters resolve and validate their options later (and hold secrets as
        ``SecretStr``); until then an agent's password sits here as a plain string.
        """
        for name, value in super().__repr_args__():
            yield name, masked_options(value) if name == "options" else value


class Settings(BaseModel):
    """Everything the service needs to run, validated."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    database_url: SecretStr = SecretStr(DEFAULT_DATABASE_URL)
    database_password: SecretStr | None = Field(
        default=None, description="PostgreSQL password kept out of the URL, any characters"
    )
    mappings_dir: Path | None = None
    admin_token: SecretStr | None = None
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024)
    lease_seconds: float = Field(default=30.0, gt=0)
    max_attempts: int = Field(default=12, ge=1)
    max_age_hours: float = Field(default=48.0, gt=0)
    backoff_base_seconds: float = Field(default=2.0, gt=0)
    backoff_cap_seconds: float = Field(default=600.0, gt=0)
    event_retention_days: float = Field(default=30.0, gt=0, le=36500)
    reconcile_interval_seconds: float = Field(default=300.0, gt=0)
    worker_concurrency: int = Field(default=4, ge=1, le=MAX_WORKER_CONCURRENCY)
    settle_seconds: float = Field(default=1.0, ge=0, description="debounce per ticket")
    settle_max_seconds: float = Field(default=10.0, ge=0)
    group_commit: bool = Field(default=True, description="concurrent webhooks share a commit")
    backup_dir: Path | None = Field(
        default=None, description="SQLite only: where the worker puts its periodic backups"
    )
    backup_interval_hours: float = Field(default=24.0, gt=0, le=8760)
    backup_keep: int = Field(default=7, ge=1, le=10000)
    instances: tuple[InstanceSettings, ...] = ()
    _source: str = PrivateAttr(default=SETTINGS_FILE)

    @property
    def source(self) -> str:
        """Where these settings came from, for messages: the file's path, or ``environment``."""
        return self._source

    @model_validator(mode="before")
    @classmethod
    def _password_into_url(cls, data: Any) -> Any:
        """Put ``database_password`` into ``database_url``, escaped as a URL needs it.

        A password given on its own may hold any character (``@``, ``/``, ``%``…), which a URL
        written by hand, or by a chart's template, would have to percent-encode.
        """
        if not isinstance(data, dict) or data.get("database_password") is None:
            return data
        password = _reveal(data["database_password"])
        try:
            url = make_url(_reveal(data.get("database_url", DEFAULT_DATABASE_URL)))
        except (ArgumentError, ValueError):
            return data  # the URL's own check names what is wrong with it
        if url.get_backend_name() not in ("postgresql", "postgres"):
            raise ValueError("database_password: only a PostgreSQL database_url takes a password")
        if url.password is not None:
            raise ValueError(
                "database_password: database_url holds a password too; give it in one place"
            )
        merged = url.set(password=password).render_as_string(hide_password=False)
        return {**data, "database_url": SecretStr(merged)}

    @field_validator("database_url")
    @classmethod
    def _supported_database(cls, value: SecretStr) -> SecretStr:
        """A URL for SQLite or PostgreSQL, ``postgres://`` spelled as the installed driver's.

        The messages name the scheme at most, never the rest: the URL may hold a password. What
        stands before ``://`` is named only if it looks like a scheme: in a libpq keyword string
        (``host=db password=…``) it is a secret. A URL SQLAlchemy would misread (a password with
        an unescaped ``@``, a port that is no number) is refused here, not when it is opened.
        """
        scheme, separator, rest = value.get_secret_value().partition("://")
        if not separator or not URL_SCHEME.match(scheme):
            raise ValueError(f"not a database URL; {_DATABASE_HINT}")
        dialect = _DATABASE_SCHEMES.get(scheme.lower())
        if dialect is None:
            raise ValueError(f"unsupported database {scheme!r}; {_DATABASE_HINT}")
        problem = url_problem(value.get_secret_value())
        if problem is not None:
            raise ValueError(f"{problem}; {_DATABASE_HINT}")
        return value if dialect == scheme else SecretStr(f"{dialect}://{rest}")

    @field_validator("admin_token")
    @classmethod
    def _admin_token_not_blank(cls, value: SecretStr | None) -> SecretStr | None:
        """An empty token would turn the admin API on with a token no request can match."""
        if value is not None and not value.get_secret_value().strip():
            raise ValueError(
                "the admin token is empty; give one, or none at all to keep the admin API off"
            )
        return value

    @model_validator(mode="after")
    def _backups_of_sqlite_only(self) -> Settings:
        if self.backup_dir is not None and not self.is_sqlite:
            raise ValueError(
                "backup_dir: periodic backups copy the SQLite store; back up PostgreSQL with "
                "its own tools (pg_dump, or your database service's backups)"
            )
        return self

    @model_validator(mode="after")
    def _unique_instances(self) -> Settings:
        seen: set[tuple[str, str]] = set()
        for instance in self.instances:
            key = (instance.kind, instance.name)
            if key in seen:
                raise ValueError(f"instance {instance.kind}/{instance.name} is listed twice")
            seen.add(key)
        return self

    def instance(self, kind: str, name: str) -> InstanceSettings | None:
        """The configured instance ``kind``/``name``, if any."""
        return next((i for i in self.instances if i.kind == kind and i.name == name), None)

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.get_secret_value().startswith("sqlite")


def _reveal(value: object) -> str:
    return value.get_secret_value() if isinstance(value, SecretStr) else str(value)


_ENV_KEYS = {
    "DATABASE_URL": "database_url",
    "BITRIX_SLA_DATABASE_PASSWORD": "database_password",
    "BITRIX_SLA_MAPPINGS": "mappings_dir",
    "BITRIX_SLA_ADMIN_TOKEN": "admin_token",
    "BITRIX_SLA_MAX_BODY_BYTES": "max_body_bytes",
    "BITRIX_SLA_LEASE_SECONDS": "lease_seconds",
    "BITRIX_SLA_MAX_ATTEMPTS": "max_attempts",
    "BITRIX_SLA_MAX_AGE_HOURS": "max_age_hours",
    "BITRIX_SLA_BACKOFF_BASE_SECONDS": "backoff_base_seconds",
    "BITRIX_SLA_BACKOFF_CAP_SECONDS": "backoff_cap_seconds",
    "BITRIX_SLA_EVENT_RETENTION_DAYS": "event_retention_days",
    "BITRIX_SLA_RECONCILE_INTERVAL_SECONDS": "reconcile_interval_seconds",
    "BITRIX_SLA_WORKER_CONCURRENCY": "worker_concurrency",
    "BITRIX_SLA_SETTLE_SECONDS": "settle_seconds",
    "BITRIX_SLA_SETTLE_MAX_SECONDS": "settle_max_seconds",
    "BITRIX_SLA_GROUP_COMMIT": "group_commit",
    "BITRIX_SLA_BACKUP_DIR": "backup_dir",
    "BITRIX_SLA_BACKUP_INTERVAL_HOURS": "backup_interval_hours",
    "BITRIX_SLA_BACKUP_KEEP": "backup_keep",
}


def load_settings(
    environ: Mapping[str, str] | None = None, file: Path | str | None = None
) -> Settings:
    """Settings from a YAML file (``file`` or ``$BITRIX_SLA_CONFIG``) overlaid by environment.

    A variable that is set wins over the file's key, in every spelling of it there: with
    ``BITRIX_SLA_ADMIN_TOKEN`` set, the file's ``admin_token``, ``admin_token_env`` and
    ``admin_token_file`` are all ignored. A problem with a variable's value is reported as the
    variable's (``environment: BITRIX_SLA_MAX_BODY_BYTES: …``), one with the file's as the key's
    in the file.
    """
    from connector.mappings import format_loc, read_yaml

    env = os.environ if environ is None else environ
    source = file if file is not None else env.get("BITRIX_SLA_CONFIG")
    where = str(source) if source else "environment"
    data: dict[str, Any] = {}
    if source:
        loaded = read_yaml(Path(source))
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError([ConfigIssue(where, "", "expected a mapping at the top")])
        data = dict(loaded or {})
    from_env: dict[str, str] = {}  # key -> the variable that set it
    for variable, key in _ENV_KEYS.items():
        if env.get(variable):
            for variant in (f"{key}_env", f"{key}_file"):
                data.pop(variant, None)
            data[key] = env[variable]
            from_env[key] = variable
    given: dict[str, str] = {}  # secret key -> the spelling the file gave it in
    try:
        for key in ("database_url", "database_password", "admin_token"):
            spelling = next((k for k in (key, f"{key}_env", f"{key}_file") if k in data), None)
            if spelling is not None:
                given[key] = spelling
                data[key] = _secret(data, key, env)
        listed = data.get("instances") or []
        if not isinstance(listed, list):
            raise ValueError(
                f"instances: expected a list of instances, not {type(listed).__name__}"
            )
        instances = []
        for index, raw in enumerate(listed):
            if not isinstance(raw, dict):
                raise ValueError(f"instances[{index}]: expected a mapping")
            entry = dict(raw)
            for key in ("token", "webhook_secret"):
                entry[key] = _secret(entry, key, env, f"instances[{index}]")
            instances.append(entry)
        if instances:
            data["instances"] = instances
        settings = Settings.model_validate(data)
    except ValidationError as exc:
        issues = []
        for error in exc.errors():
            loc = error["loc"]
            message = str(error["msg"]).removeprefix("Value error, ")
            named = _MODEL_KEY.match(message)
            key = str(loc[0]) if loc else named.group(1) if named else ""
            if key in from_env and not loc:  # a check of several keys names the key it blames
                issues.append(ConfigIssue("environment", "", message))
            elif key in from_env:
                issues.append(ConfigIssue("environment", from_env[key], message))
            elif loc and key in given:
                issues.append(ConfigIssue(where, format_loc((given[key], *loc[1:])), message))
            else:
                issues.append(ConfigIssue(where, format_loc(loc), message))
        raise ConfigError(issues) from None
    except ValueError as exc:
        raise ConfigError([ConfigIssue(where, "", str(exc))]) from None
    settings._source = where
    return settings
