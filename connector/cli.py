"""``bitrix-sla``: operator commands. The command names and flags are part of the product."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import BinaryIO, TextIO

from pydantic import ValidationError

from connector import __version__
from connector.errors import BackupError, ConfigError, ConfigIssue, StoreUnavailableError
from connector.mappings import (
    CalendarsFile,
    Mappings,
    default_mappings_dir,
    format_loc,
    load_mappings,
    read_yaml,
)
from connector.policy.calendar import cap, compile_calendar, due
from connector.policy.decision import SlaDecision, decide
from connector.policy.ticket import TicketSnapshot


class UsageError(Exception):
    """Bad command-line input; printed without a traceback, exit status 2."""


def _parse_instant(text: str, what: str, zone: dt.tzinfo | None = None) -> dt.datetime:
    try:
        value = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(f"{what}: {text!r} is not an ISO 8601 date-time") from None
    if value.tzinfo is None:
        if zone is None:
            raise UsageError(f"{what}: {text!r} has no UTC offset; add one, e.g. +03:00")
        value = value.replace(tzinfo=zone)
    return value


def _load(directory: str | Path | None) -> Mappings:
    return load_mappings(Path(directory) if directory else None)


# -- check-config ----------------------------------------------------------------------------


def cmd_check_config(args: argparse.Namespace, out: TextIO) -> int:
    """The settings (file and environment), every instance's options and the mappings, checked
    as the service would at start, without contacting the database or any helpdesk."""
    from connector.helpdesks.registry import build_all, close_adapters
    from connector.settings import Settings, load_settings

    issues: list[ConfigIssue] = []
    settings: Settings | None = None
    try:
        settings = load_settings(file=args.config) if args.config else load_settings()
        close_adapters(build_all(settings))
    except ConfigError as exc:
        issues.extend(exc.issues)
    mappings: Mappings | None = None
    try:
        mappings = _load(args.mappings or (settings.mappings_dir if settings is not None else None))
    except ConfigError as exc:
        issues.extend(exc.issues)
    if issues or settings is None or mappings is None:
        for issue in issues:
            print(str(issue), file=out)
        print(f"{len(issues)} error(s)", file=out)
        return 1
    names = ", ".join(f"{i.kind}/{i.name}" for i in settings.instances)
    print(
        f"settings from {settings.source}: {len(settings.instances)} helpdesk instance(s)"
        + (f": {names}" if names else " (every webhook would get 404)"),
        file=out,
    )
    policy = mappings.policy
    for name, calendar in policy.calendars.items():
        known = f", holidays known until {calendar.covered_until}" if calendar.covered_until else ""
        print(f"calendar {name}: {calendar.zone.key}{known}", file=out)
    print(
        f"{len(policy.levels.levels)} levels, {len(policy.tiers.rules)} tier rules, "
        f"mappings from {mappings.directory}",
        file=out,
    )
    print("OK", file=out)
    return 0


# -- due -------------------------------------------------------------------------------------


def cmd_due(args: argparse.Namespace, out: TextIO) -> int:
    path = Path(args.calendars) if args.calendars else default_mappings_dir() / "calendars.yaml"
    data = read_yaml(path)
    try:
        calendars = CalendarsFile.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise UsageError(f"{path}: {format_loc(first['loc'])}: {first['msg']}") from None
    name = args.calendar
    if name is None:
        name = "moscow" if "moscow" in calendars.calendars else next(iter(calendars.calendars))
    if name not in calendars.calendars:
        raise UsageError(
            f"--calendar: no calendar {name!r} in {path} (has {sorted(calendars.calendars)})"
        )
    calendar = compile_calendar(name, calendars.calendars[name])
    start = _parse_instant(args.start, "--start", calendar.zone)
    if not 0 <= args.hours < math.inf:
        raise UsageError(f"--hours must be a number of hours, 0 or more, not {args.hours:g}")
    if args.cap_days is not None and args.cap_days < 0:
        raise UsageError("--cap-days must not be negative")
    try:
        result = due(start, args.hours, calendar)
        limit = None if args.cap_days is None else cap(start, args.cap_days, calendar)
    except OverflowError:
        raise UsageError(
            "the due time falls after the year 9999; give fewer hours or days"
        ) from None
    print(
        f"calendar {name} ({calendar.zone.key}), start {start.astimezone(calendar.zone)}", file=out
    )
    print(f"after {args.hours:g} working hours: {result.isoformat()}", file=out)
    if limit is not None:
        print(f"cap of {args.cap_days} calendar days: {limit.isoformat()}", file=out)
        result = min(result, limit)
    if not calendar.is_covered(result):
        print(f"warning: holidays known only until {calendar.covered_until}", file=out)
    print(result.isoformat(), file=out)
    return 0


# -- classify --------------------------------------------------------------------------------


def _utf8(data: bytes) -> str:
    """``data`` decoded as UTF-8, or a ValueError naming the first bad byte and the fix."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(
            f"not UTF-8 (byte 0x{data[exc.start]:02x} at offset {exc.start}); save it as UTF-8"
        ) from None


def cmd_classify(args: argparse.Namespace, out: TextIO) -> int:
    classifier = _load(args.mappings).policy.classifier
    failures = 0
    source: BinaryIO
    try:
        source = sys.stdin.buffer if args.jsonl == "-" else open(args.jsonl, "rb")  # noqa: SIM115
    except OSError as exc:
        raise UsageError(f"--jsonl: cannot read {args.jsonl}: {exc.strerror}") from None
    with source:
        for number, raw in enumerate(source, start=1):
            if not raw.strip():
                continue
            try:
                line = _utf8(raw)
                item = json.loads(line)
                if not isinstance(item, dict):
                    raise ValueError("expected a JSON object")
                subject, body = item.get("subject", ""), item.get("body", "")
                if not isinstance(subject, str) or not isinstance(body, str):
                    raise ValueError("'subject' and 'body' must be strings")
                if not subject and not body:
                    raise ValueError("needs 'subject' or 'body'")
            except ValueError as exc:
                print(f"{args.jsonl}:{number}: {exc}", file=sys.stderr)
                failures += 1
                continue
            found = classifier.classify(subject, body)
            record = {
                "id": item.get("id", number),
                "topic": found.topic,
                "scope": found.scope,
                "urgency": found.urgency,
                "out_reasons": list(found.out_reasons),
                "evidence": [e.model_dump() for e in found.evidence],
            }
            print(json.dumps(record, ensure_ascii=False), file=out)
    return 1 if failures else 0


# -- explain ---------------------------------------------------------------------------------


def render_decision(decision: SlaDecision, zone: dt.tzinfo) -> str:
    """The decision as an agent would like to read it."""
    lines = [
        f"ticket {decision.ticket_id}",
        f"  tier      {decision.tier}"
        + (f"  (rule {decision.tier_rule})" if decision.tier_rule else "  (default)"),
        f"  urgency   {decision.urgency}  ({decision.urgency_by})",
        f"  topic     {decision.topic}  ({decision.topic_by})",
        f"  scope     {decision.scope}  ({decision.scope_by})"
        + (f": {', '.join(decision.out_reasons)}" if decision.out_reasons else ""),
        f"  level     {decision.level} — {decision.level_label}  ({decision.level_by})",
        f"  budget    {decision.working_hours:g} working hours"
        + (f", at most {decision.cap_days} calendar days" if decision.cap_days else "")
        + f", calendar {decision.calendar}",
        f"  created   {decision.started_at.astimezone(zone).isoformat()}",
        f"  due       {decision.due_at.astimezone(zone).isoformat()}"
        f"  (by {decision.due_by.replace('_', ' ')})",
        f"  tags      {' '.join(decision.tags)}",
        "why:",
        *(f"  - {reason}" for reason in decision.reasons),
    ]
    if decision.warnings:
        lines += ["warnings:", *(f"  ! {warning}" for warning in decision.warnings)]
    return "\n".join(lines)


def cmd_explain(args: argparse.Namespace, out: TextIO) -> int:
    policy = _load(args.mappings).policy
    try:
        raw = _utf8(Path(args.ticket).read_bytes())
    except OSError as exc:
        raise UsageError(f"--ticket: cannot read {args.ticket}: {exc.strerror}") from None
    except ValueError as exc:
        raise UsageError(f"{args.ticket}: {exc}") from None
    try:
        ticket = TicketSnapshot.model_validate_json(raw)
    except ValidationError as exc:
        problems = "; ".join(f"{format_loc(e['loc']) or '(top)'}: {e['msg']}" for e in exc.errors())
        raise UsageError(f"{args.ticket}: not a ticket snapshot: {problems}") from None
    now = _parse_instant(args.now, "--now") if args.now else dt.datetime.now(dt.UTC)
    decision = decide(ticket, policy, now)
    if args.json:
        print(decision.model_dump_json(indent=2), file=out)
    else:
        print(render_decision(decision, policy.calendars[decision.calendar].zone), file=out)
    return 0


# -- wiring ----------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bitrix-sla",
        description="Enforce the 1C-Bitrix technical-support SLA policy on helpdesk tickets.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(
        name: str, handler: Callable[[argparse.Namespace, TextIO], int], text: str
    ) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=text, description=text)
        sub.set_defaults(handler=handler)
        return sub

    mappings_help = (
        "directory of the mapping YAML files (default: $BITRIX_SLA_MAPPINGS or ./mappings)"
    )

    sub = add(
        "check-config",
        cmd_check_config,
        "validate the settings and mapping files; print OK or every error",
    )
    sub.add_argument("--mappings", metavar="DIR", help=mappings_help)
    sub.add_argument("--config", metavar="FILE", help="settings YAML (default: $BITRIX_SLA_CONFIG)")

    sub = add("due", cmd_due, "compute a due time in working hours on a calendar")
    sub.add_argument(
        "--start", required=True, help="ISO 8601 start; without an offset: calendar time"
    )
    sub.add_argument("--hours", required=True, type=float, help="working hours (fractions allowed)")
    sub.add_argument("--calendar", metavar="NAME", help="calendar name (default: moscow)")
    sub.add_argument("--calendars", metavar="FILE", help="calendars YAML (default: the mappings')")
    sub.add_argument(
        "--cap-days", type=int, metavar="K", help="cap: K calendar days not counting weekends"
    )

    sub = add("classify", cmd_classify, "classify requests from a JSON-lines file (- for stdin)")
    sub.add_argument("--jsonl", required=True, metavar="FILE")
    sub.add_argument("--mappings", metavar="DIR", help=mappings_help)

    sub = add("explain", cmd_explain, "show the SLA decision for a ticket snapshot, with reasons")
    sub.add_argument("--ticket", required=True, metavar="FILE", help="ticket snapshot JSON")
    sub.add_argument("--mappings", metavar="DIR", help=mappings_help)
    sub.add_argument("--now", metavar="ISO", help="decide as of this instant (default: now)")
    sub.add_argument("--json", action="store_true", help="machine-readable output")

    from connector.cli_service import register

    register(add)
    return parser


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    """Entry point of the ``bitrix-sla`` console script."""
    args = build_parser().parse_args(argv)
    stream = out if out is not None else sys.stdout
    try:
        return int(args.handler(args, stream))
    except (ConfigError, StoreUnavailableError, BackupError) as exc:
        print(f"bitrix-sla: {exc}", file=sys.stderr)
        return 1
    except UsageError as exc:
        print(f"bitrix-sla {args.command}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # Ctrl-C: one line, not a traceback
        print(f"bitrix-sla {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
