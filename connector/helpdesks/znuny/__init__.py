"""Znuny / OTRS adapter: GenericInterface invoker requests in, GenericTicketConnectorREST out.

See ``README.md`` in this folder for the Znuny-side setup (agent, dynamic fields, web service).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from connector.errors import SETTINGS_FILE, ConfigError, ConfigIssue
from connector.helpdesks.znuny.client import ZnunyAdapter
from connector.helpdesks.znuny.options import ZnunyOptions, load_options
from connector.helpdesks.znuny.receiver import ZnunyReceiver
from connector.settings import InstanceSettings

__all__ = [
    "DynamicFieldsFile",
    "ZnunyAdapter",
    "ZnunyOptions",
    "ZnunyReceiver",
    "build",
    "load_dynamic_fields",
    "load_options",
    "possible_values",
]


class DynamicFieldDefinition(BaseModel):
    """One DF of Znuny's DF import/export YAML (Admin → Dynamic Fields → Import).

    ``Config`` depends on the type (facts §3): DateTime ``{DefaultValue, YearsInPast,
    YearsInFuture, YearsPeriod, DateRestriction, Link}``; Dropdown/Multiselect
    ``{PossibleValues: {key: label}, PossibleNone, TranslatableValues, TreeView, DefaultValue}``.
    Only keys of ``PossibleValues`` are accepted as values by TicketUpdate (facts §2).
    """

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    name: str = Field(alias="Name", pattern=r"^[A-Za-z0-9]+$")
    label: str = Field(alias="Label", min_length=1)
    field_type: str = Field(alias="FieldType")
    object_type: str = Field(default="Ticket", alias="ObjectType")
    config: dict[str, Any] = Field(default_factory=dict, alias="Config")

    @property
    def possible_values(self) -> dict[str, str] | None:
        """Key → label of a Dropdown/Multiselect; None for types without a value list."""
        values = self.config.get("PossibleValues")
        if not isinstance(values, dict):
            return None
        return {str(key): str(label) for key, label in values.items()}


class DynamicFieldsFile(BaseModel):
    """The whole import file: ``{"DynamicFields": {<Name>: {...}}}``."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    dynamic_fields: dict[str, DynamicFieldDefinition] = Field(alias="DynamicFields")


def build(instance: InstanceSettings) -> tuple[ZnunyAdapter, ZnunyReceiver]:
    """The adapter and webhook receiver for one configured Znuny instance.

    Raises:
        ConfigError: the options are invalid, a secret is missing, or the DF definition file
            does not define the Dropdown/Multiselect fields the options name.
    """
    options = load_options(instance)
    adapter = ZnunyAdapter(
        instance.name,
        instance.url,
        options,
        possible_values=possible_values(instance.name, options),
        timeout=instance.timeout_seconds,
        verify_tls=instance.verify_tls,
    )
    secret = instance.webhook_secret.get_secret_value() if instance.webhook_secret else ""
    receiver = ZnunyReceiver(
        instance.name,
        secret,
        auth=options.webhook_auth,
        basic_user=options.webhook_basic_user,
        header_name=options.webhook_header,
        managed_fields=tuple(options.managed_field_names.values()),
    )
    return adapter, receiver


def load_dynamic_fields(path: Path) -> DynamicFieldsFile:
    """Read a Znuny DF import/export YAML file.

    Raises:
        ValueError: unreadable or not of the ``{DynamicFields: {Name: {...}}}`` shape.
    """
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ValueError(f"cannot read {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ValueError(f"{path} is not valid YAML: {exc}") from None
    try:
        return DynamicFieldsFile.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "top"
        raise ValueError(f"{path}: {where}: {first['msg']}") from None


def possible_values(instance: str, options: ZnunyOptions) -> dict[str, frozenset[str]]:
    """DF name → PossibleValues keys of the tier, level and tags fields, from the DF file.

    Raises:
        ConfigError: naming ``instances.<name>.options.dynamic_fields_file``.
    """
    where = f"instances.{instance}.options.dynamic_fields_file"
    try:
        definitions = load_dynamic_fields(options.dynamic_fields_file).dynamic_fields
    except ValueError as exc:
        raise ConfigError([ConfigIssue(SETTINGS_FILE, where, str(exc))]) from None
    by_name = {definition.name: definition for definition in definitions.values()}
    found: dict[str, frozenset[str]] = {}
    issues: list[ConfigIssue] = []
    for name in (options.tier_field, options.level_field, options.tags_field):
        definition = by_name.get(name)
        values = definition.possible_values if definition is not None else None
        if values is None:
            issues.append(
                ConfigIssue(
                    SETTINGS_FILE,
                    where,
                    f"{options.dynamic_fields_file} defines no Dropdown/Multiselect {name!r} with "
                    "PossibleValues; give the DF file that was imported into Znuny",
                )
            )
            continue
        found[name] = frozenset(values)
    if issues:
        raise ConfigError(issues)
    return found
