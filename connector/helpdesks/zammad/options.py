"""Zammad-specific settings: ``instances[].options`` of a ``kind: zammad`` instance, validated.

Everything here describes the Zammad side of the integration:

* which ticket attributes hold the three managed values (custom object attributes created by
  ``bitrix-sla setup zammad``; custom attributes sit next to built-in columns in every ticket
  JSON — facts §2.1, §4.7);
* how the REST API is authenticated: ``Authorization: Token token=<token>`` (per-user access
  token, recommended), ``Bearer <token>`` (OAuth2) or HTTP basic with the user's password (not
  possible for users with two-factor authentication) — facts §4.1;
* how the webhook proves it comes from Zammad: the HMAC-SHA1 ``X-Hub-Signature`` keyed with the
  webhook's "HMAC SHA1 Signature Token" (= ``instance.webhook_secret``), and optionally basic
  auth (Zammad ≥ 5.4) or a bearer token (Zammad 7.x) — facts §1.1;
* the integration user, whose own updates the triggers must ignore (facts §3, loop option 2);
* which ticket states are open, for the reconciliation sweep;
* where Zammad must send webhooks (for ``setup``).

Secrets in options are given like the settings module's: inline, as ``<key>_env`` (an
environment variable name) or as ``<key>_file`` (a mounted file); they are held as
``SecretStr`` and never appear in reprs or messages.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from connector.helpdesks.options import HTTP_URL, option_secret, settings_error, validate_options
from connector.settings import InstanceSettings

#: ``object_manager`` attribute names: lower-case snake_case, no ``_id``/``_ids`` suffix (facts
#: §4.7 naming convention; such suffixes make Zammad treat the column as an association).
_ATTRIBUTE = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
_SECRET_KEYS = ("webhook_basic_password", "webhook_bearer_token")

#: Zammad's default open-ish states: the sweep looks at these (``closed``, ``merged`` and
#: ``removed`` are final). Pending states still count: the first-response promise stands.
DEFAULT_OPEN_STATES = ("new", "open", "pending reminder", "pending close")


class ZammadOptions(BaseModel):
    """The validated ``options`` of one Zammad instance.

    Attributes:
        due_at_attribute: ticket attribute (``datetime``) holding the first-reaction due time.
        tier_attribute: ticket attribute (``select``) holding the Bitrix license tier.
        level_attribute: ticket attribute (``select``) holding the SLA level id.
        tag_prefix: prefix of the tags the connector owns; must equal ``tag_prefix`` of
            ``mappings/overrides.yaml``. The adapter refuses to remove any other tag.
        api_auth: ``token`` (``Token token=…``), ``bearer`` (OAuth2 access token) or
            ``basic`` (``api_user`` + ``instance.token`` as the password).
        api_user: login for ``api_auth: basic``.
        verify_signature: check ``X-Hub-Signature`` with ``instance.webhook_secret``; turning
            it off requires basic or bearer authentication of the webhook instead.
        webhook_basic_user: expected basic-auth user of the webhook (Zammad ≥ 5.4).
        webhook_basic_password: its password (inline, ``_env`` or ``_file``).
        webhook_bearer_token: expected ``Authorization: Bearer`` token (Zammad 7.x).
        integration_user_id: Zammad user id of the connector's API user, excluded by the
            update trigger; ``setup`` looks it up (``login``, else ``/users/me``) when unset.
        integration_user_login: login of that user, used by ``setup`` to find the id.
        open_states: state names the reconciliation sweep treats as open.
        webhook_base_url: public base URL of this connector as Zammad reaches it, e.g.
            ``https://sla.example.ru``; the webhook endpoint is
            ``<webhook_base_url>/webhooks/zammad/<instance name>``. Needed by ``setup`` only.
        setup_name: prefix of the names of the webhook and triggers ``setup`` creates.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    due_at_attribute: str = "bitrix_sla_due_at"
    tier_attribute: str = "bitrix_sla_tier"
    level_attribute: str = "bitrix_sla_level"
    tag_prefix: str = Field(default="sla:", min_length=1)
    api_auth: Literal["token", "bearer", "basic"] = "token"
    api_user: str | None = None
    verify_signature: bool = True
    webhook_basic_user: str | None = None
    webhook_basic_password: SecretStr | None = None
    webhook_bearer_token: SecretStr | None = None
    integration_user_id: int | None = Field(default=None, gt=0)
    integration_user_login: str | None = None
    open_states: tuple[str, ...] = Field(default=DEFAULT_OPEN_STATES, min_length=1)
    webhook_base_url: str | None = None
    setup_name: str = Field(default="Bitrix SLA", min_length=1, max_length=80)

    @model_validator(mode="after")
    def _consistent(self) -> ZammadOptions:
        named = {
            "due_at_attribute": self.due_at_attribute,
            "tier_attribute": self.tier_attribute,
            "level_attribute": self.level_attribute,
        }
        for key, name in named.items():
            if not _ATTRIBUTE.match(name) or name.endswith(("_id", "_ids")):
                raise ValueError(
                    f"{key}: {name!r} is not a usable Zammad attribute name (lower-case "
                    "letters, digits and '_', starting with a letter, not ending in _id/_ids)"
                )
        if len(set(named.values())) != 3:
            raise ValueError("due_at_attribute, tier_attribute and level_attribute must differ")
        if self.api_auth == "basic" and not self.api_user:
            raise ValueError("api_user: required when api_auth is basic")
        if (self.webhook_basic_user is None) != (self.webhook_basic_password is None):
            raise ValueError("webhook_basic_user and webhook_basic_password go together")
        if self.webhook_basic_user is not None and self.webhook_bearer_token is not None:
            raise ValueError(
                "give webhook basic auth or webhook_bearer_token, not both: Zammad sends a "
                "single Authorization header"
            )
        if self.webhook_base_url is not None and not HTTP_URL.match(self.webhook_base_url):
            raise ValueError("webhook_base_url: must be an http(s) URL with a host")
        states = [state.strip().lower() for state in self.open_states]
        if any(not state for state in states):
            raise ValueError("open_states: state names must not be empty")
        return self

    @property
    def attribute_names(self) -> dict[str, str]:
        """Neutral managed field name → Zammad ticket attribute name."""
        return {
            "sla_due_at": self.due_at_attribute,
            "sla_tier": self.tier_attribute,
            "sla_level": self.level_attribute,
        }

    @property
    def webhook_auth(self) -> Literal["basic", "bearer"] | None:
        """Which ``Authorization`` scheme the webhook must carry, if any."""
        if self.webhook_basic_user is not None:
            return "basic"
        if self.webhook_bearer_token is not None:
            return "bearer"
        return None


def load_options(
    instance: InstanceSettings, environ: Mapping[str, str] | None = None
) -> ZammadOptions:
    """Validate ``instance.options`` (resolving ``*_env``/``*_file`` secrets) or raise.

    Besides the options themselves this checks what they imply about the instance: a webhook
    secret is required unless ``verify_signature`` is off, and with it off some other webhook
    authentication must be configured, so that no Zammad instance accepts anonymous webhooks.

    Raises:
        ConfigError: naming ``instances.<name>.options.<key>`` (or ``instances.<name>.<key>``).
    """
    env = os.environ if environ is None else environ
    where = f"instances.{instance.name}.options"
    data: dict[str, Any] = dict(instance.options)
    for key in _SECRET_KEYS:
        secret = option_secret(data, key, env, where)
        if secret is not None:
            data[key] = secret
    options = validate_options(ZammadOptions, data, where, key_in_message=True)
    hook_secret = instance.webhook_secret.get_secret_value() if instance.webhook_secret else ""
    if options.verify_signature and not hook_secret:
        raise settings_error(
            f"instances.{instance.name}.webhook_secret",
            "required for Zammad: it is the webhook's HMAC SHA1 signature token "
            f"(or set {where}.verify_signature: false and use webhook basic/bearer auth)",
        )
    if not options.verify_signature and options.webhook_auth is None:
        raise settings_error(
            f"{where}.verify_signature",
            "with the signature check off, configure webhook_basic_user/"
            "webhook_basic_password or webhook_bearer_token; anonymous webhooks are refused",
        )
    if instance.token is None or not instance.token.get_secret_value():
        raise settings_error(
            f"instances.{instance.name}.token",
            "required for Zammad: the API token (or password) of the integration user",
        )
    return options
