"""What ``bitrix-sla setup zammad`` wants to find in Zammad: attributes, webhook, triggers.

Plain data builders, kept apart from the code that compares them with Zammad and applies them
(:mod:`.setup`), so the exact request bodies can be read (and reviewed against the facts doc)
in one place. Shapes: object-manager attributes facts §4.7/§9.4, webhooks §1.1, triggers §3.
"""

from __future__ import annotations

from typing import Any

from connector.helpdesks.zammad.options import ZammadOptions
from connector.policy.decision import Policy
from connector.settings import InstanceSettings

EDIT_SCREEN = {"edit": {"ticket.agent": {"shown": True, "required": False}}}
#: ticket attributes whose change can change the decision (besides the agent-override fields)
WATCHED = (("customer_id", "customer"), ("organization_id", "organization"),
           ("priority_id", "priority"), ("title", "title"))  # fmt: skip


def webhook_spec(name: str, endpoint: str) -> dict[str, Any]:
    """The webhook, without secrets: a plain POST with the default payload, TLS verified."""
    return {
        "name": name,
        "endpoint": endpoint,
        "http_method": "post",
        "ssl_verify": True,
        "active": True,
        "customized_payload": False,
        "note": "Bitrix SLA connector: ticket changed, read it again",
    }


def webhook_secrets(instance: InstanceSettings, options: ZammadOptions) -> dict[str, Any]:
    """The webhook's secret fields: signature token and the optional basic/bearer auth."""
    secrets: dict[str, Any] = {}
    if options.verify_signature and instance.webhook_secret is not None:
        secrets["signature_token"] = instance.webhook_secret.get_secret_value()
    if options.webhook_basic_user and options.webhook_basic_password:
        secrets["basic_auth_username"] = options.webhook_basic_user
        secrets["basic_auth_password"] = options.webhook_basic_password.get_secret_value()
    if options.webhook_bearer_token is not None:
        secrets["bearer_token"] = options.webhook_bearer_token.get_secret_value()
    return secrets


def attribute_specs(options: ZammadOptions, policy: Policy) -> list[dict[str, Any]]:
    """The three managed ticket attributes as ``POST /object_manager_attributes`` bodies."""
    tiers = {tier: tier for tier in sorted(policy.levels.matrix)}
    levels = {level: spec.label for level, spec in sorted(policy.levels.levels.items())}
    common = {"object": "Ticket", "active": True, "screens": EDIT_SCREEN}
    due_option = {"future": True, "past": True, "diff": None, "null": True}
    return [
        {**common, "name": options.due_at_attribute, "display": "SLA: reaction due",
         "position": 1600, "data_type": "datetime", "data_option": due_option},
        {**common, "name": options.tier_attribute, "display": "SLA: Bitrix license tier",
         "position": 1610, "data_type": "select",
         "data_option": {"options": tiers, "default": "", "null": True}},
        {**common, "name": options.level_attribute, "display": "SLA: level",
         "position": 1620, "data_type": "select",
         "data_option": {"options": levels, "default": "", "null": True}},
    ]  # fmt: skip


def override_fields(policy: Policy) -> list[str]:
    """Ticket attributes named in ``mappings/overrides.yaml`` (agent choices), in order."""
    names: list[str] = []
    for kind in ("urgency", "level", "topic", "scope"):
        for rule in getattr(policy.overrides, kind):
            if rule.field is not None and rule.field not in names:
                names.append(rule.field)
    return names


def trigger_specs(
    prefix: str, user_id: int, watched: list[tuple[str, str]], webhook_id: int | None
) -> list[dict[str, Any]]:
    """The triggers: one on create, one per watched attribute on its change.

    Loop safety (facts §3): the create trigger cannot re-fire on our later ``PUT`` (an
    update); every update trigger excludes ``updated_by_id`` = the integration user and, in
    selective mode, fires only when its own attribute changed — our ``PUT`` changes only the
    managed attributes, which no trigger watches, and tag writes are no trigger updates.
    """
    perform = {"notification.webhook": {"webhook_id": webhook_id}}
    base = {"activator": "action", "execution_condition_mode": "selective", "active": True}
    not_us = {"operator": "is not", "pre_condition": "specific", "value": [str(user_id)]}
    specs = [
        {**base, "name": f"{prefix} 010 ticket created", "perform": perform,
         "condition": {"ticket.action": {"operator": "is", "value": "create"}},
         "note": "Bitrix SLA: compute the SLA of a new ticket"},
    ]  # fmt: skip
    for number, (column, label) in enumerate(watched, start=2):
        condition = {
            "ticket.action": {"operator": "is", "value": "update"},
            "ticket.updated_by_id": not_us,
            f"ticket.{column}": {"operator": "has changed"},
        }
        specs.append(
            {**base, "name": f"{prefix} {number * 10:03d} {label} changed", "perform": perform,
             "condition": condition, "note": f"Bitrix SLA: re-classify when {label} changes"}
        )  # fmt: skip
    return specs
