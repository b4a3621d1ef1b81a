"""Loading the admin-edited YAML under ``mappings/`` into a validated, compiled :class:`Policy`.

Every problem is collected, not just the first: ``bitrix-sla check-config`` shows them all,
each as ``file: key.path: reason``. The service refuses to start while any remains.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from connector.errors import ConfigError, ConfigIssue
from connector.policy.calendar import BusinessCalendar, compile_calendar
from connector.policy.calendar_spec import CalendarSpec
from connector.policy.classification import ClassificationRules, Classifier
from connector.policy.decision import TOPICS, Policy
from connector.policy.levels import LevelsFile
from connector.policy.overrides import OverridesFile
from connector.policy.tiers import TiersFile

MAPPINGS_ENV = "BITRIX_SLA_MAPPINGS"
FILES = ("levels.yaml", "tiers.yaml", "calendars.yaml", "classification.yaml", "overrides.yaml")

ModelT = TypeVar("ModelT", bound=BaseModel)


class CalendarsFile(BaseModel):
    """``mappings/calendars.yaml``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    calendars: dict[str, CalendarSpec]


class _UniqueKeyLoader(yaml.SafeLoader):
    """A safe loader that refuses duplicate keys, which YAML would otherwise silently merge."""


def _construct_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark
            )
        seen.add(key)
    return loader.construct_mapping(node)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def format_loc(loc: Iterable[int | str]) -> str:
    """``("calendars", "moscow", "week", "mon", 1)`` → ``calendars.moscow.week.mon[1]``."""
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += ("." if text else "") + str(part)
    return text


def _issues_from(file: str, error: ValidationError) -> list[ConfigIssue]:
    issues = []
    for item in error.errors():
        message = str(item["msg"]).removeprefix("Value error, ")
        issues.append(ConfigIssue(file=file, path=format_loc(item["loc"]), message=message))
    return issues


def read_yaml(path: Path) -> Any:
    """Parse one YAML file; syntax errors become a :class:`ConfigError` naming line and column."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        issue = ConfigIssue(file=str(path), path="", message=exc.strerror or str(exc))
        raise ConfigError([issue]) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:  # e.g. saved as Windows-1251 by a Windows editor
        line = raw.count(b"\n", 0, exc.start) + 1
        message = f"line {line}: not UTF-8 (byte 0x{raw[exc.start]:02x}); save the file as UTF-8"
        raise ConfigError([ConfigIssue(file=str(path), path="", message=message)]) from None
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError([ConfigIssue(file=str(path), path="", message=where + problem)]) from None


def _model(
    directory: Path, name: str, model: type[ModelT], issues: list[ConfigIssue]
) -> ModelT | None:
    path = directory / name
    try:
        data = read_yaml(path)
    except ConfigError as exc:
        issues.extend(ConfigIssue(file=name, path=i.path, message=i.message) for i in exc.issues)
        return None
    if not isinstance(data, Mapping):
        issues.append(ConfigIssue(file=name, path="", message="expected a mapping at the top"))
        return None
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        issues.extend(_issues_from(name, exc))
        return None


@dataclass(frozen=True)
class Mappings:
    """The loaded mappings: the compiled policy and where it came from."""

    directory: Path
    policy: Policy


def default_mappings_dir() -> Path:
    """``$BITRIX_SLA_MAPPINGS``, else ``./mappings``, else the ``mappings/`` beside the code."""
    configured = os.environ.get(MAPPINGS_ENV)
    if configured:
        return Path(configured)
    local = Path("mappings")
    if (local / "levels.yaml").is_file():
        return local
    return Path(__file__).resolve().parent.parent / "mappings"


def _cross_checks(
    levels: LevelsFile | None,
    tiers: TiersFile | None,
    calendars: CalendarsFile | None,
    overrides: OverridesFile | None,
) -> list[ConfigIssue]:
    issues: list[ConfigIssue] = []
    if levels is not None and tiers is not None:
        known = sorted(levels.matrix)
        if tiers.default_tier not in levels.matrix:
            issues.append(
                ConfigIssue(
                    file="tiers.yaml",
                    path="default_tier",
                    message=f"unknown tier {tiers.default_tier!r} (levels.yaml matrix has {known})",
                )
            )
        for index, rule in enumerate(tiers.rules):
            if rule.tier not in levels.matrix:
                issues.append(
                    ConfigIssue(
                        file="tiers.yaml",
                        path=f"rules[{index}].tier",
                        message=f"unknown tier {rule.tier!r} (levels.yaml matrix has {known})",
                    )
                )
    if levels is not None and calendars is not None:
        named = [("calendar", levels.calendar)] + [
            (f"levels.{lid}.calendar", lvl.calendar)
            for lid, lvl in levels.levels.items()
            if lvl.calendar is not None
        ]
        for path, name in named:
            if name not in calendars.calendars:
                issues.append(
                    ConfigIssue(
                        file="levels.yaml",
                        path=path,
                        message=f"unknown calendar {name!r} (calendars.yaml has "
                        f"{sorted(calendars.calendars)})",
                    )
                )
    if levels is not None and overrides is not None:
        allowed: dict[str, set[str]] = {
            "urgency": {"emergency", "standard"},
            "level": set(levels.levels),
            "topic": set(TOPICS),
            "scope": {"in", "out"},
        }
        for kind, values in allowed.items():
            for index, rule in enumerate(getattr(overrides, kind)):
                if rule.set is not None and rule.set not in values:
                    issues.append(
                        ConfigIssue(
                            file="overrides.yaml",
                            path=f"{kind}[{index}].set",
                            message=f"{rule.set!r} is not one of {sorted(values)}",
                        )
                    )
    return issues


def load_mappings(directory: Path | str | None = None) -> Mappings:
    """Load, validate and compile every mapping file, or raise one :class:`ConfigError`."""
    root = Path(directory) if directory is not None else default_mappings_dir()
    if not root.is_dir():
        raise ConfigError(
            [ConfigIssue(file=str(root), path="", message="mappings directory not found")]
        )
    issues: list[ConfigIssue] = []
    levels = _model(root, "levels.yaml", LevelsFile, issues)
    tiers = _model(root, "tiers.yaml", TiersFile, issues)
    calendars = _model(root, "calendars.yaml", CalendarsFile, issues)
    rules = _model(root, "classification.yaml", ClassificationRules, issues)
    overrides = _model(root, "overrides.yaml", OverridesFile, issues)
    issues.extend(_cross_checks(levels, tiers, calendars, overrides))
    if issues or levels is None or tiers is None or calendars is None:
        raise ConfigError(issues, directory=root)
    if rules is None or overrides is None:
        raise ConfigError(issues, directory=root)

    compiled: dict[str, BusinessCalendar] = {}
    for name, spec in calendars.calendars.items():
        try:
            compiled[name] = compile_calendar(name, spec)
        except Exception as exc:  # a config problem must never end in a traceback
            # e.g. a holiday subdivision python-holidays does not know (NotImplementedError)
            issues.append(
                ConfigIssue(
                    file="calendars.yaml",
                    path=f"calendars.{name}",
                    message=f"cannot compile this calendar: {exc}",
                )
            )
    if issues:
        raise ConfigError(issues, directory=root)
    policy = Policy(
        levels=levels,
        tiers=tiers,
        calendars=compiled,
        classifier=Classifier(rules),
        overrides=overrides,
    )
    return Mappings(directory=root, policy=policy)
