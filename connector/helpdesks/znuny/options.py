"""Znuny-specific settings: ``instances[].options`` of a ``kind: znuny`` instance, validated.

Everything here describes the Znuny side of the integration (facts: ``znuny-facts.md``):

* ``instance.url`` is the web service's base URL,
  ``https://host/znuny/nph-genericinterface.pl/Webservice/<Name>`` (facts §2); the REST routes
  of ``webservice.yml`` hang below it.
* The REST API is called as an agent: ``UserLogin`` + ``Password`` sent in the
  ``X-OTRS-Header-UserLogin`` / ``X-OTRS-Header-Password`` headers (facts §2 "Auth"), never in
  the query string, which Znuny's debugger and proxies log. The password comes from
  ``password_env`` / ``password_file`` (or inline ``password``; else ``instance.token``).
* Znuny copies those headers into the request data byte for byte
  (``Transport/HTTP/REST.pm``: ``$URIData{Password} = $ENV{HTTP_X_OTRS_HEADER_PASSWORD}``,
  with no ``EncodeInput``, unlike query and body parameters), and the DB auth backend hashes
  the password after ``EncodeOutput``, which leaves such bytes alone (``Kernel/System/Auth/
  DB.pm``). So a password sent as its UTF-8 bytes is checked exactly like the same password
  typed into the login form, Cyrillic included; the adapter sends it that way. What a header
  cannot carry is refused here instead of failing every call: control characters, and
  whitespace at either end (HTTP drops it). The login is looked up in the database, where raw
  header bytes are not known to match a non-ASCII login, so it must be printable ASCII.
* Four ticket dynamic fields (DFs) hold what the connector writes: a DateTime for the due time,
  Dropdowns for tier and level, and a Multiselect for the managed tags (Znuny has no ticket
  tags). DateTime values are ``YYYY-MM-DD HH:MM:SS`` in the instance's ``OTRSTimeZone``
  (SysConfig, default UTC; facts §3) — ``otrs_time_zone`` must name the same zone.
* Dropdown/Multiselect values must be keys of the field's ``PossibleValues`` or TicketUpdate
  fails with ``InvalidParameter`` (facts §2). The REST API cannot read a DF's configuration, so
  the adapter reads the PossibleValues from the DF definition file the admin imported
  (``dynamic_fields_file``, default: the shipped ``dynamic_fields.yml``).
* The invoker authenticates to us with BasicAuth or an ``AdditionalHeaders`` token (facts §1
  Requester REST transport); the secret is ``instance.webhook_secret``.
* The invoker's loop guard is a ``ChangeBy`` Regexp Condition excluding the integration agent's
  UserID (facts §5), hence ``integration_user_id``.
* REST TicketGet returns no customer-user or customer-company record, only ``CustomerUserID``
  and ``CustomerID`` (facts §2 TicketGet output); ``customer_fields``/``company_fields`` name
  ticket DFs (or ticket attributes) whose values the policy should see as customer /
  organization attributes.
"""

from __future__ import annotations

import os
import re
import unicodedata
import zoneinfo
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from connector.helpdesks.options import HTTP_URL, option_secret, settings_error, validate_options
from connector.settings import InstanceSettings

#: Znuny DF names: letters and digits only (``DynamicField->DynamicFieldAdd`` refuses others).
_DF_NAME = re.compile(r"^[A-Za-z0-9]{1,200}$")
#: The shipped DF definitions (importable in Admin → Dynamic Fields → Import).
SHIPPED_DYNAMIC_FIELDS = Path(__file__).with_name("dynamic_fields.yml")
#: Neutral override field names of ``mappings/overrides.yaml`` → the shipped override DFs.
DEFAULT_OVERRIDE_FIELDS = {
    "sla_override": "SLAOverride",
    "sla_topic": "SLATopic",
    "sla_scope": "SLAScope",
}
#: Znuny state types that are still open (TicketSearch ``StateType``); closed, merged and
#: removed are final.
DEFAULT_OPEN_STATE_TYPES = ("new", "open", "pending reminder", "pending auto")


class ZnunyOptions(BaseModel):
    """The validated ``options`` of one Znuny instance.

    Attributes:
        user_login: login of the integration agent the REST API is called as.
        password: that agent's password (from ``password``, ``password_env``,
            ``password_file`` or, when none is given, ``instance.token``).
        integration_user_id: the agent's UserID; the invoker Condition ``ChangeBy`` skips it.
        due_at_field: DateTime DF holding the first-reaction due time.
        tier_field: Dropdown DF holding the Bitrix license tier.
        level_field: Dropdown DF holding the SLA level id.
        tags_field: Multiselect DF holding the managed tags (``sla:…``).
        override_fields: neutral override field name (as used in ``mappings/overrides.yaml``)
            → DF name; the snapshot carries each DF's value under both names.
        customer_fields: customer attribute name (as in ``mappings/tiers.yaml``) → ticket DF
            or ticket attribute to read it from.
        company_fields: organization attribute name → ticket DF or ticket attribute.
        otrs_time_zone: Znuny's ``OTRSTimeZone`` (IANA name), the zone of every time string.
        webhook_auth: ``basic`` (invoker BasicAuth) or ``header`` (AdditionalHeaders token).
        webhook_basic_user: the BasicAuth user the invoker sends; the password is
            ``instance.webhook_secret``.
        webhook_header: the header carrying ``instance.webhook_secret`` for ``header`` auth.
        open_state_types: Znuny state types the reconciliation sweep searches.
        search_limit: most ticket ids one TicketSearch returns.
        dynamic_fields_file: the DF definitions imported into Znuny (PossibleValues source).
        webhook_base_url: public base URL of this connector as Znuny reaches it (setup only).
        webservice_name: the web service's name in Znuny (setup output only).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    user_login: str = Field(min_length=1, max_length=200)
    password: SecretStr
    integration_user_id: int | None = Field(default=None, gt=0)
    due_at_field: str = "BitrixSLADueAt"
    tier_field: str = "BitrixSLATier"
    level_field: str = "BitrixSLALevel"
    tags_field: str = "BitrixSLATags"
    override_fields: dict[str, str] = Field(default_factory=lambda: dict(DEFAULT_OVERRIDE_FIELDS))
    customer_fields: dict[str, str] = Field(default_factory=dict)
    company_fields: dict[str, str] = Field(default_factory=dict)
    otrs_time_zone: str = "UTC"
    webhook_auth: Literal["basic", "header"] = "basic"
    webhook_basic_user: str = Field(default="znuny", min_length=1)
    webhook_header: str = Field(default="X-Bitrix-SLA-Token", pattern=r"^[A-Za-z0-9-]{1,100}$")
    open_state_types: tuple[str, ...] = Field(default=DEFAULT_OPEN_STATE_TYPES, min_length=1)
    search_limit: int = Field(default=10_000, ge=1, le=100_000)
    dynamic_fields_file: Path = SHIPPED_DYNAMIC_FIELDS
    webhook_base_url: str | None = None
    webservice_name: str = Field(default="BitrixSLA", pattern=r"^[A-Za-z0-9_-]{1,100}$")

    @field_validator("user_login")
    @classmethod
    def _header_login(cls, value: str) -> str:
        """The login travels in the ``X-OTRS-Header-UserLogin`` header (module docstring)."""
        if not (value.isascii() and value.isprintable()) or value != value.strip():
            raise ValueError(
                "must be printable ASCII without surrounding spaces: it is sent in the "
                "X-OTRS-Header-UserLogin header, which Znuny does not decode, and a login "
                "outside ASCII is not known to match; give the integration agent an ASCII login"
            )
        return value

    @model_validator(mode="after")
    def _consistent(self) -> ZnunyOptions:
        managed = self.managed_field_names
        for key, name in (*managed.items(), *self.override_fields.items()):
            if not _DF_NAME.match(name):
                raise ValueError(f"{key}: {name!r} is not a Znuny dynamic field name (A-Z, 0-9)")
        names = [*managed.values(), *self.override_fields.values()]
        if len(set(names)) != len(names):
            raise ValueError("the managed and override dynamic fields must all be different")
        try:
            zoneinfo.ZoneInfo(self.otrs_time_zone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"otrs_time_zone: {self.otrs_time_zone!r} is not an IANA time zone name "
                "(use the value of Znuny's SysConfig OTRSTimeZone, e.g. UTC or Europe/Moscow)"
            ) from None
        if self.webhook_base_url is not None and not HTTP_URL.match(self.webhook_base_url):
            raise ValueError("webhook_base_url: must be an http(s) URL with a host")
        if any(not state.strip() for state in self.open_state_types):
            raise ValueError("open_state_types: state type names must not be empty")
        return self

    @property
    def managed_field_names(self) -> dict[str, str]:
        """Role → DF name for the four fields the connector writes."""
        return {
            "due_at_field": self.due_at_field,
            "tier_field": self.tier_field,
            "level_field": self.level_field,
            "tags_field": self.tags_field,
        }

    @property
    def field_names(self) -> dict[str, str]:
        """Neutral managed field name (``WritePlan.fields`` keys) → DF name."""
        return {
            "sla_due_at": self.due_at_field,
            "sla_tier": self.tier_field,
            "sla_level": self.level_field,
        }

    @property
    def zone(self) -> zoneinfo.ZoneInfo:
        """``OTRSTimeZone`` as a zone object."""
        return zoneinfo.ZoneInfo(self.otrs_time_zone)


def load_options(
    instance: InstanceSettings, environ: Mapping[str, str] | None = None
) -> ZnunyOptions:
    """Validate ``instance.options`` (resolving the password) and what they imply, or raise.

    Raises:
        ConfigError: naming ``instances.<name>.options.<key>`` (or ``instances.<name>.<key>``).
    """
    env = os.environ if environ is None else environ
    where = f"instances.{instance.name}.options"
    data: dict[str, Any] = dict(instance.options)
    password = option_secret(data, "password", env, where)
    if password is None and instance.token is not None:
        password = instance.token
    if password is None or not password.get_secret_value():
        raise settings_error(
            f"{where}.password_env",
            "required for Znuny: the integration agent's password (password_env, "
            "password_file, or the instance token)",
        )
    problem = header_password_problem(password.get_secret_value())
    if problem:
        raise settings_error(_password_key(instance), problem)
    data["password"] = password
    options = validate_options(ZnunyOptions, data, where)
    if instance.webhook_secret is None or not instance.webhook_secret.get_secret_value():
        raise settings_error(
            f"instances.{instance.name}.webhook_secret",
            "required for Znuny: the invoker's BasicAuth password or header token",
        )
    refused = basic_credentials_problem(options, instance.webhook_secret.get_secret_value())
    if refused is not None:
        key, reason = refused
        raise settings_error(f"instances.{instance.name}.{key}", reason)
    if not HTTP_URL.match(instance.url):
        raise settings_error(
            f"instances.{instance.name}.url",
            "must be the web service URL, e.g. https://host/znuny/"
            "nph-genericinterface.pl/Webservice/BitrixSLA",
        )
    return options


def header_password_problem(password: str) -> str | None:
    """Why ``password`` cannot be sent in the ``X-OTRS-Header-Password`` header, or None.

    It is sent as UTF-8 bytes (see the module docstring), so any text will do except what
    HTTP cannot carry in a header value. The password itself never appears in the message.
    """
    try:
        password.encode("utf-8")
    except UnicodeEncodeError:
        return (
            "the agent's password is not valid UTF-8 text (was the variable or file written "
            "in another encoding?); Znuny compares the password's UTF-8 bytes"
        )
    if any(unicodedata.category(char) == "Cc" for char in password):
        return (
            "the agent's password contains a control character (a line break, tab or NUL), "
            "which an HTTP header cannot carry; choose a password without one"
        )
    if password != password.strip():
        return (
            "the agent's password starts or ends with whitespace, which HTTP drops from a "
            "header value, so Znuny would see another password; choose one without"
        )
    return None


def basic_credentials_problem(options: ZnunyOptions, secret: str) -> tuple[str, str] | None:
    """Why Znuny's invoker cannot send this BasicAuth user and secret, as (key, reason), or None.

    The invoker builds the header with Perl's ``encode_base64`` over the user and password as
    Znuny holds them: characters beyond Latin-1 make it die ("Wide character"), so no webhook
    would leave Znuny, and Latin-1 ones go out as Latin-1 bytes where the receiver reads UTF-8
    (RFC 7617), so every webhook would be refused. Only printable ASCII works both ways, and
    the user must not contain the ``:`` that ends it. The secret is never quoted."""
    if options.webhook_auth != "basic":
        return None
    user = options.webhook_basic_user
    if not (user.isascii() and user.isprintable()) or ":" in user:
        return (
            "options.webhook_basic_user",
            "must be printable ASCII without ':' (Znuny's invoker sends it through Perl's "
            "encode_base64, and ':' ends the user in BasicAuth)",
        )
    if not (secret.isascii() and secret.isprintable()):
        return (
            "webhook_secret",
            "must be printable ASCII for webhook_auth: basic: Znuny's invoker sends it through "
            "Perl's encode_base64, which dies on characters beyond Latin-1 and sends Latin-1 "
            "ones in another encoding than the UTF-8 the connector reads; use a random ASCII "
            "one (openssl rand -hex 32)",
        )
    return None


def _password_key(instance: InstanceSettings) -> str:
    """The key the password came from: ``options.password[_env|_file]`` or ``token``."""
    for key in ("password", "password_env", "password_file"):
        if key in instance.options:
            return f"instances.{instance.name}.options.{key}"
    return f"instances.{instance.name}.token"
