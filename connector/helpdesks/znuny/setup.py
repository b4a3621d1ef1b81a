"""``bitrix-sla setup znuny --instance NAME [--apply]``: check the Znuny side, print what's missing.

What the REST API allows (facts §2, §3): GenericTicketConnector has no operation that reads or
creates dynamic fields, web services or agents. So:

* **Dynamic fields** are checked with TicketGet ``?DynamicFields=1`` on one existing ticket: a
  valid ticket DF appears in its ``DynamicField`` list even when empty (``TicketDeepGet`` lists
  unset DFs as ``null`` too, see the captured request). Their PossibleValues cannot be read;
  instead the DF file the adapter trusts is compared with every value the policy can produce.
* **Routes** are probed: ``POST /TicketSearch`` (``{"Limit": 1}``, read-only), ``GET
  /Ticket/:TicketID``, and ``PATCH /Ticket/:TicketID`` with a single *unknown* DF name, which
  TicketUpdate refuses with ``TicketUpdate.InvalidParameter`` before changing anything. An
  unknown route answers a plain-text 500 instead.
* ``--apply`` cannot create anything through the API, so it prints the console/UI steps and the
  web-service YAML filled in from the settings (the webhook secret stays a placeholder: secrets
  are never printed).
* One step is SysConfig, not web-service YAML: ``Ticket::Generic`` sends every article of the
  ticket with every event unless ``GenericInterface::Invoker::Ticket::Generic::PrepareRequest::
  OmittedFields`` names them for the invoker (``Invoker/Ticket/Generic.pm`` reads it with
  ``ConfigObject->Get``; the invoker's YAML has no such key), and long tickets then outgrow
  the edge's ``max_body_bytes``. The REST API cannot read SysConfig, so ``setup`` reminds of it
  and ``--apply`` prints the value and the ``Admin::Config::Update`` command.

Exit status 0 when everything is in place, 1 otherwise.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, TextIO

import yaml

from connector.errors import ConnectorError, PermanentError
from connector.helpdesks.znuny import build, load_dynamic_fields
from connector.helpdesks.znuny.client import ZnunyAdapter
from connector.helpdesks.znuny.options import ZnunyOptions
from connector.helpdesks.znuny.receiver import OMITTED_FIELDS_SETTING
from connector.mappings import load_mappings
from connector.policy.decision import TOPICS, Policy
from connector.settings import InstanceSettings, Settings

WEBSERVICE_FILE = Path(__file__).with_name("webservice.yml")
PROBE_FIELD = "BitrixSLASetupProbeNoSuchField"
INVOKER = "BitrixSLAWebhook"
#: what the invoker need not send: all articles and the event's article (the worker reads the
#: ticket over REST; the receiver reads neither)
OMITTED_FIELDS = "Articles;Article"
SECRET_PLACEHOLDER = "<the webhook_secret of instance {name}>"
#: What a bare override field (no ``value:``) may hold, per override kind.
_DOMAINS = {
    "urgency": ("emergency", "standard"),
    "topic": TOPICS,
    "scope": ("in", "out"),
}


def policy_values(policy: Policy, options: ZnunyOptions) -> dict[str, dict[str, str]]:
    """DF name → {value: label} for every value the policy can write or read.

    Tier and level Dropdowns get the tiers and levels of ``levels.yaml``; the tags Multiselect
    every tag ``decide`` can produce (tier, level, urgency, topic, scope and each out-of-scope
    reason of ``classification.yaml``); each override Dropdown the values its rules test.
    """
    levels = policy.levels
    prefix = policy.overrides.tag_prefix
    reasons = [
        reason.id
        for topic in policy.classifier.rules.topics.values()
        for reason in topic.out_of_scope
    ]
    tags = [
        *(f"{prefix}tier:{tier}" for tier in levels.matrix),
        *(f"{prefix}level:{level}" for level in levels.levels),
        *(f"{prefix}urgency:{urgency}" for urgency in _DOMAINS["urgency"]),
        *(f"{prefix}topic:{topic}" for topic in TOPICS),
        *(f"{prefix}scope:{scope}" for scope in _DOMAINS["scope"]),
        *(f"{prefix}out:{reason}" for reason in dict.fromkeys(reasons)),
    ]
    values: dict[str, dict[str, str]] = {
        options.tier_field: {tier: tier.capitalize() for tier in levels.matrix},
        options.level_field: {key: level.label for key, level in levels.levels.items()},
        options.tags_field: {tag: tag for tag in tags},
    }
    overrides = policy.overrides
    for kind in ("urgency", "level", "topic", "scope"):
        domain = tuple(levels.levels) if kind == "level" else _DOMAINS[kind]
        for rule in getattr(overrides, kind):
            name = options.override_fields.get(rule.field or "")
            if name is None:
                continue
            field = values.setdefault(name, {})
            if rule.value is not None:
                field.setdefault(rule.value, rule.note or rule.value)
            else:
                field.update({value: value for value in domain if value not in field})
    return values


def dynamic_field_definitions(policy: Policy, options: ZnunyOptions) -> dict[str, Any]:
    """The DF import document (``{DynamicFields: {Name: {...}}}``) for the current mappings.

    Config keys are the ones that worked on a live instance (facts §3).
    """
    values = policy_values(policy, options)
    labels = {
        options.due_at_field: "SLA: first reaction due",
        options.tier_field: "SLA: Bitrix license tier",
        options.level_field: "SLA: level",
        options.tags_field: "SLA: classification tags",
    }
    labels.update(
        {name: f"SLA override: {neutral}" for neutral, name in options.override_fields.items()}
    )
    fields: dict[str, Any] = {
        options.due_at_field: _definition(
            options.due_at_field,
            labels[options.due_at_field],
            "DateTime",
            1,
            {
                "DefaultValue": "",
                "YearsInPast": 0,
                "YearsInFuture": 5,
                "YearsPeriod": 0,
                "DateRestriction": "",
                "Link": "",
            },
        )
    }
    for order, (name, possible) in enumerate(values.items(), 2):
        kind = "Multiselect" if name == options.tags_field else "Dropdown"
        config = {
            "PossibleValues": possible,
            "PossibleNone": 1,
            "TranslatableValues": 0,
            "TreeView": 0,
            "DefaultValue": "",
        }
        fields[name] = _definition(name, labels.get(name, name), kind, order, config)
    return {"DynamicFields": fields}


def _definition(name: str, label: str, kind: str, order: int, config: dict[str, Any]) -> Any:
    return {
        "Name": name,
        "Label": label,
        "FieldType": kind,
        "ObjectType": "Ticket",
        "FieldOrder": 9000 + order,
        "InternalField": 0,
        "ValidID": 1,
        "Config": config,
    }


def run_setup(instance: InstanceSettings, settings: Settings, *, apply: bool, out: TextIO) -> int:
    """Check the Znuny instance; print each finding and, with ``apply``, the steps to fix them."""
    adapter, _ = build(instance)
    findings = _Findings(out)
    print(
        f"Znuny instance {instance.name}: {instance.url} as {adapter.options.user_login}", file=out
    )
    try:
        stale = _check_values(adapter.options, settings, findings)
        _check_api(adapter, findings)
    finally:
        adapter.close()
    how = "" if apply else "; --apply prints how"
    print(
        f"[by hand] check that SysConfig {OMITTED_FIELDS_SETTING} maps {INVOKER} to "
        f"{OMITTED_FIELDS} (the REST API cannot read SysConfig; without it long tickets are "
        f"refused with 413{how})",
        file=out,
    )
    if apply:
        _print_steps(instance, adapter.options, out)
        if stale:
            policy = load_mappings(settings.mappings_dir).policy
            print(
                "--- dynamic fields YAML for the current mappings (import, overwrite) ---", file=out
            )
            document = dynamic_field_definitions(policy, adapter.options)
            print(yaml.safe_dump(document, sort_keys=False, allow_unicode=True), end="", file=out)
    if findings.problems:
        hint = "" if apply else "; run with --apply for the steps to fix them"
        print(f"{findings.problems} problem(s) found{hint}", file=out)
        return 1
    print("everything is in place", file=out)
    return 0


class _Findings:
    """Prints ``[ok]``/``[missing]`` lines and counts the missing ones."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.problems = 0

    def __call__(self, ok: bool, text: str, fix: str = "") -> None:
        self.problems += 0 if ok else 1
        line = f"[{'ok' if ok else 'missing'}] {text}"
        print(line + (f"\n          -> {fix}" if fix and not ok else ""), file=self.out)


_IMPORT_DF = "import dynamic_fields.yml: Admin -> Dynamic Fields -> Configuration Import"
_IMPORT_WS = (
    "import webservice.yml (setup --apply prints it filled in): bin/znuny.Console.pl "
    "Admin::WebService::Update --webservice-id N --source-path bitrix-sla.yml"
)


def _check_api(adapter: ZnunyAdapter, report: _Findings) -> None:
    options = adapter.options
    report(
        options.integration_user_id is not None,
        "options.integration_user_id is set",
        "the agent's UserID (Admin -> Agents) for the invoker's ChangeBy Condition",
    )
    try:
        found = adapter.request("POST", "/TicketSearch", "TicketSearch", json={"Limit": 1})
    except PermanentError as exc:  # AuthFail, AccessDenied, a redirect: nothing else can work
        report(False, f"POST /TicketSearch: {exc}", "check url, user_login and the password")
        return
    except ConnectorError as exc:  # plain-text 500: no such route, or Znuny is down
        report(False, f"POST /TicketSearch: {exc}", _IMPORT_WS)
        return
    report(True, "POST /TicketSearch answers")
    ids = found.get("TicketID") or []
    if not ids:
        report(False, "a ticket to check the dynamic fields on", "create one ticket, run again")
        return
    ticket_id = str(ids[0])
    try:
        data = adapter.request(
            "GET", f"/Ticket/{ticket_id}", "TicketGet", params={"DynamicFields": 1}
        )
    except ConnectorError as exc:
        report(False, f"GET /Ticket/{ticket_id}: {exc}", _IMPORT_WS)
        return
    report(True, f"GET /Ticket/:TicketID answers (ticket {ticket_id})")
    present = {
        str(entry.get("Name"))
        for ticket in data.get("Ticket") or []
        for entry in (ticket.get("DynamicField") or [])
        if isinstance(entry, dict)
    }
    for role, name in {**options.managed_field_names, **options.override_fields}.items():
        report(name in present, f"dynamic field {name} ({role})", _IMPORT_DF)
    body = {"DynamicField": [{"Name": PROBE_FIELD, "Value": "probe"}]}
    what = "PATCH /Ticket/:TicketID answers (probe with an unknown field, changes nothing)"
    try:
        adapter.request("PATCH", f"/Ticket/{ticket_id}", "TicketUpdate", json=body)
    except PermanentError as exc:
        refused = "TicketUpdate.InvalidParameter" in str(exc)
        report(refused, what if refused else f"{what}: {exc}", _IMPORT_WS)
    except ConnectorError as exc:
        report(False, f"{what}: {exc}", _IMPORT_WS)
    else:
        report(True, what)


def _check_values(options: ZnunyOptions, settings: Settings, report: _Findings) -> bool:
    """Whether the DF file lacks values the policy can produce (each lack is reported)."""
    policy = load_mappings(settings.mappings_dir).policy
    definitions = load_dynamic_fields(options.dynamic_fields_file).dynamic_fields
    by_name = {definition.name: definition for definition in definitions.values()}
    stale = False
    for name, values in policy_values(policy, options).items():
        have = by_name[name].possible_values if name in by_name else None
        lacking = sorted(set(values) - set(have or {}))
        stale = stale or bool(lacking)
        listed = ", ".join(lacking[:8]) + (" …" if len(lacking) > 8 else "")
        report(
            not lacking,
            f"{options.dynamic_fields_file.name} offers every {name} value the policy produces"
            + (f" (lacks {listed})" if lacking else ""),
            "setup --apply prints an updated file; " + _IMPORT_DF + " (overwrite existing)",
        )
    return stale


def render_webservice(
    instance: InstanceSettings, options: ZnunyOptions, *, secret: str | None = None
) -> str:
    """``webservice.yml`` with the connector URL, auth, UserID and override events filled in.

    Args:
        secret: the webhook secret to write into the transport; by default a placeholder, so
            the output can be shown on a terminal.
    """
    document: dict[str, Any] = yaml.safe_load(WEBSERVICE_FILE.read_text(encoding="utf-8"))
    requester = document["Requester"]
    config = requester["Transport"]["Config"]
    config["Host"] = (options.webhook_base_url or config["Host"]).rstrip("/")
    config["InvokerControllerMapping"][INVOKER]["Controller"] = f"/webhooks/znuny/{instance.name}"
    password = secret if secret is not None else SECRET_PLACEHOLDER.format(name=instance.name)
    if options.webhook_auth == "basic":
        config["Authentication"] = {
            "AuthType": "BasicAuth",
            "BasicAuthUser": options.webhook_basic_user,
            "BasicAuthPassword": password,
        }
    else:
        config.pop("Authentication", None)
        config["AdditionalHeaders"] = {options.webhook_header: password}
    invoker = requester["Invoker"][INVOKER]
    template = invoker["Events"][0]
    events = [
        event
        for event in invoker["Events"]
        if not str(event["Event"]).startswith("TicketDynamicFieldUpdate_")
    ]
    for name in options.override_fields.values():
        event = copy.deepcopy(template)
        event["Event"] = f"TicketDynamicFieldUpdate_{name}"
        events.append(event)
    user_id = options.integration_user_id or 2
    for event in events:
        fields = event["Condition"]["Condition"]["1"]["Fields"]
        fields["ChangeBy"]["Match"] = rf"^(?!{user_id}$)\d+$"
    invoker["Events"] = events
    return yaml.safe_dump(document, sort_keys=False, allow_unicode=True)


def _print_steps(instance: InstanceSettings, options: ZnunyOptions, out: TextIO) -> None:
    name = instance.name
    console = "bin/znuny.Console.pl"
    steps = [
        f"Agent: Admin -> Agents -> add '{options.user_login}' with rw on the served queues; put "
        f"its UserID into instances.{name}.options.integration_user_id.",
        f"Dynamic fields: Admin -> Dynamic Fields -> Configuration Import, upload "
        f"{options.dynamic_fields_file} (the console has no DF import in Znuny 7).",
        f"Web service: save the YAML below as bitrix-sla.yml, then as the Znuny user: {console} "
        f"Admin::WebService::Add --name {options.webservice_name} --source-path bitrix-sla.yml "
        f"(existing: Admin::WebService::Update --webservice-id N --source-path bitrix-sla.yml); "
        "replace the secret placeholder first.",
        f"SysConfig: OTRSTimeZone must be {options.otrs_time_zone} (options.otrs_time_zone).",
        f"SysConfig: {OMITTED_FIELDS_SETTING} needs the key {INVOKER} with the value "
        f"{OMITTED_FIELDS}, or the invoker sends every article with every event and long "
        "tickets are refused with 413 (web-service YAML cannot set it). Admin -> System "
        f"Configuration, or save the YAML below as omitted-fields.yml (keep other invokers' "
        f"keys: it replaces the whole value) and run {console} Admin::Config::Update "
        f"--setting-name '{OMITTED_FIELDS_SETTING}' --source-path omitted-fields.yml",
        "Daemon: bin/znuny.Daemon.pl start (asynchronous invokers are only sent by the daemon).",
        f"Check: bitrix-sla setup znuny --instance {name}",
    ]
    print("Steps (the GenericTicketConnector API cannot create these):", file=out)
    for number, step in enumerate(steps, 1):
        print(f"  {number}. {step}", file=out)
    print(f"--- SysConfig {OMITTED_FIELDS_SETTING} (omitted-fields.yml) ---", file=out)
    print(yaml.safe_dump({INVOKER: OMITTED_FIELDS}), end="", file=out)
    print("--- web service YAML ---", file=out)
    print(render_webservice(instance, options), end="", file=out)
