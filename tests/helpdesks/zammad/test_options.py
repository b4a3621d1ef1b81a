"""Zammad instance options: defaults, secrets from env/files, and errors that name the key."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr

from connector.errors import ConfigError
from connector.helpdesks.zammad import build, load_options
from connector.helpdesks.zammad.options import DEFAULT_OPEN_STATES
from connector.settings import InstanceSettings

from .conftest import zammad_instance


def issue(instance: InstanceSettings, environ: dict[str, str] | None = None) -> str:
    with pytest.raises(ConfigError) as caught:
        load_options(instance, environ or {})
    (found,) = caught.value.issues
    return f"{found.path}: {found.message}"


def test_defaults() -> None:
    options = load_options(zammad_instance(), {})
    assert options.attribute_names == {
        "sla_due_at": "bitrix_sla_due_at",
        "sla_tier": "bitrix_sla_tier",
        "sla_level": "bitrix_sla_level",
    }
    assert (options.api_auth, options.verify_signature, options.webhook_auth) == (
        "token",
        True,
        None,
    )
    assert options.open_states == DEFAULT_OPEN_STATES
    assert options.tag_prefix == "sla:"


def test_secrets_come_from_env_and_files(tmp_path: Path) -> None:
    secret_file = tmp_path / "bearer"
    secret_file.write_text("from-file\n", encoding="utf-8")
    options = load_options(
        zammad_instance(webhook_bearer_token_file=str(secret_file)), {"UNUSED": "x"}
    )
    assert options.webhook_bearer_token == SecretStr("from-file")
    options = load_options(
        zammad_instance(webhook_basic_user="z", webhook_basic_password_env="HOOK_PW"),
        {"HOOK_PW": "pw"},
    )
    assert options.webhook_basic_password == SecretStr("pw")
    assert "pw" not in repr(options)


def test_a_missing_env_variable_is_named() -> None:
    instance = zammad_instance(webhook_basic_user="z", webhook_basic_password_env="NOPE")
    assert issue(instance) == (
        "instances.main.options.webhook_basic_password_env: environment variable NOPE is not set"
    )


def test_an_unknown_key_is_named() -> None:
    assert issue(zammad_instance(tier_attr="x")).startswith("instances.main.options.tier_attr: ")


def test_a_bad_attribute_name_is_named() -> None:
    assert issue(zammad_instance(tier_attribute="tier_id")).startswith(
        "instances.main.options.tier_attribute: 'tier_id' is not a usable Zammad attribute"
    )


def test_basic_api_auth_needs_a_user() -> None:
    assert issue(zammad_instance(api_auth="basic")) == (
        "instances.main.options.api_user: required when api_auth is basic"
    )


def test_basic_and_bearer_together_are_refused() -> None:
    instance = zammad_instance(
        webhook_basic_user="z", webhook_basic_password="p", webhook_bearer_token="b"
    )
    assert "single Authorization header" in issue(instance)


def test_the_webhook_secret_is_required_unless_disabled() -> None:
    instance = zammad_instance().model_copy(update={"webhook_secret": None})
    assert issue(instance).startswith("instances.main.webhook_secret: required for Zammad")
    options = {"verify_signature": False, "webhook_bearer_token": "b"}
    adapter, hook = build(instance.model_copy(update={"options": options}))
    adapter.close()
    assert hook.instance == "main"


def test_disabling_the_signature_needs_other_authentication() -> None:
    assert issue(zammad_instance(verify_signature=False)).startswith(
        "instances.main.options.verify_signature: with the signature check off"
    )


def test_the_api_token_is_required() -> None:
    instance = zammad_instance().model_copy(update={"token": None})
    assert issue(instance).startswith("instances.main.token: required for Zammad")


def test_webhook_base_url_must_be_http() -> None:
    assert issue(zammad_instance(webhook_base_url="sla.example")).startswith(
        "instances.main.options.webhook_base_url: must be an http(s) URL"
    )
