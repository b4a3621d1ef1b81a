"""``bitrix-sla setup zammad`` against the Zammad sandbox: dry run, apply, idempotence, refusals."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from pydantic import SecretStr

from connector import cli
from connector.helpdesks.zammad.setup import run_setup
from connector.mappings import load_mappings
from connector.sandbox.zammad import ADMIN_TOKEN, INTEGRATION_LOGIN, ZammadSandbox
from connector.settings import InstanceSettings, Settings

from .conftest import DUE_OPTION, MAPPINGS, SECRET, override_attribute, zammad_instance

HOOK_BASE = "https://sla.example.ru"
CHANGES = ("POST", "PUT", "DELETE")


def instance(zammad: ZammadSandbox, token: str = ADMIN_TOKEN, **options: Any) -> InstanceSettings:
    options.setdefault("webhook_base_url", HOOK_BASE)
    return zammad_instance(zammad.base_url, **options).model_copy(
        update={"token": SecretStr(token)}
    )


def run(zammad: ZammadSandbox, *, apply: bool, **options: Any) -> tuple[int, str]:
    out = io.StringIO()
    settings = Settings(mappings_dir=MAPPINGS)
    code = run_setup(instance(zammad, **options), settings, apply=apply, out=out)
    return code, out.getvalue()


def changes(zammad: ZammadSandbox) -> list[tuple[str, str]]:
    return [(c.method, c.path) for c in zammad.calls() if c.method in CHANGES]


def ticket_attributes(zammad: ZammadSandbox) -> dict[str, dict[str, Any]]:
    """Custom ticket attributes as an admin lists them over the REST API."""
    response = requests.get(
        f"{zammad.base_url}/api/v1/object_manager_attributes",
        headers={"Authorization": f"Token token={ADMIN_TOKEN}"},
        timeout=5,
    )
    response.raise_for_status()
    rows: list[dict[str, Any]] = response.json()
    return {r["name"]: r for r in rows if r["object"] == "Ticket" and r["editable"]}


def records(zammad: ZammadSandbox, table: str) -> list[dict[str, Any]]:
    """Stored webhooks or triggers, secrets unmasked (Zammad's database, not its API)."""
    with zammad.store.lock:
        return [dict(row) for row in zammad.store.tables[table].values()]


def test_a_dry_run_changes_nothing_and_says_what_it_would_do(zammad: ZammadSandbox) -> None:
    code, text = run(zammad, apply=False)
    assert code == 1
    assert "dry run: nothing is changed" in text
    assert "would create   attribute Ticket.bitrix_sla_due_at (datetime)" in text
    assert "would run      migrations" in text
    assert f"would create   webhook 'Bitrix SLA (main)' -> {HOOK_BASE}/webhooks/zammad/main" in text
    assert "trigger 'Bitrix SLA (main) 010 ticket created'" in text
    assert "run again with --apply" in text
    assert changes(zammad) == []
    assert ticket_attributes(zammad) == {}
    assert records(zammad, "Webhook") == records(zammad, "Trigger") == []


def test_apply_creates_attributes_migrations_webhook_and_triggers(zammad: ZammadSandbox) -> None:
    code, text = run(zammad, apply=True)
    assert code == 0, text
    assert "everything is in place" in text
    policy = load_mappings(MAPPINGS).policy
    created = ticket_attributes(zammad)
    due, tier, level = (created[f"bitrix_sla_{n}"] for n in ("due_at", "tier", "level"))
    assert due["data_type"] == "datetime"
    assert (due["data_option"]["past"], due["data_option"]["future"]) == (True, True)
    assert set(tier["data_option"]["options"]) == set(policy.levels.matrix)
    assert set(level["data_option"]["options"]) == set(policy.levels.levels)
    for row in (due, tier, level):
        assert row["screens"]["edit"]["ticket.agent"]["required"] is False
        assert not row["to_migrate"]  # migrations ran
    assert ("POST", "/api/v1/object_manager_attributes_execute_migrations") in changes(zammad)
    (hook,) = records(zammad, "Webhook")
    assert hook["endpoint"] == f"{HOOK_BASE}/webhooks/zammad/main"
    assert hook["signature_token"] == SECRET
    assert (hook["ssl_verify"], hook["http_method"], hook["customized_payload"]) == (
        True,
        "post",
        False,
    )
    triggers = {t["name"]: t for t in records(zammad, "Trigger")}
    assert sorted(triggers) == [
        "Bitrix SLA (main) 010 ticket created",
        "Bitrix SLA (main) 020 customer changed",
        "Bitrix SLA (main) 030 organization changed",
        "Bitrix SLA (main) 040 priority changed",
        "Bitrix SLA (main) 050 title changed",
    ]
    assert "override attributes not in Zammad (not watched): ['sla_override'" in text
    created_trigger = triggers["Bitrix SLA (main) 010 ticket created"]
    assert created_trigger["condition"] == {"ticket.action": {"operator": "is", "value": "create"}}
    organization = triggers["Bitrix SLA (main) 030 organization changed"]
    assert organization["condition"] == {
        "ticket.action": {"operator": "is", "value": "update"},
        "ticket.updated_by_id": {
            "operator": "is not",
            "pre_condition": "specific",
            "value": [str(zammad.user_id("admin@example.com"))],  # the token's user
        },
        "ticket.organization_id": {"operator": "has changed"},
    }
    assert all(t["execution_condition_mode"] == "selective" for t in triggers.values())
    assert all(
        t["perform"] == {"notification.webhook": {"webhook_id": hook["id"]}}
        for t in triggers.values()
    )
    assert SECRET not in text and ADMIN_TOKEN not in text


def test_a_second_run_is_a_no_op(zammad: ZammadSandbox) -> None:
    assert run(zammad, apply=True)[0] == 0
    zammad.clear_calls()
    code, text = run(zammad, apply=True)
    assert (code, changes(zammad)) == (0, [])
    assert "result: everything is in place; nothing to change" in text
    assert run(zammad, apply=False)[0] == 0  # and a dry run agrees


def test_override_attributes_get_their_trigger_and_the_user_id_option_is_used(
    zammad: ZammadSandbox,
) -> None:
    override_attribute(zammad)
    code, _ = run(zammad, apply=True, integration_user_id=zammad.integration_user_id)
    assert code == 0
    trigger = next(t for t in records(zammad, "Trigger") if "sla_override" in t["name"])
    assert trigger["condition"]["ticket.sla_override"] == {"operator": "has changed"}
    assert trigger["condition"]["ticket.updated_by_id"]["value"] == [
        str(zammad.integration_user_id)
    ]


def test_missing_select_options_are_added_and_others_kept(zammad: ZammadSandbox) -> None:
    zammad.add_attribute(
        "Ticket", "bitrix_sla_tier", "select", {"options": {"partner": "P", "legacy": "L"}}
    )
    code, text = run(zammad, apply=True)
    assert code == 0
    assert "update         attribute Ticket.bitrix_sla_tier (select): add options" in text
    options = ticket_attributes(zammad)["bitrix_sla_tier"]["data_option"]["options"]
    assert options["legacy"] == "L"
    assert {"commercial", "enterprise", "noncommercial", "partner"} <= set(options)


def test_a_due_attribute_refusing_the_past_is_fixed(zammad: ZammadSandbox) -> None:
    zammad.add_attribute(
        "Ticket",
        "bitrix_sla_due_at",
        "datetime",
        {"future": True, "past": False, "diff": None},
        screens={"edit": {"ticket.agent": {"shown": True, "required": True}}},
    )
    code, text = run(zammad, apply=True)
    assert code == 0
    assert "allow past and future values; make it optional on the edit screen" in text
    due = ticket_attributes(zammad)["bitrix_sla_due_at"]
    assert due["data_option"]["past"] is True
    assert due["screens"]["edit"]["ticket.agent"]["required"] is False


def test_an_attribute_of_the_wrong_type_is_a_problem(zammad: ZammadSandbox) -> None:
    zammad.add_attribute("Ticket", "bitrix_sla_level", "input", {"type": "text", "maxlength": 40})
    code, text = run(zammad, apply=True)
    assert code == 1
    assert "problem        attribute Ticket.bitrix_sla_level (select): is input" in text
    assert ticket_attributes(zammad)["bitrix_sla_level"]["data_type"] == "input"


def test_without_webhook_base_url_the_webhook_is_a_problem(zammad: ZammadSandbox) -> None:
    code, text = run(zammad, apply=True, webhook_base_url=None)
    assert code == 1
    assert "set instances.main.options.webhook_base_url" in text
    assert records(zammad, "Webhook") == []
    assert "bitrix_sla_due_at" in ticket_attributes(zammad)  # the rest was still done


def test_a_non_admin_token_gets_an_explanation(zammad: ZammadSandbox) -> None:
    out = io.StringIO()
    agent = instance(zammad, token="sandbox-integration-token")
    code = run_setup(agent, Settings(mappings_dir=MAPPINGS), apply=True, out=out)
    assert code == 1
    assert "-> 403" in out.getvalue()
    assert "admin.object, admin.webhook and admin.trigger" in out.getvalue()
    zammad.grant_admin(INTEGRATION_LOGIN)
    out = io.StringIO()
    assert run_setup(agent, Settings(mappings_dir=MAPPINGS), apply=True, out=out) == 0


def test_an_existing_webhook_without_a_token_gets_one(zammad: ZammadSandbox) -> None:
    zammad.add_webhook("Bitrix SLA (main)", f"{HOOK_BASE}/webhooks/zammad/main")
    code, text = run(zammad, apply=True)
    assert code == 0
    assert "update         webhook 'Bitrix SLA (main)'" in text
    assert "set signature_token" in text
    (hook,) = records(zammad, "Webhook")
    assert hook["signature_token"] == SECRET


def test_the_cli_command(
    zammad: ZammadSandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "settings.yaml"
    entry = {
        "name": "main",
        "kind": "zammad",
        "url": zammad.base_url,
        "token_env": "ZAMMAD_SETUP_TOKEN",
        "webhook_secret_env": "ZAMMAD_HOOK_SECRET",
        "options": {"webhook_base_url": HOOK_BASE},
    }
    document = {"mappings_dir": str(MAPPINGS), "instances": [entry]}
    config.write_text(yaml.safe_dump(document), encoding="utf-8")
    monkeypatch.setenv("ZAMMAD_SETUP_TOKEN", ADMIN_TOKEN)
    monkeypatch.setenv("ZAMMAD_HOOK_SECRET", SECRET)
    out = io.StringIO()
    argv = ["setup", "zammad", "--instance", "main", "--config", str(config)]
    assert cli.main(argv, out) == 1  # dry run: things are missing
    assert cli.main([*argv, "--apply"], out) == 0
    assert cli.main(argv, out) == 0


def test_a_tag_prefix_differing_from_the_mappings_is_a_problem(zammad: ZammadSandbox) -> None:
    code, text = run(zammad, apply=False, tag_prefix="bitrix:")
    assert code == 1
    assert "instances.main.options.tag_prefix is 'bitrix:', overrides.yaml says 'sla:'" in text


def test_without_an_integration_user_the_token_user_is_named(zammad: ZammadSandbox) -> None:
    _, text = run(zammad, apply=False)
    assert "= this token's user; when setup runs with another user's token" in text
    _, text = run(zammad, apply=False, integration_user_id=zammad.integration_user_id)
    assert f"ignore updates by user id {zammad.integration_user_id} (the integration user)" in text


def test_a_dry_run_without_webhook_base_url_cannot_plan_triggers(zammad: ZammadSandbox) -> None:
    code, text = run(zammad, apply=False, webhook_base_url=None)
    assert code == 1
    assert (
        "problem        trigger 'Bitrix SLA (main) 010 ticket created': needs the webhook" in text
    )


def test_pending_attributes_of_a_previous_run_get_migrated(zammad: ZammadSandbox) -> None:
    zammad.add_attribute("Ticket", "bitrix_sla_due_at", "datetime", DUE_OPTION, migrate=False)
    code, text = run(zammad, apply=True)
    assert code == 0
    assert "ok             attribute Ticket.bitrix_sla_due_at (datetime)" in text
    assert "run            migrations" in text
    assert not ticket_attributes(zammad)["bitrix_sla_due_at"]["to_migrate"]


def test_the_integration_user_is_found_by_login(zammad: ZammadSandbox) -> None:
    _, text = run(zammad, apply=False, integration_user_login=INTEGRATION_LOGIN)
    assert f"ignore updates by user id {zammad.integration_user_id} (the integration user)" in text
    code, text = run(zammad, apply=False, integration_user_login="nobody@example.com")
    assert code == 1
    assert "integration_user_login 'nobody@example.com': no such Zammad user" in text
