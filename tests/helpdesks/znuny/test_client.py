"""ZnunyAdapter and its options.

The adapter runs against the real Znuny sandbox on a real socket (``sandbox`` fixture); the
``responses`` library stands in only for answers the sandbox never gives (error codes Znuny
might add, a password echoed in a message, a proxy's HTML page with status 200).
"""

from __future__ import annotations

import datetime as dt
import json
import zoneinfo
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import responses
import yaml

from connector.errors import ConfigError, PermanentError, TransientError
from connector.helpdesks.base import HelpdeskAdapter, WritePlan
from connector.helpdesks.registry import build as registry_build
from connector.helpdesks.znuny import ZnunyAdapter, build, load_options, possible_values
from connector.helpdesks.znuny.options import SHIPPED_DYNAMIC_FIELDS
from connector.helpdesks.znuny.payload import format_time
from connector.sandbox.znuny import ZnunySandbox, webservice_yaml
from tests.cli import run as run_cli
from tests.clock import Clock

from . import AGENT, AGENT_PASSWORD, MAPPINGS, start_sandbox, znuny_instance

MOSCOW = zoneinfo.ZoneInfo("Europe/Moscow")
BASE = "https://znuny.example/znuny/nph-genericinterface.pl/Webservice/BitrixSLA"


def config_error(**options: Any) -> str:
    with pytest.raises(ConfigError) as caught:
        build(znuny_instance(**options))
    text = str(caught.value)
    assert AGENT_PASSWORD not in text
    return text


# --- options --------------------------------------------------------------------------------


def test_registry_builds_a_znuny_pair() -> None:
    adapter, receiver = registry_build(znuny_instance())
    port: HelpdeskAdapter = adapter
    assert (port.kind, receiver.kind, receiver.success) == ("znuny", "znuny", (200, {}))


def test_defaults_name_the_shipped_fields() -> None:
    options = load_options(znuny_instance())
    assert options.field_names == {
        "sla_due_at": "BitrixSLADueAt",
        "sla_tier": "BitrixSLATier",
        "sla_level": "BitrixSLALevel",
    }
    assert (options.tags_field, options.otrs_time_zone) == ("BitrixSLATags", "UTC")


def test_user_login_is_required() -> None:
    assert "instances.main.options.user_login" in config_error(user_login=None)


def test_password_from_an_environment_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ZNUNY_PW_TEST", "from-env")
    options = load_options(znuny_instance(password=None, password_env="ZNUNY_PW_TEST"))
    assert options.password.get_secret_value() == "from-env"


def test_password_from_a_file(tmp_path: Path) -> None:
    secret = tmp_path / "pw"
    secret.write_text("from-file\n", encoding="utf-8")
    options = load_options(znuny_instance(password=None, password_file=str(secret)))
    assert options.password.get_secret_value() == "from-file"


def test_unset_password_variable_is_named() -> None:
    text = config_error(password=None, password_env="ZNUNY_PW_NOT_SET_ANYWHERE")
    assert "instances.main.options.password_env" in text


def test_a_password_is_required() -> None:
    assert "instances.main.options.password_env" in config_error(password=None)


def test_password_is_not_in_the_options_repr() -> None:
    assert AGENT_PASSWORD not in repr(load_options(znuny_instance()))


def test_unknown_time_zone_is_named() -> None:
    assert "otrs_time_zone" in config_error(otrs_time_zone="Mars/Olympus")


def test_field_names_must_be_znuny_names() -> None:
    assert "tier_field" in config_error(tier_field="bitrix_sla_tier")


def test_unknown_option_is_named() -> None:
    assert "instances.main.options.pasword" in config_error(pasword="x")


def test_webhook_secret_is_required() -> None:
    instance = znuny_instance().model_copy(update={"webhook_secret": None})
    with pytest.raises(ConfigError, match=r"instances\.main\.webhook_secret"):
        build(instance)


def test_field_file_must_define_the_written_fields(tmp_path: Path) -> None:
    document = yaml.safe_load(SHIPPED_DYNAMIC_FIELDS.read_text(encoding="utf-8"))
    del document["DynamicFields"]["BitrixSLALevel"]
    path = tmp_path / "fields.yml"
    path.write_text(yaml.safe_dump(document), encoding="utf-8")
    text = config_error(dynamic_fields_file=str(path))
    assert "options.dynamic_fields_file" in text
    assert "'BitrixSLALevel'" in text


# --- exotic answers (responses) ---------------------------------------------------------------


@pytest.fixture
def offline() -> ZnunyAdapter:
    adapter, _ = build(znuny_instance(url=BASE))
    return adapter


def error(code: str, message: str = "something") -> dict[str, object]:
    return {"Error": {"ErrorCode": code, "ErrorMessage": message}}


@responses.activate
def test_unknown_error_code_is_transient(offline: ZnunyAdapter) -> None:
    responses.get(f"{BASE}/Ticket/5", json=error("TicketGet.DatabaseFailure", "DB gone"))
    with pytest.raises(TransientError, match=r"200 TicketGet\.DatabaseFailure: DB gone"):
        offline.read("5")


@responses.activate
def test_error_without_a_code_is_transient(offline: ZnunyAdapter) -> None:
    responses.get(f"{BASE}/Ticket/5", json={"Error": "broken"})
    with pytest.raises(TransientError, match=r"TicketGet\.Unknown"):
        offline.read("5")


@responses.activate
def test_an_echoed_password_is_masked(offline: ZnunyAdapter) -> None:
    echo = f"User {AGENT} with password {AGENT_PASSWORD} failed"
    responses.get(f"{BASE}/Ticket/5", json=error("TicketGet.AuthFail", echo))
    with pytest.raises(PermanentError) as caught:
        offline.read("5")
    assert AGENT_PASSWORD not in str(caught.value)
    assert "***" in str(caught.value)


@responses.activate
def test_html_with_status_200_is_permanent(offline: ZnunyAdapter) -> None:
    responses.get(f"{BASE}/Ticket/5", body="<html>Login</html>", content_type="text/html")
    with pytest.raises(PermanentError, match="not JSON; is the URL the web service"):
        offline.read("5")


@responses.activate
def test_a_json_list_is_permanent(offline: ZnunyAdapter) -> None:
    responses.post(f"{BASE}/TicketSearch", json=["1"])
    with pytest.raises(PermanentError, match="expected a JSON object"):
        list(offline.changed_since(None))


@responses.activate
def test_empty_ticket_list_is_permanent(offline: ZnunyAdapter) -> None:
    responses.get(f"{BASE}/Ticket/5", json={"Ticket": []})
    with pytest.raises(PermanentError, match="unexpected answer at Ticket"):
        offline.read("5")


@responses.activate
def test_throttling_proxy_is_transient_with_retry_after(offline: ZnunyAdapter) -> None:
    responses.patch(f"{BASE}/Ticket/5", status=429, headers={"Retry-After": "7"})
    with pytest.raises(TransientError) as caught:
        offline.apply(WritePlan(ticket_id="5", fields={"sla_tier": "partner"}))
    assert caught.value.retry_after == 7


@responses.activate
def test_credentials_travel_in_headers_only(offline: ZnunyAdapter) -> None:
    responses.get(f"{BASE}/Ticket/5", json=error("TicketGet.AccessDenied"))
    with pytest.raises(PermanentError):
        offline.read("5")
    sent = responses.calls[0].request
    assert sent.headers["X-OTRS-Header-UserLogin"] == AGENT
    assert sent.headers["X-OTRS-Header-Password"] == AGENT_PASSWORD
    assert AGENT_PASSWORD not in str(sent.url)
    assert AGENT not in str(sent.url)


@responses.activate
def test_connection_refused_is_transient(offline: ZnunyAdapter) -> None:
    responses.get(f"{BASE}/Ticket/5", body=requests.ConnectionError("refused"))
    with pytest.raises(TransientError, match="connection failed"):
        offline.read("5")


# --- against the sandbox ------------------------------------------------------------------------


@pytest.fixture
def sandbox() -> Iterator[ZnunySandbox]:
    server = start_sandbox(otrs_time_zone="Europe/Moscow")
    yield server
    server.stop()


@pytest.fixture
def adapter(sandbox: ZnunySandbox) -> Iterator[ZnunyAdapter]:
    client, _ = build(
        znuny_instance(
            url=sandbox.base_url,
            otrs_time_zone="Europe/Moscow",
            company_fields={"bitrix_license_type": "BitrixLicenseType"},
        )
    )
    yield client
    client.close()


def new_ticket(sandbox: ZnunySandbox, **kwargs: object) -> str:
    values: dict[str, object] = {
        "title": "Сайт не открывается",
        "customer_user": "ivan",
        "body": "Ошибка 500 на всех страницах",
    }
    values.update(kwargs)
    return str(sandbox.create_ticket(**values))  # type: ignore[arg-type]


def test_read_maps_the_ticket_to_a_snapshot(sandbox: ZnunySandbox, adapter: ZnunyAdapter) -> None:
    sandbox.add_dynamic_field(
        "BitrixLicenseType", "Dropdown", config={"PossibleValues": {"partner": "Partner"}}
    )
    ticket = new_ticket(
        sandbox, queue="VIP", priority="4 high", dynamic_fields={"BitrixLicenseType": "partner"}
    )
    snapshot = adapter.read(ticket)
    created = sandbox.ticket(int(ticket))["Created"]
    assert (snapshot.helpdesk, snapshot.instance, snapshot.id) == ("znuny", "main", ticket)
    assert snapshot.created_at == dt.datetime.fromisoformat(created).replace(tzinfo=MOSCOW)
    assert (snapshot.subject, snapshot.body) == (
        "Сайт не открывается",
        "Ошибка 500 на всех страницах",
    )
    assert (snapshot.group, snapshot.priority, snapshot.state) == ("VIP", "4 high", "new")
    assert snapshot.customer is not None
    assert (snapshot.customer.id, snapshot.customer.email) == ("ivan", "ivan@studio.example")
    assert snapshot.organization is not None
    assert snapshot.organization.id == "studio"
    assert snapshot.organization.fields == {"bitrix_license_type": "partner"}
    assert snapshot.managed_fields == {"sla_due_at": None, "sla_tier": None, "sla_level": None}
    assert snapshot.tags == ()


def test_override_fields_are_seen_under_both_names(
    sandbox: ZnunySandbox, adapter: ZnunyAdapter
) -> None:
    ticket = new_ticket(sandbox, dynamic_fields={"SLAOverride": "consulting", "SLATopic": "errors"})
    fields = adapter.read(ticket).fields
    assert (fields["SLAOverride"], fields["sla_override"]) == ("consulting", "consulting")
    assert (fields["SLATopic"], fields["sla_topic"]) == ("errors", "errors")
    assert fields["sla_scope"] is None
    assert "BitrixSLATier" not in fields  # the connector's own fields are not agent input


def test_managed_fields_are_read_back_in_utc(sandbox: ZnunySandbox, adapter: ZnunyAdapter) -> None:
    values = {
        "BitrixSLADueAt": "2026-12-01 12:00:00",  # Moscow time, as Znuny stores it
        "BitrixSLATier": "partner",
        "BitrixSLALevel": "partner-standard",
        "BitrixSLATags": ["sla:tier:partner", "sla:scope:in"],
    }
    snapshot = adapter.read(new_ticket(sandbox, dynamic_fields=values))
    assert snapshot.managed_fields == {
        "sla_due_at": "2026-12-01T09:00:00Z",
        "sla_tier": "partner",
        "sla_level": "partner-standard",
    }
    assert snapshot.tags == ("sla:scope:in", "sla:tier:partner")


def test_first_customer_article_is_the_body(sandbox: ZnunySandbox, adapter: ZnunyAdapter) -> None:
    ticket = new_ticket(sandbox)
    sandbox.add_article(int(ticket), body="We are looking into it.", sender_type="agent")
    sandbox.add_article(int(ticket), body="Still broken!", sender_type="customer")
    assert adapter.read(ticket).body == "Ошибка 500 на всех страницах"


def test_missing_ticket_is_permanent(adapter: ZnunyAdapter) -> None:
    with pytest.raises(PermanentError, match=r"TicketGet\.AccessDenied.*does not exist"):
        adapter.read("999")


def test_empty_plan_makes_no_call(sandbox: ZnunySandbox, adapter: ZnunyAdapter) -> None:
    ticket = new_ticket(sandbox)
    sandbox.clear_calls()
    assert adapter.apply(WritePlan(ticket_id=ticket)) == []
    assert sandbox.calls() == []


def test_plan_is_one_patch_with_only_the_changed_fields(
    sandbox: ZnunySandbox, adapter: ZnunyAdapter
) -> None:
    ticket = new_ticket(
        sandbox, dynamic_fields={"BitrixSLATags": ["sla:tier:partner", "sla:urgency:standard"]}
    )
    adapter.read(ticket)
    sandbox.clear_calls()
    plan = WritePlan(
        ticket_id=ticket,
        fields={"sla_due_at": "2026-12-01T09:00:00Z", "sla_level": "partner-operational"},
        add_tags=("sla:urgency:emergency",),
        remove_tags=("sla:urgency:standard",),
    )
    calls = adapter.apply(plan)
    assert [(call.method, call.path, call.status) for call in calls] == [
        ("PATCH", f"/Ticket/{ticket}", 200)
    ]
    assert [call.method for call in sandbox.calls()] == ["PATCH"]
    data = sandbox.ticket(int(ticket))
    assert data["DynamicField_BitrixSLADueAt"] == "2026-12-01 12:00:00"
    assert data["DynamicField_BitrixSLALevel"] == "partner-operational"
    assert data["DynamicField_BitrixSLATier"] is None  # not in the plan, not touched
    assert data["DynamicField_BitrixSLATags"] == ["sla:tier:partner", "sla:urgency:emergency"]
    assert data["ChangeBy"] == sandbox.agent_id(AGENT)


def test_tags_without_a_prior_read_are_read_first(
    sandbox: ZnunySandbox, adapter: ZnunyAdapter
) -> None:
    ticket = new_ticket(sandbox, dynamic_fields={"BitrixSLATags": ["sla:scope:in"]})
    calls = adapter.apply(
        WritePlan(ticket_id=ticket, add_tags=("sla:scope:out",), remove_tags=("sla:scope:in",))
    )
    assert [call.method for call in calls] == ["GET", "PATCH"]
    assert sandbox.ticket(int(ticket))["DynamicField_BitrixSLATags"] == ["sla:scope:out"]


def test_value_outside_possible_values_is_refused_before_sending(
    sandbox: ZnunySandbox, adapter: ZnunyAdapter
) -> None:
    ticket = new_ticket(sandbox)
    sandbox.clear_calls()
    with pytest.raises(
        PermanentError, match=r"'gold' is not one of the PossibleValues .* BitrixSLATier"
    ):
        adapter.apply(WritePlan(ticket_id=ticket, fields={"sla_tier": "gold"}))
    with pytest.raises(PermanentError, match=r"'sla:vip' .* BitrixSLATags"):
        adapter.apply(WritePlan(ticket_id=ticket, add_tags=("sla:vip",)))
    assert [call.method for call in sandbox.calls()] == ["GET"]  # the tags read, no PATCH


def test_invalid_parameter_from_znuny_is_permanent(sandbox: ZnunySandbox, tmp_path: Path) -> None:
    document = yaml.safe_load(SHIPPED_DYNAMIC_FIELDS.read_text(encoding="utf-8"))
    document["DynamicFields"]["BitrixSLATier"]["Config"]["PossibleValues"]["gold"] = "Gold"
    path = tmp_path / "fields.yml"  # what the connector believes; Znuny has no "gold"
    path.write_text(yaml.safe_dump(document), encoding="utf-8")
    adapter, _ = build(znuny_instance(url=sandbox.base_url, dynamic_fields_file=str(path)))
    ticket = new_ticket(sandbox)
    with pytest.raises(PermanentError, match=r"200 TicketUpdate\.InvalidParameter: TicketUpdate:"):
        adapter.apply(WritePlan(ticket_id=ticket, fields={"sla_tier": "gold"}))
    assert sandbox.writes(ticket) == []


def test_wrong_password_is_permanent(sandbox: ZnunySandbox) -> None:
    adapter, _ = build(znuny_instance(url=sandbox.base_url, password="wrong"))
    with pytest.raises(PermanentError, match=r"TicketGet\.AuthFail"):
        adapter.read("1")


def test_changed_since_finds_open_tickets_changed_recently(
    sandbox: ZnunySandbox, adapter: ZnunyAdapter
) -> None:
    old, closed = new_ticket(sandbox), new_ticket(sandbox)
    sandbox.update_ticket(int(closed), state="closed successful")
    changed = sandbox.ticket(int(old))["Changed"]
    since = dt.datetime.fromisoformat(changed).replace(tzinfo=MOSCOW) + dt.timedelta(seconds=1)
    assert sorted(adapter.changed_since(None)) == [old]
    assert list(adapter.changed_since(since)) == []


def test_no_hits_is_an_empty_search(adapter: ZnunyAdapter) -> None:
    assert list(adapter.changed_since(None)) == []


def test_search_without_the_post_route_is_transient(
    sandbox: ZnunySandbox, adapter: ZnunyAdapter
) -> None:
    stock = yaml.safe_load(webservice_yaml("http://127.0.0.1:9/hook"))
    del stock["Provider"]["Transport"]["Config"]["RouteOperationMapping"]["TicketSearchPOST"]
    sandbox.configure_webservice(stock)
    with pytest.raises(TransientError, match="500"):
        list(adapter.changed_since(None))


def test_proxy_errors_and_a_down_server_are_transient(
    sandbox: ZnunySandbox, adapter: ZnunyAdapter
) -> None:
    ticket = new_ticket(sandbox)
    sandbox.faults.fail_next(1, status=503, retry_after=3)
    with pytest.raises(TransientError) as caught:
        adapter.read(ticket)
    assert caught.value.retry_after == 3
    sandbox.pause()
    try:
        with pytest.raises(TransientError, match="connection failed"):
            adapter.read(ticket)
    finally:
        sandbox.resume()
    assert adapter.read(ticket).id == ticket


def test_unknown_webservice_name_is_transient(sandbox: ZnunySandbox) -> None:
    url = sandbox.base_url.replace("/Webservice/BitrixSLA", "/Webservice/Typo")
    adapter, _ = build(znuny_instance(url=url))
    with pytest.raises(TransientError):
        adapter.read("1")


# --- agent passwords outside ASCII (the header carries UTF-8 bytes) ----------------------------


@pytest.mark.parametrize("password", ["пароль-агента", "Pässwört-7"])
def test_a_non_ascii_password_authenticates(password: str) -> None:
    server = start_sandbox(agents={"root@localhost": "root", AGENT: password})
    try:
        ticket = new_ticket(server)
        client, _ = build(znuny_instance(url=server.base_url, password=password))
        assert client.read(ticket).id == ticket
        client.close()
    finally:
        server.stop()


@responses.activate
def test_a_non_ascii_password_goes_out_as_its_utf8_bytes() -> None:
    client, _ = build(znuny_instance(url=BASE, password="пароль"))
    responses.get(f"{BASE}/Ticket/5", json=error("TicketGet.AuthFail", "bad пароль"))
    with pytest.raises(PermanentError) as caught:
        client.read("5")
    assert "пароль" not in str(caught.value)  # masked, as any echoed password
    raw = responses.calls[0].request.headers["X-OTRS-Header-Password"]
    assert raw.encode("latin-1") == "пароль".encode()  # what http.client puts on the wire


@pytest.mark.parametrize(
    ("options", "key", "reason"),
    [
        ({"password": "two\nlines"}, "options.password", "control character"),
        ({"password": " padded "}, "options.password", "whitespace"),
        ({"user_login": "слабот"}, "options.user_login", "printable ASCII"),
        ({"user_login": "slabot "}, "options.user_login", "printable ASCII"),
    ],
)
def test_credentials_a_header_cannot_carry_are_refused_at_load(
    options: dict[str, str], key: str, reason: str
) -> None:
    text = config_error(**options)
    assert f"instances.main.{key}" in text
    assert reason in text
    assert "two\nlines" not in text and " padded " not in text  # the secret is not shown


@pytest.mark.parametrize(
    ("instance", "key", "reason"),
    [
        ({"webhook_secret": "секрет-для-вебхука"}, "webhook_secret", "printable ASCII"),
        ({"webhook_secret": "pässwörd-of-latin-1"}, "webhook_secret", "encode_base64"),
        ({"webhook_secret": "tab\tinside"}, "webhook_secret", "printable ASCII"),
        ({"webhook_basic_user": "знуни"}, "options.webhook_basic_user", "printable ASCII"),
        ({"webhook_basic_user": "zn:uny"}, "options.webhook_basic_user", "without ':'"),
    ],
)
def test_basic_credentials_the_invoker_cannot_send_are_refused_at_load(
    instance: dict[str, str], key: str, reason: str
) -> None:
    """Perl's encode_base64, which Znuny's invoker builds BasicAuth with, dies on characters
    beyond Latin-1 and sends Latin-1 ones as Latin-1 bytes: no webhook would ever arrive, or
    every one would be refused. Such credentials used to be accepted without a word."""
    with pytest.raises(ConfigError) as caught:
        build(znuny_instance(**instance))
    text = str(caught.value)
    assert f"instances.main.{key}" in text and reason in text
    assert "секрет" not in text and "pässwörd" not in text  # the secret is not shown


def test_header_auth_takes_any_webhook_secret() -> None:
    options = load_options(znuny_instance(webhook_secret="секрет", webhook_auth="header"))
    assert options.webhook_auth == "header"


def test_check_config_names_a_password_the_header_cannot_carry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'sla.db'}")
    monkeypatch.setenv("ZNUNY_HOOK_TEST", "hook-secret")
    monkeypatch.setenv("ZNUNY_PW_TEST", "пароль\tс табуляцией")
    monkeypatch.delenv("BITRIX_SLA_MAPPINGS", raising=False)
    instance = {
        "name": "main",
        "kind": "znuny",
        "url": "http://127.0.0.1:9/znuny/nph-genericinterface.pl/Webservice/BitrixSLA",
        "webhook_secret_env": "ZNUNY_HOOK_TEST",
        "options": {"user_login": AGENT, "password_env": "ZNUNY_PW_TEST"},
    }
    settings = tmp_path / "settings.yaml"
    settings.write_text(
        yaml.safe_dump({"mappings_dir": str(MAPPINGS), "instances": [instance]}), "utf-8"
    )
    code, text = run_cli("check-config", "--config", str(settings))
    assert code == 1
    assert f"{settings}: instances.main.options.password_env: the agent's password contains" in (
        text
    )
    assert "табуляцией" not in text


# --- the sweep pages past the search limit ------------------------------------------------------


@pytest.fixture
def clock() -> Clock:
    return Clock(dt.datetime(2026, 11, 28, 4, 0, 0, tzinfo=dt.UTC))


@pytest.fixture
def timed(clock: Clock) -> Iterator[ZnunySandbox]:
    """A sandbox whose clock the test moves."""
    server = start_sandbox(otrs_time_zone="Europe/Moscow", clock=clock)
    yield server
    server.stop()


def limited(
    sandbox: ZnunySandbox, clock: Clock, limit: int, zone: str = "Europe/Moscow"
) -> ZnunyAdapter:
    """An adapter whose TicketSearch pages hold ``limit`` ids, on the sandbox's clock."""
    instance = znuny_instance(url=sandbox.base_url, otrs_time_zone=zone, search_limit=limit)
    options = load_options(instance)
    values = possible_values(instance.name, options)
    return ZnunyAdapter(instance.name, instance.url, options, possible_values=values, clock=clock)


def searches(sandbox: ZnunySandbox) -> int:
    return sum(1 for op in sandbox.operations() if op.operation == "TicketSearch")


def test_changed_since_pages_past_the_search_limit(timed: ZnunySandbox, clock: Clock) -> None:
    first = [new_ticket(timed), new_ticket(timed)]  # the same second
    clock.advance(seconds=1)
    start = clock.now
    later = [new_ticket(timed)]
    clock.advance(seconds=10)
    later += [new_ticket(timed), new_ticket(timed)]  # the same second again
    clock.advance(minutes=5)
    closed = new_ticket(timed)
    timed.update_ticket(int(closed), state="closed successful")
    adapter = limited(timed, clock, 3)  # a page of 3: fewer than the 5 open tickets
    found = list(adapter.changed_since(None))
    assert sorted(found) == sorted(first + later)  # every open ticket, each once
    assert searches(timed) > 1
    assert sorted(adapter.changed_since(start)) == sorted(later)


def test_a_follow_up_article_is_found_by_the_sweep(timed: ZnunySandbox, clock: Clock) -> None:
    new_ticket(timed)  # nothing happens to this one
    answered = new_ticket(timed)
    clock.advance(hours=1)
    since = clock.now
    timed.add_article(int(answered), body="any news?", sender_type="customer")
    assert timed.ticket(int(answered))["Changed"] < format_time(since, MOSCOW)  # row untouched
    assert list(limited(timed, clock, 10).changed_since(since)) == [answered]


def test_a_full_page_within_one_second_fails_the_sweep(timed: ZnunySandbox, clock: Clock) -> None:
    for _ in range(3):
        new_ticket(timed)
    adapter = limited(timed, clock, 3)
    with pytest.raises(PermanentError) as caught:
        list(adapter.changed_since(None))
    text = str(caught.value)
    assert "3 or more open tickets have a history entry within the second 2026-11-28 07:00:00" in (
        text
    )
    assert "instances.main.options.search_limit is 3" in text
    assert "Europe/Moscow" in text


@responses.activate
def test_a_search_that_never_narrows_ends_in_an_error(clock: Clock) -> None:
    instance = znuny_instance(url=BASE, search_limit=2)
    options = load_options(instance)
    adapter = ZnunyAdapter(
        "main", BASE, options, possible_values=possible_values("main", options), clock=clock
    )
    responses.post(f"{BASE}/TicketSearch", json={"TicketID": ["7", "8"]})  # always full
    with pytest.raises(PermanentError, match="TicketSearch cannot page the sweep") as caught:
        list(adapter.changed_since(clock.now))
    assert len(responses.calls) < 40  # it gives up instead of searching for ever
    assert "search_limit is 2" in str(caught.value)


@responses.activate
def test_a_full_window_is_split_at_now_and_each_half_searched(clock: Clock) -> None:
    instance = znuny_instance(url=BASE, otrs_time_zone="Europe/Moscow", search_limit=2)
    options = load_options(instance)
    adapter = ZnunyAdapter(
        "main", BASE, options, possible_values=possible_values("main", options), clock=clock
    )
    bodies: list[dict[str, Any]] = []

    def answer(request: requests.PreparedRequest) -> tuple[int, dict[str, str], str]:
        body = json.loads(request.body or b"{}")
        bodies.append(body)
        if body["TicketChangeTimeNewerDate"] > "2026-11-28 07:00:00":  # after now: nothing
            ids = []
        elif "TicketChangeTimeOlderDate" not in body:
            ids = ["7", "8"]  # a full page: there may be more
        else:
            ids = ["8"]
        return 200, {}, json.dumps({"TicketID": ids})

    responses.add_callback(responses.POST, f"{BASE}/TicketSearch", callback=answer)
    since = dt.datetime(2026, 11, 28, 3, 0, tzinfo=dt.UTC)
    assert list(adapter.changed_since(since)) == ["7", "8"]
    assert [
        (b.get("TicketChangeTimeNewerDate"), b.get("TicketChangeTimeOlderDate")) for b in bodies
    ] == [
        ("2026-11-28 06:00:00", None),  # full: split at now (07:00 Moscow)
        ("2026-11-28 06:00:00", "2026-11-28 07:00:00"),
        ("2026-11-28 07:00:01", None),
    ]
    assert {(b["SortBy"], b["OrderBy"], b["Limit"]) for b in bodies} == {("Changed", "Up", 2)}
    assert {tuple(b["StateType"]) for b in bodies} == {
        ("new", "open", "pending reminder", "pending auto")
    }


# --- due times and Created in the hour DST repeats ------------------------------------------------

BERLIN = zoneinfo.ZoneInfo("Europe/Berlin")
#: 2026-10-25: Berlin shows 02:00-02:59 twice, first as CEST (00:xxZ), then as CET (01:xxZ)
FIRST_0230, SECOND_0230 = "2026-10-25T00:30:00Z", "2026-10-25T01:30:00Z"


@pytest.fixture
def berlin() -> Iterator[ZnunySandbox]:
    clock = Clock(dt.datetime(2026, 10, 25, 1, 30, tzinfo=dt.UTC))  # the second 02:30
    server = start_sandbox(otrs_time_zone="Europe/Berlin", clock=clock)
    yield server
    server.stop()


def berlin_adapter(sandbox: ZnunySandbox) -> ZnunyAdapter:
    return build(znuny_instance(url=sandbox.base_url, otrs_time_zone="Europe/Berlin"))[0]


@pytest.mark.parametrize("due", [FIRST_0230, SECOND_0230])
def test_a_due_time_in_the_repeated_hour_reads_back_as_written(
    berlin: ZnunySandbox, due: str
) -> None:
    adapter = berlin_adapter(berlin)
    ticket = new_ticket(berlin)
    adapter.read(ticket)
    adapter.apply(WritePlan(ticket_id=ticket, fields={"sla_due_at": due}))
    assert berlin.ticket(int(ticket))["DynamicField_BitrixSLADueAt"] == "2026-10-25 02:30:00"
    assert adapter.read(ticket).managed_fields["sla_due_at"] == due  # the plan converges
    assert len(berlin.writes(ticket)) == 1


def test_a_restarted_adapter_does_not_rewrite_a_due_time_znuny_holds(
    berlin: ZnunySandbox,
) -> None:
    ticket = new_ticket(berlin)
    first = berlin_adapter(berlin)
    first.apply(WritePlan(ticket_id=ticket, fields={"sla_due_at": FIRST_0230}))
    again = berlin_adapter(berlin)  # a new process: no memory of what was written
    assert again.read(ticket).managed_fields["sla_due_at"] == SECOND_0230  # as Znuny reads it
    berlin.clear_calls()
    assert again.apply(WritePlan(ticket_id=ticket, fields={"sla_due_at": FIRST_0230})) == []
    assert berlin.calls("PATCH") == []  # Znuny holds that text: nothing to write
    assert again.read(ticket).managed_fields["sla_due_at"] == FIRST_0230
    assert len(berlin.writes(ticket)) == 1


def test_created_in_the_repeated_hour_is_the_later_instant(berlin: ZnunySandbox) -> None:
    ticket = new_ticket(berlin)
    assert berlin.ticket(int(ticket))["Created"] == "2026-10-25 02:30:00"
    created = berlin_adapter(berlin).read(ticket).created_at
    assert created.astimezone(dt.UTC).isoformat() == "2026-10-25T01:30:00+00:00"


# --- error bodies Znuny can send -----------------------------------------------------------------


@responses.activate
def test_null_error_code_and_message_are_a_project_error(offline: ZnunyAdapter) -> None:
    responses.get(f"{BASE}/Ticket/5", json={"Error": {"ErrorCode": None, "ErrorMessage": None}})
    with pytest.raises(TransientError, match=r"-> 200 TicketGet\.Unknown$"):
        offline.read("5")


@responses.activate
def test_null_message_with_a_permanent_code_is_permanent(offline: ZnunyAdapter) -> None:
    responses.get(
        f"{BASE}/Ticket/5",
        json={"Error": {"ErrorCode": "TicketGet.AuthFail", "ErrorMessage": None}},
    )
    with pytest.raises(PermanentError, match=r"TicketGet\.AuthFail"):
        offline.read("5")


@responses.activate
@pytest.mark.parametrize(
    "code",
    [
        "TicketGet.WrongStructure",
        "TicketGet.NotValidTicketID",
        "TicketGet.NotTicketData",
        "Webservice.InvalidConfiguration",
    ],
)
def test_structural_ticket_get_errors_are_permanent(offline: ZnunyAdapter, code: str) -> None:
    responses.get(f"{BASE}/Ticket/5", json=error(code))
    with pytest.raises(PermanentError, match=code.replace(".", r"\.")):
        offline.read("5")


@responses.activate
def test_an_empty_update_request_is_permanent(offline: ZnunyAdapter) -> None:
    responses.patch(f"{BASE}/Ticket/5", json=error("TicketUpdate.EmptyRequest"))
    with pytest.raises(PermanentError, match=r"TicketUpdate\.EmptyRequest"):
        offline.apply(WritePlan(ticket_id="5", fields={"sla_tier": "partner"}))


def test_a_malformed_ticket_id_is_permanent(sandbox: ZnunySandbox, adapter: ZnunyAdapter) -> None:
    with pytest.raises(PermanentError, match=r"TicketGet\.WrongStructure"):
        adapter.read("0")
    assert [op.error_code for op in sandbox.operations()] == ["TicketGet.WrongStructure"]


def test_a_change_in_the_repeated_hour_after_since_is_swept() -> None:
    """Znuny searches history by wall-clock time in ``OTRSTimeZone``. On the night clocks go
    back, a sweep from 02:59 (summer time, first pass) used to search from the wall time 02:59
    and missed a follow-up at 02:30 winter time, half an hour LATER: the window now starts the
    clock change earlier."""
    clock = Clock(dt.datetime(2026, 10, 25, 0, 30, tzinfo=dt.UTC))  # 02:30 CEST
    berlin = "Europe/Berlin"
    sandbox = start_sandbox(otrs_time_zone=berlin, clock=clock)
    try:
        ticket = new_ticket(sandbox)
        clock.advance(minutes=29)
        since = clock.now  # 02:59 CEST
        clock.advance(minutes=31)  # 02:30 CET, the hour again
        sandbox.add_article(int(ticket), body="any news?", sender_type="customer")
        clock.advance(minutes=10)
        adapter = limited(sandbox, clock, 10_000, zone=berlin)
        assert list(adapter.changed_since(since)) == [ticket]
    finally:
        sandbox.stop()
