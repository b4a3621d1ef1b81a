"""``bitrix-sla setup znuny``: what it finds missing on a (sandbox) Znuny, and what it prints."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from connector.cli import main
from connector.helpdesks.znuny import load_options
from connector.helpdesks.znuny.options import SHIPPED_DYNAMIC_FIELDS
from connector.helpdesks.znuny.setup import render_webservice, run_setup
from connector.sandbox.znuny import ZnunySandbox, webservice_yaml
from connector.settings import InstanceSettings, Settings

from . import (
    AGENT_PASSWORD,
    HOOK_SECRET,
    MAPPINGS,
    shipped_fields,
    start_sandbox,
    znuny_instance,
)


@pytest.fixture
def sandbox() -> Iterator[ZnunySandbox]:
    server = start_sandbox()
    instance = znuny_instance(url=server.base_url)
    server.configure_webservice(render_webservice(instance, load_options(instance)))
    yield server
    server.stop()


def setup(instance: InstanceSettings, *, apply: bool = False) -> tuple[int, str]:
    out = io.StringIO()
    code = run_setup(instance, Settings(mappings_dir=MAPPINGS), apply=apply, out=out)
    text = out.getvalue()
    assert AGENT_PASSWORD not in text
    assert HOOK_SECRET not in text
    return code, text


def missing(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("[missing]")]


def test_everything_in_place(sandbox: ZnunySandbox) -> None:
    sandbox.create_ticket(title="Test", customer_user="ivan", body="Hello")
    code, text = setup(znuny_instance(url=sandbox.base_url))
    assert code == 0, text
    assert missing(text) == []
    assert "[ok] dynamic field BitrixSLATags (tags_field)" in text
    assert "[ok] dynamic field SLAOverride (sla_override)" in text
    assert "[ok] POST /TicketSearch answers" in text
    assert "[ok] PATCH /Ticket/:TicketID answers" in text
    assert text.rstrip().endswith("everything is in place")


def test_the_update_probe_changes_nothing(sandbox: ZnunySandbox) -> None:
    ticket = sandbox.create_ticket(title="Test", customer_user="ivan", body="Hello")
    before = sandbox.ticket(ticket)
    setup(znuny_instance(url=sandbox.base_url))
    assert sandbox.ticket(ticket) == before
    assert sandbox.writes() == []
    probes = [op for op in sandbox.operations() if op.operation == "TicketUpdate"]
    assert [op.error_code for op in probes] == ["TicketUpdate.InvalidParameter"]


def test_missing_fields_are_listed_with_where_to_import_them() -> None:
    server = start_sandbox(shipped_fields(BitrixSLATier=None))
    try:
        instance = znuny_instance(url=server.base_url)
        server.configure_webservice(render_webservice(instance, load_options(instance)))
        server.create_ticket(title="Test", customer_user="ivan", body="Hello")
        code, text = setup(instance)
    finally:
        server.stop()
    assert code == 1
    assert missing(text) == ["[missing] dynamic field BitrixSLATier (tier_field)"]
    assert "-> import dynamic_fields.yml: Admin -> Dynamic Fields -> Configuration Import" in text
    assert "1 problem(s) found; run with --apply" in text


def test_stock_web_service_lacks_the_post_search_route(sandbox: ZnunySandbox) -> None:
    stock = yaml.safe_load(webservice_yaml("http://127.0.0.1:9/hook"))
    del stock["Provider"]["Transport"]["Config"]["RouteOperationMapping"]["TicketSearchPOST"]
    sandbox.configure_webservice(stock)
    code, text = setup(znuny_instance(url=sandbox.base_url))
    assert code == 1
    [line] = missing(text)
    assert line.startswith("[missing] POST /TicketSearch:")
    assert "500" in line
    assert "-> import webservice.yml" in text


def test_refused_login_is_reported(sandbox: ZnunySandbox) -> None:
    code, text = setup(znuny_instance(url=sandbox.base_url, password="wrong-pw"))
    assert code == 1
    assert "TicketSearch.AuthFail" in text
    assert "check url, user_login and the password" in text
    assert "wrong-pw" not in text


def test_a_ticket_is_needed_to_see_the_fields(sandbox: ZnunySandbox) -> None:
    code, text = setup(znuny_instance(url=sandbox.base_url))
    assert code == 1
    assert missing(text) == ["[missing] a ticket to check the dynamic fields on"]


def test_unset_integration_user_id_is_reported(sandbox: ZnunySandbox) -> None:
    sandbox.create_ticket(title="Test", customer_user="ivan", body="Hello")
    code, text = setup(znuny_instance(url=sandbox.base_url, integration_user_id=None))
    assert code == 1
    assert missing(text) == ["[missing] options.integration_user_id is set"]


def test_stale_field_file_is_reported_and_apply_prints_a_new_one(
    sandbox: ZnunySandbox, tmp_path: Path
) -> None:
    sandbox.create_ticket(title="Test", customer_user="ivan", body="Hello")
    document = yaml.safe_load(SHIPPED_DYNAMIC_FIELDS.read_text(encoding="utf-8"))
    del document["DynamicFields"]["BitrixSLATags"]["Config"]["PossibleValues"][
        "sla:out:load-testing"
    ]
    path = tmp_path / "fields.yml"
    path.write_text(yaml.safe_dump(document), encoding="utf-8")
    code, text = setup(
        znuny_instance(url=sandbox.base_url, dynamic_fields_file=str(path)), apply=True
    )
    assert code == 1
    [line] = missing(text)
    assert "BitrixSLATags" in line
    assert "lacks sla:out:load-testing" in line
    printed = text.split("--- dynamic fields YAML for the current mappings", 1)[1]
    fields = yaml.safe_load(printed.split("\n", 1)[1].split("1 problem(s)")[0])["DynamicFields"]
    assert "sla:out:load-testing" in fields["BitrixSLATags"]["Config"]["PossibleValues"]


def test_apply_prints_the_steps_and_the_filled_in_web_service(sandbox: ZnunySandbox) -> None:
    sandbox.create_ticket(title="Test", customer_user="ivan", body="Hello")
    instance = znuny_instance(url=sandbox.base_url, webhook_base_url="https://sla.example.ru")
    code, text = setup(instance, apply=True)
    assert code == 0
    assert "Admin::WebService::Add --name BitrixSLA --source-path bitrix-sla.yml" in text
    assert "bin/znuny.Daemon.pl start" in text
    assert "OTRSTimeZone must be UTC" in text
    document = yaml.safe_load(text.split("--- web service YAML ---\n", 1)[1].split("everything")[0])
    config = document["Requester"]["Transport"]["Config"]
    assert config["Host"] == "https://sla.example.ru"
    assert config["Authentication"]["BasicAuthPassword"] == "<the webhook_secret of instance main>"
    sandbox.configure_webservice(document)  # the printed YAML is importable as it is


OMITTED = "GenericInterface::Invoker::Ticket::Generic::PrepareRequest::OmittedFields"


def test_the_check_reminds_of_the_omitted_fields_setting(sandbox: ZnunySandbox) -> None:
    sandbox.create_ticket(title="Test", customer_user="ivan", body="Hello")
    code, text = setup(znuny_instance(url=sandbox.base_url))
    assert code == 0  # SysConfig cannot be read over REST: a reminder, not a finding
    [line] = [line for line in text.splitlines() if line.startswith("[by hand]")]
    assert f"SysConfig {OMITTED} maps BitrixSLAWebhook to Articles;Article" in line
    assert "--apply prints how" in line


def test_apply_prints_how_to_leave_the_articles_out(sandbox: ZnunySandbox) -> None:
    sandbox.create_ticket(title="Test", customer_user="ivan", body="Hello")
    code, text = setup(znuny_instance(url=sandbox.base_url), apply=True)
    assert code == 0
    assert (
        f"bin/znuny.Console.pl Admin::Config::Update --setting-name '{OMITTED}' "
        "--source-path omitted-fields.yml"
    ) in text
    printed = text.split(f"--- SysConfig {OMITTED} (omitted-fields.yml) ---\n", 1)[1]
    value = yaml.safe_load(printed.split("--- web service YAML ---", 1)[0])
    assert value == {"BitrixSLAWebhook": "Articles;Article"}
    sandbox.set_omitted_fields(*next(iter(value.items())))  # the value the sandbox applies


def test_cli_runs_the_znuny_setup(
    sandbox: ZnunySandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sandbox.create_ticket(title="Test", customer_user="ivan", body="Hello")
    monkeypatch.setenv("ZNUNY_TEST_PW", AGENT_PASSWORD)
    monkeypatch.setenv("ZNUNY_TEST_HOOK", HOOK_SECRET)
    config = tmp_path / "settings.yaml"
    instance = {
        "name": "main",
        "kind": "znuny",
        "url": sandbox.base_url,
        "webhook_secret_env": "ZNUNY_TEST_HOOK",
        "options": {
            "user_login": "slabot",
            "password_env": "ZNUNY_TEST_PW",
            "integration_user_id": 2,
            "webhook_basic_user": "znuny-hook",
        },
    }
    settings = {"mappings_dir": str(MAPPINGS), "instances": [instance]}
    config.write_text(yaml.safe_dump(settings), encoding="utf-8")
    out = io.StringIO()
    assert main(["setup", "znuny", "--instance", "main", "--config", str(config)], out=out) == 0
    assert "everything is in place" in out.getvalue()
