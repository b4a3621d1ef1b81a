"""``bitrix-sla setup zammad --instance NAME [--apply]``: attributes, webhook and triggers.

What it does in Zammad, in order (facts §1.1, §3, §4.7, §9.4), each step only when needed:

1. the three ticket attributes (``POST /api/v1/object_manager_attributes``): the due time as
   ``datetime`` allowing past **and** future (a ``past: false`` attribute would refuse every
   overdue value with 422), tier and level as ``select`` whose options come from
   ``mappings/levels.yaml``, never required (a required attribute makes *every* API update of a
   ticket without it fail); an existing attribute of the wrong type is reported, not touched
   (Zammad cannot change a type); missing select options are added;
2. ``POST /api/v1/object_manager_attributes_execute_migrations`` after a change or when
   attributes are still pending; self-hosted Zammad needs a restart afterwards;
3. the webhook to ``<webhook_base_url>/webhooks/zammad/<instance>`` signed with the webhook
   secret (Zammad shows secrets as ``**********``, so an existing token cannot be compared);
4. the triggers (see :func:`trigger_specs`), in selective mode, excluding updates made by the
   integration user so that the connector's own write cannot fire them again.

It authenticates with the instance token, which for setup must belong to an admin
(``admin.object``, ``admin.webhook``, ``admin.trigger``); the service itself needs only
``ticket.agent``. Without ``--apply`` nothing is changed. Exit status: 0 when everything is in
place (after applying), 1 when something is missing or wrong.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, TextIO

from connector.errors import ConnectorError
from connector.helpdesks.zammad import api_for
from connector.helpdesks.zammad.desired import (
    EDIT_SCREEN,
    WATCHED,
    attribute_specs,
    override_fields,
    trigger_specs,
    webhook_secrets,
    webhook_spec,
)
from connector.helpdesks.zammad.options import ZammadOptions, load_options
from connector.helpdesks.zammad.rest import ZammadApi
from connector.mappings import load_mappings
from connector.policy.decision import Policy
from connector.settings import InstanceSettings, Settings

ATTRIBUTES = "/api/v1/object_manager_attributes"
MIGRATIONS = "/api/v1/object_manager_attributes_execute_migrations"
WEBHOOKS, TRIGGERS = "/api/v1/webhooks", "/api/v1/triggers"
ADMIN_HINT = (
    "Zammad refused with 403: setup needs a token of an admin with the permissions admin.object, "
    "admin.webhook and admin.trigger (the running service needs only ticket.agent). Create such "
    "a token, put it in this instance's token for the setup run, or configure Zammad by hand "
    "(see connector/helpdesks/zammad/README.md)."
)


@dataclass
class Step:
    """One thing in Zammad: in place (``ok``), to ``create``/``update``/``run``, or a problem."""

    what: str
    action: str
    detail: str = ""
    request: tuple[str, str, dict[str, Any] | None] | None = None
    result: dict[str, Any] = field(default_factory=dict)


def run_setup(instance: InstanceSettings, settings: Settings, *, apply: bool, out: TextIO) -> int:
    """Check (and with ``apply`` create) what the connector needs in one Zammad instance."""
    options = load_options(instance)
    policy = load_mappings(settings.mappings_dir).policy
    api = api_for(instance, options)
    mode = "applying changes" if apply else "dry run: nothing is changed"
    print(f"Zammad instance {instance.name!r} at {instance.url} ({mode})", file=out)
    try:
        return _Setup(api, instance, options, policy, apply, out).run()
    except ConnectorError as exc:
        print(f"error: {exc}", file=out)
        if re.search(r"-> 403\b", str(exc)):
            print(ADMIN_HINT, file=out)
        return 1
    finally:
        api.close()


class _Setup:
    def __init__(
        self,
        api: ZammadApi,
        instance: InstanceSettings,
        options: ZammadOptions,
        policy: Policy,
        apply: bool,
        out: TextIO,
    ) -> None:
        self.api, self.instance, self.options, self.policy = api, instance, options, policy
        self.apply, self.out = apply, out
        self.pending = self.problems = 0
        self.webhook_planned = False  # a dry run that would create the webhook
        self.name = f"{options.setup_name} ({instance.name})"

    def run(self) -> int:
        me = self.api.get_json("/api/v1/users/me")
        print(f"authenticated as {me.get('login')!r} (user id {me.get('id')})", file=self.out)
        wanted_prefix = self.policy.overrides.tag_prefix
        if self.options.tag_prefix != wanted_prefix:
            key = f"instances.{self.instance.name}.options.tag_prefix"
            detail = f"{key} is {self.options.tag_prefix!r}, overrides.yaml says {wanted_prefix!r}"
            self._do(Step("managed tag prefix", "problem", detail))
        attributes = [a for a in self.api.get_list(ATTRIBUTES) if a.get("object") == "Ticket"]
        changed = self._attributes(attributes)
        ours = {spec["name"] for spec in attribute_specs(self.options, self.policy)}
        waiting = [
            a["name"]
            for a in attributes
            if a.get("name") in ours and (a.get("to_migrate") or a.get("to_config"))
        ]
        if changed or waiting:
            self._do(Step("migrations", "run", "then restart Zammad unless it is hosted",
                          ("POST", MIGRATIONS, {})))  # fmt: skip
        existing = {str(a.get("name")) for a in attributes} | ours
        overrides = override_fields(self.policy)
        missing = [name for name in overrides if name not in existing]
        if missing:
            print(
                f"note: override attributes not in Zammad (not watched): {missing}", file=self.out
            )
        watched = [*WATCHED, *((name, name) for name in overrides if name not in missing)]
        webhook_id = self._webhook()
        self._triggers(self._user_id(me), watched, webhook_id)
        return self._summary()

    def _attributes(self, present: list[dict[str, Any]]) -> bool:
        by_name = {str(a.get("name")): a for a in present}
        changed = False
        for spec in attribute_specs(self.options, self.policy):
            what = f"attribute Ticket.{spec['name']} ({spec['data_type']})"
            found = by_name.get(spec["name"])
            if found is None:
                self._do(Step(what, "create", "", ("POST", ATTRIBUTES, spec)))
                changed = True
                continue
            if found.get("data_type") != spec["data_type"]:
                detail = (
                    f"is {found.get('data_type')}; Zammad cannot change a type: delete it in "
                    "Zammad or choose another name in the options"
                )
                self._do(Step(what, "problem", detail))
                continue
            current = {**(found.get("data_option") or {}), **(found.get("data_option_new") or {})}
            wanted, why = dict(current), []
            if spec["data_type"] == "datetime" and not (
                current.get("past") and current.get("future")
            ):
                wanted.update(past=True, future=True)
                why.append("allow past and future values")
            if spec["data_type"] == "select":
                options = dict(current.get("options") or {})
                new = [key for key in spec["data_option"]["options"] if key not in options]
                if new:
                    wanted["options"] = {
                        **options,
                        **{k: spec["data_option"]["options"][k] for k in new},
                    }
                    why.append(f"add options {new}")
            edit = ((found.get("screens") or {}).get("edit") or {}).get("ticket.agent") or {}
            body = {**spec, "data_option": wanted}
            if edit.get("required"):
                why.append("make it optional on the edit screen")
            else:
                body["screens"] = found.get("screens") or EDIT_SCREEN
            if why:
                path = f"{ATTRIBUTES}/{found['id']}"
                self._do(Step(what, "update", "; ".join(why), ("PUT", path, body)))
                changed = True
            else:
                self._do(Step(what, "ok"))
        return changed

    def _webhook(self) -> int | None:
        base = self.options.webhook_base_url
        if base is None:
            key = f"instances.{self.instance.name}.options.webhook_base_url"
            self._do(
                Step("webhook", "problem", f"set {key} (the connector's URL as Zammad reaches it)")
            )
            return None
        endpoint = f"{base.rstrip('/')}/webhooks/zammad/{self.instance.name}"
        wanted = webhook_spec(self.name, endpoint)
        secrets = webhook_secrets(self.instance, self.options)
        hooks = self.api.get_list(WEBHOOKS)
        found = next((h for h in hooks if h.get("name") == self.name), None) or next(
            (h for h in hooks if h.get("endpoint") == endpoint), None
        )
        what = f"webhook {self.name!r} -> {endpoint}"
        if found is None:
            step = self._do(
                Step(
                    what,
                    "create",
                    "signed with the webhook secret",
                    ("POST", WEBHOOKS, {**wanted, **secrets}),
                )
            )
            self.webhook_planned = not self.apply
            return int(step.result["id"]) if step.result.get("id") else None
        differs = [
            key for key, value in wanted.items() if key != "note" and found.get(key, value) != value
        ]
        unset = [key for key in secrets if not found.get(key)]
        if differs or unset:
            detail = "set " + ", ".join(differs + unset)
            self._do(
                Step(
                    what,
                    "update",
                    detail,
                    ("PUT", f"{WEBHOOKS}/{found['id']}", {**wanted, **secrets}),
                )
            )
        else:
            self._do(Step(what, "ok", "secrets are masked by Zammad and cannot be compared"))
        return int(found["id"])

    def _user_id(self, me: dict[str, Any]) -> int:
        if self.options.integration_user_id is not None:
            return self.options.integration_user_id
        login = self.options.integration_user_login
        if login:
            found = self.api.get_list(
                "/api/v1/users/search", {"query": login, "limit": 50, "expand": "true"}
            )
            match = next(
                (u for u in found if str(u.get("login", "")).lower() == login.lower()), None
            )
            if match is None:
                raise ConnectorError(f"integration_user_login {login!r}: no such Zammad user")
            return int(match["id"])
        return int(me["id"])

    def _triggers(
        self, user_id: int, watched: list[tuple[str, str]], webhook_id: int | None
    ) -> None:
        present = {str(t.get("name")): t for t in self.api.get_list(TRIGGERS)}
        guessed = (
            self.options.integration_user_id is None and not self.options.integration_user_login
        )
        note = (
            " = this token's user; when setup runs with another user's token, set "
            "integration_user_id or integration_user_login"
            if guessed
            else ""
        )
        print(
            f"triggers ignore updates by user id {user_id} (the integration user{note})",
            file=self.out,
        )
        for spec in trigger_specs(self.name, user_id, watched, webhook_id):
            what = f"trigger {spec['name']!r}"
            detail = "condition " + json.dumps(spec["condition"], ensure_ascii=False)
            found = present.get(spec["name"])
            if webhook_id is None and self.webhook_planned:
                self._do(Step(what, "create", f"{detail}, calling the new webhook"))
            elif webhook_id is None:
                self._do(Step(what, "problem", "needs the webhook first"))
            elif found is None:
                self._do(Step(what, "create", detail, ("POST", TRIGGERS, spec)))
            elif any(found.get(key) != value for key, value in spec.items() if key != "note"):
                self._do(Step(what, "update", detail, ("PUT", f"{TRIGGERS}/{found['id']}", spec)))
            else:
                self._do(Step(what, "ok"))

    def _do(self, step: Step) -> Step:
        """Print ``step``; with ``--apply`` send its request. Returns the step."""
        if step.action == "problem":
            self.problems += 1
        elif step.action != "ok":
            self.pending += 1
        label = (
            step.action
            if self.apply or step.action in ("ok", "problem")
            else f"would {step.action}"
        )
        print(
            f"  {label:<14} {step.what}" + (f": {step.detail}" if step.detail else ""),
            file=self.out,
        )
        if self.apply and step.request is not None:
            method, path, body = step.request
            response, _ = self.api.call(method, path, json=body)
            data = response.json() if response.content else {}
            step.result = data if isinstance(data, dict) else {}
        return step

    def _summary(self) -> int:
        if self.problems:
            print(f"result: {self.problems} problem(s) need attention", file=self.out)
            return 1
        if not self.pending:
            print("result: everything is in place; nothing to change", file=self.out)
            return 0
        if self.apply:
            print(
                f"result: {self.pending} change(s) applied; everything is in place", file=self.out
            )
            return 0
        print(f"result: {self.pending} change(s) needed; run again with --apply", file=self.out)
        return 1
