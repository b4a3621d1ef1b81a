"""Wiring: settings → store, mappings, adapters, worker. Shared by every command and the edge."""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field

from connector.errors import ConfigError
from connector.helpdesks.base import HelpdeskAdapter, WebhookReceiver
from connector.helpdesks.registry import build_all
from connector.mappings import Mappings, load_mappings
from connector.pipeline.db import sqlite_path
from connector.pipeline.periodic import backups, reconciliation, retention
from connector.pipeline.processor import Processor
from connector.pipeline.retry import Backoff
from connector.pipeline.store import JobStore
from connector.pipeline.worker import PeriodicTask, Worker
from connector.settings import Settings

log = logging.getLogger(__name__)


@dataclass
class Service:
    """Everything a running connector holds, built once from validated settings."""

    settings: Settings
    store: JobStore
    mappings: Mappings
    adapters: dict[tuple[str, str], HelpdeskAdapter] = field(default_factory=dict)
    receivers: dict[tuple[str, str], WebhookReceiver] = field(default_factory=dict)

    @classmethod
    def from_settings(cls, settings: Settings, *, migrate: bool = True) -> Service:
        """Load mappings and build the adapters (refusing bad ones), then open the store."""
        mappings = load_mappings(settings.mappings_dir)
        built = build_all(settings)  # configuration errors before the database is touched
        backoff = Backoff(
            base_seconds=settings.backoff_base_seconds,
            cap_seconds=settings.backoff_cap_seconds,
            max_attempts=settings.max_attempts,
            max_age=dt.timedelta(hours=settings.max_age_hours),
        )
        store = JobStore.open(
            settings.database_url.get_secret_value(),
            backoff,
            migrate=migrate,
            settle_seconds=settings.settle_seconds,
            settle_max_seconds=settings.settle_max_seconds,
            group_commit=settings.group_commit,
        )
        service = cls(settings=settings, store=store, mappings=mappings)
        for key, (adapter, receiver) in built.items():
            service.adapters[key] = adapter
            service.receivers[key] = receiver
        if not settings.instances:
            log.warning(
                "no helpdesk instances are configured (the settings file's 'instances:'): "
                "every webhook gets 404 and the worker has no helpdesk to read or write"
            )
        return service

    def reload_mappings(self) -> bool:
        """Read the mappings directory again; use it from the next job on if every file is
        valid, else log every error and keep the mappings in use. Returns whether it switched.

        A job already running finishes with the policy it started with. Tickets decided
        before stay as they are until their next event or sweep, or a ``backfill``.
        """
        try:
            fresh = load_mappings(self.settings.mappings_dir)
        except ConfigError as exc:
            log.error(
                "mappings not reloaded: %d error(s) in %s; the mappings in use stay",
                len(exc.issues),
                exc.directory or self.settings.mappings_dir,
            )
            for issue in exc.issues:
                log.error("  %s", issue)
            return False
        self.mappings = fresh
        log.info(
            "mappings reloaded from %s; `bitrix-sla backfill` applies them to open tickets now",
            fresh.directory,
        )
        return True

    def processor(self) -> Processor:
        return Processor(policy=lambda: self.mappings.policy, adapters=self.adapters)

    def worker(self, concurrency: int | None = None, *, periodic: bool = True) -> Worker:
        """A worker with the reconciliation sweep, event retention and, when ``backup_dir`` is set
        on SQLite, backups as periodic tasks."""
        settings = self.settings
        tasks: tuple[PeriodicTask, ...] = ()
        if periodic:
            tasks = (
                reconciliation(self.store, self.adapters, settings.reconcile_interval_seconds),
                retention(self.store, dt.timedelta(days=settings.event_retention_days)),
            )
            database = sqlite_path(settings.database_url.get_secret_value())
            if settings.backup_dir is not None and database is not None:
                hours = settings.backup_interval_hours
                keep = settings.backup_keep
                copies = backups(database, settings.backup_dir, keep, hours * 3600)
                tasks = (*tasks, copies)
        return Worker(
            self.store,
            self.processor(),
            concurrency=concurrency or settings.worker_concurrency,
            lease_seconds=settings.lease_seconds,
            periodic=tasks,
        )
