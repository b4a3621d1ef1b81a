"""``bitrix-sla`` service commands: serve, web, worker, db, jobs, events, backfill."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from connector import logs
from connector.cli import UsageError
from connector.errors import PermanentError, TransientError
from connector.pipeline import backup, db
from connector.pipeline.plan import parse_due
from connector.pipeline.store import MAX_ID, STATUSES, Job, JobStore
from connector.policy.decision import Policy
from connector.preview import TicketPreview, preview
from connector.settings import MAX_WORKER_CONCURRENCY, Settings, load_settings

if TYPE_CHECKING:
    from connector.service import Service

Adder = Callable[[str, Callable[[argparse.Namespace, TextIO], int], str], argparse.ArgumentParser]
log = logging.getLogger("bitrix_sla")


def _settings(args: argparse.Namespace) -> Settings:
    return load_settings(file=args.config) if args.config else load_settings()


def _store(args: argparse.Namespace, *, migrate: bool = True) -> JobStore:
    settings = _settings(args)
    return JobStore.open(settings.database_url.get_secret_value(), migrate=migrate)


def _log_level(args: argparse.Namespace) -> str:
    """``--log-level``, else ``$BITRIX_SLA_LOG_LEVEL``, else INFO."""
    return str(args.log_level) if args.log_level else logs.level_from_environment()


def _whole(
    low: int, high: int | None, what: str, *, bounds: str | None = None
) -> Callable[[str], int]:
    """An argparse ``type`` for a whole number in ``[low, high]``; its error names the value and
    the range (``--port: '99999' is not a port number: use 0 to 65535``), or ``bounds`` if
    given."""
    if bounds is None:
        bounds = f"{low} to {high}" if high is not None else f"{low} or more"

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < low or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"{text!r} is not {what}: use {bounds}")
        return value

    return parse


def _seconds(text: str) -> float:
    """An argparse ``type`` for a duration: a finite number of seconds, not negative."""
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds (0 or more)")
    return value


def _instant(text: str) -> dt.datetime:
    """An argparse ``type`` for an ISO 8601 date or date-time; one without an offset is UTC."""
    try:
        value = dt.datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO 8601 date or time") from None
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)


PORT = _whole(0, 65535, "a port number")
COUNT = _whole(1, None, "a count")
SLOTS = _whole(1, MAX_WORKER_CONCURRENCY, "a number of worker threads")
JOB_ID = _whole(1, MAX_ID, "a job id")
#: ``--limit``: the drivers bind 64 bits at most (a larger one crashed with a traceback)
LIMIT = _whole(1, MAX_ID, "a count", bounds=f"1 or more, up to {MAX_ID}")


def _on_reload(service: Service) -> None:
    """Reload the mappings on SIGHUP (``systemctl reload``), on a thread of its own: compiling
    the calendars takes a moment, and a signal handler must return at once."""

    def handler(_signum: int, _frame: object) -> None:
        log.info("received SIGHUP, reloading the mappings")
        threading.Thread(target=service.reload_mappings, name="reload").start()

    signal.signal(signal.SIGHUP, handler)


def _on_terminate(stop: Callable[[], None]) -> None:
    """Call ``stop`` once on SIGTERM or SIGINT."""
    fired = threading.Event()

    def handler(signum: int, _frame: object) -> None:
        if not fired.is_set():
            fired.set()
            log.info("received %s, shutting down", signal.Signals(signum).name)
            threading.Thread(target=stop, name="shutdown").start()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


# -- db ----------------------------------------------------------------------------------------


def _migrate(url: str) -> tuple[list[int], int]:
    """Apply pending migrations to the store at ``url``: the versions applied, and the one now."""
    store = JobStore.open(url, migrate=False)
    try:
        with db.opening(url):
            return db.upgrade(store.engine), db.current_version(store.engine)
    finally:
        store.close()


def cmd_db_upgrade(args: argparse.Namespace, out: TextIO) -> int:
    applied, version = _migrate(_settings(args).database_url.get_secret_value())
    print(f"applied {applied}" if applied else "nothing to apply", file=out)
    print(f"schema version {version}", file=out)
    return 0


def _sqlite_database(args: argparse.Namespace) -> tuple[str, Path]:
    """The job store's URL and SQLite file; a usage error for other engines."""
    url = _settings(args).database_url.get_secret_value()
    path = db.sqlite_path(url)
    if path is None:
        raise UsageError(
            f"the job store at {db.redact(url)} is not a SQLite file; back up PostgreSQL with "
            "its own tools (pg_dump, or the base backups of your database service)"
        )
    return url, path


def cmd_db_backup(args: argparse.Namespace, out: TextIO) -> int:
    _, database = _sqlite_database(args)
    started = time.monotonic()
    snapshot, removed = backup.backup(database, Path(args.destination), keep=args.keep)
    seconds = time.monotonic() - started
    print(f"backed up {database} to {snapshot.path} in {seconds:.1f} s", file=out)
    print(f"  {snapshot.describe()}", file=out)
    for path in removed:
        print(f"removed the older backup {path}", file=out)
    return 0


def _held(existed: bool, snapshot: backup.Snapshot | None) -> str:
    if snapshot is not None:
        return snapshot.describe()
    return "unreadable (damaged, or not a job store)" if existed else "no database"


def cmd_db_restore(args: argparse.Namespace, out: TextIO) -> int:
    url, database = _sqlite_database(args)
    source = Path(args.source)
    if not args.yes:
        incoming = backup.inspect_file(source)
        print(f"{source}: {incoming.describe()}", file=out)
        held = _held(database.is_file(), backup.current(database))
        print(f"{database}: {held}", file=out)
        raise UsageError(f"this would replace everything in {database}; add --yes to restore")
    existed = database.is_file()
    restored, before = backup.restore(database, source)
    applied, _ = _migrate(url)
    print(f"restored {database} from {source}", file=out)
    print(f"  now:    {restored.describe()}", file=out)
    print(f"  before: {_held(existed, before)}", file=out)
    if applied:
        print(f"  applied migrations {applied}", file=out)
    if restored.newest_event is not None:
        since = restored.newest_event.isoformat(timespec="seconds")
        print(
            "Webhooks that arrived after the backup was taken are not in it; queue the tickets "
            f"changed since with: bitrix-sla backfill --since {since}",
            file=out,
        )
    return 0


# -- jobs --------------------------------------------------------------------------------------


def _when(moment: dt.datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S") if moment else "-"


def _row(job: Job) -> str:
    error = (job.last_error or "").replace("\n", " ")
    if len(error) > 60:
        error = error[:57] + "..."
    ticket = f"{job.kind}/{job.instance}/{job.ticket_id}"
    when = _when(job.run_at)
    return f"{job.id:>8}  {job.status:<7}  {ticket:<32}  {job.attempts:>3}  {when}  {error}"


def cmd_jobs_list(args: argparse.Namespace, out: TextIO) -> int:
    store = _store(args)
    listed = store.list_jobs(args.status, args.limit)
    store.close()
    print(
        f"{'id':>8}  {'status':<7}  {'ticket':<32}  {'att':>3}  {'run at (UTC)':<19}  last error",
        file=out,
    )
    for job in listed:
        print(_row(job), file=out)
    if not listed:
        print("(no jobs)", file=out)
    return 0


def cmd_jobs_show(args: argparse.Namespace, out: TextIO) -> int:
    store = _store(args)
    job = store.get(args.id)
    if job is None:
        store.close()
        print(f"bitrix-sla jobs show: no job {args.id}", file=sys.stderr)
        return 1
    runs = store.runs(job.id)
    store.close()
    document: dict[str, Any] = {"job": job.model_dump(mode="json"), "runs": runs}
    print(json.dumps(document, indent=2, default=str, ensure_ascii=False), file=out)
    return 0


def cmd_jobs_replay(args: argparse.Namespace, out: TextIO) -> int:
    store = _store(args)
    try:
        if args.all_dead:
            count = store.replay_all_dead()
            print(f"replayed {count} dead job(s)", file=out)
            return 0
        if args.id is None:
            print("bitrix-sla jobs replay: give a job id or --all-dead", file=sys.stderr)
            return 2
        if not store.replay(args.id):
            job = store.get(args.id)
            state = "does not exist" if job is None else f"is {job.status}, not dead"
            print(f"bitrix-sla jobs replay: job {args.id} {state}", file=sys.stderr)
            return 1
        print(f"job {args.id} queued again", file=out)
        return 0
    finally:
        store.close()


# -- events ------------------------------------------------------------------------------------


def cmd_events_list(args: argparse.Namespace, out: TextIO) -> int:
    store = _store(args)
    try:
        listed = store.list_events(
            instance=args.instance, ticket_id=args.ticket, since=args.since, limit=args.limit
        )
    finally:
        store.close()
    print(
        f"{'id':>9}  {'received (UTC)':<19}  {'ticket':<32}  {'event':<24}  {'bytes':>7}  delivery",
        file=out,
    )
    for event in listed:
        ticket = f"{event.kind}/{event.instance}/{event.ticket_id}"
        print(
            f"{event.id:>9}  {_when(event.received_at)}  {ticket:<32}  {event.event or '-':<24}  "
            f"{event.body_length:>7}  {event.delivery_id}",
            file=out,
        )
    if not listed:
        print("(no events)", file=out)
    return 0


def cmd_events_show(args: argparse.Namespace, out: TextIO) -> int:
    store = _store(args)
    try:
        found = store.get_event(args.id)
    finally:
        store.close()
    if found is None:
        print(f"bitrix-sla events show: no event {args.id}", file=sys.stderr)
        return 1
    event, body = found
    try:
        parsed: Any = json.loads(body)
    except ValueError:
        parsed = body  # stored as received; not every helpdesk body need be JSON
    document = {"event": event.model_dump(mode="json"), "body": parsed}
    print(json.dumps(document, indent=2, ensure_ascii=False), file=out)
    return 0


def cmd_events_replay(args: argparse.Namespace, out: TextIO) -> int:
    """Queue every ticket that had a webhook in the window, once (reason ``replay``): the worker
    reads each ticket afresh, so this is how stored events are acted on again."""
    if args.until is not None and args.until <= args.since:
        print("bitrix-sla events replay: --until must be later than --since", file=sys.stderr)
        return 2
    store = _store(args)
    try:
        tickets = store.tickets_with_events(
            args.since, args.until, instance=args.instance, ticket_id=args.ticket
        )
        for done, (kind, instance, ticket_id) in enumerate(tickets, 1):
            store.enqueue(kind, instance, ticket_id, "replay")
            if done % 50 == 0:
                print(f"\r{done} of {len(tickets)} tickets queued", end="", file=sys.stderr)
    finally:
        store.close()
    print(f"queued {len(tickets)} ticket(s) that had webhooks in the window", file=out)
    return 0


# -- backfill ----------------------------------------------------------------------------------


def cmd_backfill(args: argparse.Namespace, out: TextIO) -> int:
    from connector.service import Service

    since: dt.datetime | None = args.since
    settings = _settings(args)
    names = [instance.name for instance in settings.instances]
    if not names:
        print(
            "bitrix-sla backfill: no helpdesk instances are configured; list them under "
            "'instances:' in the settings file",
            file=sys.stderr,
        )
        return 2
    if args.instance is not None and args.instance not in names:
        print(
            f"bitrix-sla backfill: no instance {args.instance!r} is configured "
            f"(configured: {', '.join(names)})",
            file=sys.stderr,
        )
        return 2
    service = Service.from_settings(settings)
    chosen = {key: a for key, a in service.adapters.items() if args.instance in (None, key[1])}
    total = 0
    for (kind, name), adapter in chosen.items():
        count = 0
        for ticket_id in adapter.changed_since(since):
            service.store.enqueue(kind, name, ticket_id, "backfill")
            count += 1
            if count % 50 == 0:
                print(f"\r{kind}/{name}: {count} tickets queued", end="", file=sys.stderr)
        print(f"\r{kind}/{name}: {count} tickets queued", file=sys.stderr)
        total += count
    service.store.close()
    print(f"queued {total} open ticket(s)", file=out)
    return 0


# -- preview -----------------------------------------------------------------------------------


def _due_text(value: str | None, zone: dt.tzinfo) -> str:
    """A due time as agents read it (the calendar's zone, to the minute), or as stored."""
    if not value:
        return "-"
    moment = parse_due(value)
    return repr(value) if moment is None else moment.astimezone(zone).strftime("%Y-%m-%d %H:%M")


def _changes(item: TicketPreview, policy: Policy) -> list[str]:
    """``what: before -> after`` for each write the worker would make."""
    assert item.plan is not None and item.decision is not None
    zone = policy.calendars[item.decision.calendar].zone
    lines = []
    for name, wanted in item.plan.fields.items():
        before, after = item.current.get(name), wanted
        if name == "sla_due_at":
            lines.append(f"due {_due_text(before, zone)} -> {_due_text(after, zone)}")
        else:
            lines.append(f"{name.removeprefix('sla_')} {before or '-'} -> {after}")
    tags = [f"+{tag}" for tag in item.plan.add_tags] + [f"-{tag}" for tag in item.plan.remove_tags]
    if tags:
        lines.append(f"tags {' '.join(tags)}")
    return lines


def _ticket_label(item: TicketPreview) -> str:
    number = f" #{item.number}" if item.number and item.number != item.ticket_id else ""
    return f"ticket {item.ticket_id}{number}"


def cmd_preview(args: argparse.Namespace, out: TextIO) -> int:
    from connector.helpdesks.registry import build_all, close_adapters
    from connector.mappings import load_mappings

    settings = _settings(args)
    names = sorted({instance.name for instance in settings.instances})
    if not names:
        raise UsageError("no helpdesk instances are configured; list them under 'instances:'")
    if args.instance is not None and args.instance not in names:
        raise UsageError(f"no instance {args.instance!r} is configured ({', '.join(names)})")
    if args.ticket and args.instance is None and len(names) > 1:
        raise UsageError(f"--ticket needs --instance: several are configured ({', '.join(names)})")
    if args.ticket and args.since is not None:
        raise UsageError("give --ticket or --since, not both")
    policy = load_mappings(Path(args.mappings) if args.mappings else settings.mappings_dir).policy
    built = build_all(settings)
    now = dt.datetime.now(dt.UTC)
    unreadable = 0
    try:
        for (kind, name), (adapter, _) in sorted(built.items()):
            if args.instance not in (None, name):
                continue
            read = changing = failed = 0

            def progress(count: int, where: str = f"{kind}/{name}") -> None:
                if not args.ticket and count % 50 == 0:
                    print(f"\r{where}: {count} tickets read", end="", file=sys.stderr)

            try:
                items = preview(
                    adapter, policy, now, tickets=args.ticket, since=args.since, progress=progress
                )
                for item in items:
                    read += 1
                    changing += item.changes
                    failed += item.error is not None
                    _print_preview(item, policy, out, json_lines=args.json, full=bool(args.ticket))
            except (PermanentError, TransientError) as exc:  # listing the open tickets failed
                print(f"bitrix-sla preview: {kind}/{name}: {exc}", file=sys.stderr)
                failed += 1
            if not args.ticket:
                print(f"\r{kind}/{name}: {read} tickets read", file=sys.stderr)
            if not args.json:
                print(
                    f"{kind}/{name}: {read} ticket(s) read, {changing} would change, "
                    f"{failed} unreadable",
                    file=out,
                )
            unreadable += failed
    finally:
        close_adapters(built)
    return 1 if unreadable else 0


def _print_preview(
    item: TicketPreview, policy: Policy, out: TextIO, *, json_lines: bool, full: bool
) -> None:
    from connector.cli import render_decision

    if json_lines:
        data = item.model_dump(mode="json")
        data["changes"] = item.changes
        print(json.dumps(data, ensure_ascii=False), file=out)
        return
    if item.error is not None:
        print(f"{_ticket_label(item)}: unreadable: {item.error}", file=out)
        return
    assert item.decision is not None
    if full:
        zone = policy.calendars[item.decision.calendar].zone
        print(render_decision(item.decision, zone), file=out)
        changes = _changes(item, policy)
        print("would write:" if changes else "would write: nothing, it is up to date", file=out)
        for line in changes:
            print(f"  {line}", file=out)
    elif item.changes:
        print(f"{_ticket_label(item)}: {'; '.join(_changes(item, policy))}", file=out)


# -- running -----------------------------------------------------------------------------------


def cmd_worker(args: argparse.Namespace, out: TextIO) -> int:
    from connector.service import Service

    logs.configure(_log_level(args))
    service = Service.from_settings(_settings(args))
    worker = service.worker(args.concurrency)
    _on_terminate(lambda: worker.stop(args.grace))
    _on_reload(service)
    worker.start()  # before the status server, so its first probe already sees a running worker
    if args.metrics_port is not None:
        from connector.pipeline.status import serve_status

        status = serve_status(worker, args.metrics_host, args.metrics_port)
        print(f"status on http://{args.metrics_host}:{status.server_port}", file=out, flush=True)
    worker.wait_stopped()
    service.store.close()
    return 0


def cmd_serve(args: argparse.Namespace, out: TextIO) -> int:
    from werkzeug.serving import make_server

    from connector.service import Service
    from webhooks.app import create_app, freeze_boot_heap

    logs.configure(_log_level(args))
    service = Service.from_settings(_settings(args))
    worker = service.worker(args.concurrency)
    app = create_app(service, worker=worker)
    server = make_server(args.host, args.port, app, threaded=True, request_handler=logs.AccessLog)
    freeze_boot_heap()
    worker.start()

    def stop() -> None:
        server.shutdown()
        worker.stop(args.grace)

    _on_terminate(stop)
    _on_reload(service)
    print(f"listening on http://{args.host}:{server.server_port}", file=out, flush=True)
    server.serve_forever()
    worker.wait_stopped()  # running jobs finish (or the grace period ends) before we close
    service.store.close()
    return 0


def cmd_web(args: argparse.Namespace, out: TextIO) -> int:
    settings = _settings(args)
    store = JobStore.open(settings.database_url.get_secret_value())  # migrate once, not per worker
    store.close()
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="bitrix-sla-metrics-")
    if args.config:
        os.environ["BITRIX_SLA_CONFIG"] = str(Path(args.config).resolve())
    level = _log_level(args)
    os.environ[logs.LEVEL_VARIABLE] = level  # for the app in gunicorn's workers (webhooks.wsgi)
    command = [
        "gunicorn",
        "--log-level",
        level.lower(),
        "--workers",
        str(args.workers),
        "--worker-class",
        "gthread",
        "--threads",
        str(args.threads),
        "--bind",
        f"{args.host}:{args.port}",
        "--graceful-timeout",
        str(int(args.grace)),
        "--access-logfile",
        "-",
        "webhooks.wsgi:app",
    ]
    executable = Path(sys.executable).parent / "gunicorn"
    os.execv(str(executable), command)


# -- wiring ------------------------------------------------------------------------------------


def register(add: Adder) -> None:
    """Add the service commands to the ``bitrix-sla`` parser."""

    def common(sub: argparse.ArgumentParser) -> None:
        sub.add_argument(
            "--config", metavar="FILE", help="settings YAML (default: $BITRIX_SLA_CONFIG)"
        )

    def log_level(sub: argparse.ArgumentParser) -> None:
        sub.add_argument(
            "--log-level",
            type=str.upper,
            choices=logs.LEVELS,
            help=f"default: ${logs.LEVEL_VARIABLE}, else INFO",
        )

    def running(sub: argparse.ArgumentParser) -> None:
        common(sub)
        sub.add_argument("--concurrency", type=SLOTS, help="worker threads (default: settings)")
        sub.add_argument(
            "--grace", type=_seconds, default=30.0, help="seconds to finish jobs on SIGTERM"
        )
        log_level(sub)

    sub = add("serve", cmd_serve, "web edge and worker in one process (the embedded default)")
    running(sub)
    sub.add_argument("--host", default="127.0.0.1")
    sub.add_argument("--port", type=PORT, default=8080)

    sub = add("web", cmd_web, "the web edge under gunicorn (for containers)")
    common(sub)
    sub.add_argument("--host", default="0.0.0.0")
    sub.add_argument("--port", type=PORT, default=8080)
    sub.add_argument("--workers", type=COUNT, default=4, help="processes")
    sub.add_argument("--threads", type=COUNT, default=8, help="threads per process (group commit)")
    sub.add_argument("--grace", type=_seconds, default=30.0)
    log_level(sub)

    sub = add("worker", cmd_worker, "run jobs: read tickets, decide, write back")
    running(sub)
    sub.add_argument(
        "--metrics-port", type=PORT, help="serve /healthz and /metrics on this port (0: any free)"
    )
    sub.add_argument("--metrics-host", default="0.0.0.0")

    database = add("db", cmd_db_upgrade, "the job store: schema migrations, backup, restore")
    actions = database.add_subparsers(dest="action", required=True, metavar="ACTION")
    upgrade = actions.add_parser("upgrade", help="apply pending schema migrations")
    upgrade.set_defaults(handler=cmd_db_upgrade)
    common(upgrade)
    copy = actions.add_parser("backup", help="copy the SQLite job store while it runs")
    copy.set_defaults(handler=cmd_db_backup)
    copy.add_argument("destination", metavar="PATH", help="a new file, or a directory")
    copy.add_argument(
        "--keep",
        type=COUNT,
        metavar="N",
        help="with a directory: keep its N newest backups, remove the older ones",
    )
    common(copy)
    restore = actions.add_parser("restore", help="replace the SQLite job store with a backup")
    restore.set_defaults(handler=cmd_db_restore)
    restore.add_argument("source", metavar="FILE", help="a file made by 'db backup'")
    restore.add_argument("--yes", action="store_true", help="really replace the current data")
    common(restore)

    sub = add(
        "backfill", cmd_backfill, "queue every open ticket (after a mappings change or install)"
    )
    common(sub)
    sub.add_argument("--instance", metavar="NAME", help="only this helpdesk instance")
    sub.add_argument(
        "--since", type=_instant, metavar="DATE", help="only tickets changed since (ISO 8601)"
    )

    jobs = add("jobs", cmd_jobs_list, "inspect and replay jobs (dead letters)")
    actions = jobs.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = actions.add_parser("list", help="list jobs, newest first")
    listing.set_defaults(handler=cmd_jobs_list)
    listing.add_argument("--status", choices=STATUSES)
    listing.add_argument("--limit", type=LIMIT, default=50)
    common(listing)
    show = actions.add_parser("show", help="one job with its runs")
    show.set_defaults(handler=cmd_jobs_show)
    show.add_argument("id", type=JOB_ID)
    common(show)
    replay = actions.add_parser("replay", help="queue dead jobs again")
    replay.set_defaults(handler=cmd_jobs_replay)
    replay.add_argument("id", type=JOB_ID, nargs="?")
    replay.add_argument("--all-dead", action="store_true")
    common(replay)

    events = add("events", cmd_events_list, "stored webhooks: list, show, replay")
    actions = events.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = actions.add_parser("list", help="stored webhooks, newest first, without bodies")
    listing.set_defaults(handler=cmd_events_list)
    listing.add_argument("--instance", metavar="NAME")
    listing.add_argument("--ticket", metavar="ID", help="the helpdesk's ticket id")
    listing.add_argument("--since", type=_instant, metavar="DATE", help="received since")
    listing.add_argument("--limit", type=LIMIT, default=50)
    common(listing)
    show = actions.add_parser("show", help="one stored webhook with its body as received")
    show.set_defaults(handler=cmd_events_show)
    show.add_argument("id", type=_whole(1, MAX_ID, "an event id"))
    common(show)
    replay = actions.add_parser("replay", help="queue the tickets of the webhooks in a window")
    replay.set_defaults(handler=cmd_events_replay)
    replay.add_argument("--since", type=_instant, required=True, metavar="DATE")
    replay.add_argument("--until", type=_instant, metavar="DATE", help="default: now")
    replay.add_argument("--instance", metavar="NAME")
    replay.add_argument("--ticket", metavar="ID")
    common(replay)

    sub = add(
        "preview",
        cmd_preview,
        "what the worker would write to tickets now, read live, without writing",
    )
    common(sub)
    sub.add_argument("--instance", metavar="NAME", help="only this helpdesk instance")
    sub.add_argument(
        "--ticket",
        metavar="ID",
        action="append",
        help="this ticket, with the full decision (repeatable); default: every open ticket",
    )
    sub.add_argument(
        "--since", type=_instant, metavar="DATE", help="only open tickets changed since"
    )
    sub.add_argument("--mappings", metavar="DIR", help="mappings to try (default: the service's)")
    sub.add_argument("--json", action="store_true", help="one JSON object per ticket")

    register_helpdesk_commands(add)
    register_demo(add)


# -- helpdesk setup and sandboxes ----------------------------------------------------------------

HELPDESK_KINDS = ("zammad", "znuny")


def cmd_setup(args: argparse.Namespace, out: TextIO) -> int:
    """``bitrix-sla setup <kind> --instance NAME [--apply]``: delegate to the kind's setup."""
    import importlib

    settings = _settings(args)
    instance = settings.instance(args.kind, args.instance)
    if instance is None:
        names = [i.name for i in settings.instances if i.kind == args.kind]
        print(
            f"bitrix-sla setup: no {args.kind} instance {args.instance!r} in the settings "
            f"(configured: {names})",
            file=sys.stderr,
        )
        return 2
    module = importlib.import_module(f"connector.helpdesks.{args.kind}.setup")
    result: int = module.run_setup(instance, settings, apply=args.apply, out=out)
    return result


def cmd_sandbox(args: argparse.Namespace, out: TextIO) -> int:
    """``bitrix-sla sandbox <kind> --port P``: run a fake helpdesk until interrupted."""
    import importlib

    module = importlib.import_module(f"connector.sandbox.{args.kind}")
    result: int = module.run(args.host, args.port, out=out, webhook_url=args.webhook_url)
    return result


def register_helpdesk_commands(add: Adder) -> None:
    sub = add("setup", cmd_setup, "create or check the helpdesk fields, webhook and triggers")
    sub.add_argument("kind", choices=HELPDESK_KINDS)
    sub.add_argument("--instance", required=True, metavar="NAME")
    sub.add_argument("--apply", action="store_true", help="make the changes (default: show them)")
    sub.add_argument("--config", metavar="FILE", help="settings YAML (default: $BITRIX_SLA_CONFIG)")

    sub = add("sandbox", cmd_sandbox, "run a fake Zammad or Znuny on loopback to try the connector")
    sub.add_argument("kind", choices=HELPDESK_KINDS)
    sub.add_argument("--host", default="127.0.0.1")
    sub.add_argument("--port", type=PORT, default=0, help="0 picks a free port")
    sub.add_argument("--webhook-url", help="where the sandbox sends its webhooks")


def cmd_demo(args: argparse.Namespace, out: TextIO) -> int:
    """``bitrix-sla demo``: sandbox Zammad + the connector on loopback, then a table."""
    from connector.demo import run_demo

    logging.basicConfig(level=logging.ERROR)
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no access log in the demo's output
    return run_demo(out, timeout=args.timeout)


def register_demo(add: Adder) -> None:
    sub = add("demo", cmd_demo, "try everything end to end against a sandbox Zammad (no server)")
    sub.add_argument(
        "--timeout", type=_seconds, default=25.0, help="seconds to wait for write-backs"
    )
