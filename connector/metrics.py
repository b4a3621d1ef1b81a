"""Prometheus metrics shared by the edge and the worker.

Under gunicorn, set ``PROMETHEUS_MULTIPROC_DIR`` to an empty writable directory (the ``web``
command does this for you) and counters/histograms are summed across worker processes.
Queue depth and the periodic tasks' last successes are read from the database at scrape time,
so they are right whichever process (or replica) serves ``/metrics``.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterator
from functools import cache
from typing import Protocol

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

EVENTS_ACCEPTED = Counter(
    "bitrix_sla_events_accepted_total", "Webhooks stored", ["kind", "instance"]
)
EVENTS_DUPLICATE = Counter(
    "bitrix_sla_events_duplicate_total",
    "Webhooks already stored (redelivery)",
    ["kind", "instance"],
)
EVENTS_REJECTED = Counter(
    "bitrix_sla_events_rejected_total",
    "Webhooks refused, by reason",
    ["kind", "instance", "reason"],
)
INGEST_BATCH = Histogram(
    "bitrix_sla_ingest_batch_webhooks",
    "Webhooks stored per transaction (group commit: more under load means fewer fsyncs)",
    buckets=(1, 2, 4, 8, 16, 32, 64),
)
JOB_LATENCY = Histogram(
    "bitrix_sla_job_latency_seconds",
    "From the job's creation to the end of its successful run",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600),
)
DECISION_LATENCY = Histogram(
    "bitrix_sla_decision_seconds",
    "Time to decide one ticket (policy only)",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25),
)
WRITEBACKS = Counter(
    "bitrix_sla_writebacks_total", "Runs by result: applied, unchanged, failed, dead", ["result"]
)
RETRIES = Counter("bitrix_sla_retries_total", "Transient failures retried inside a job")
DEAD_JOBS = Counter("bitrix_sla_dead_jobs_total", "Jobs that went dead")


@cache
def labelled(metric: Counter, *values: str) -> Counter:
    """``metric.labels(*values)``, looked up once per label set and kept.

    The edge counts every webhook; this saves the registry's lookup (a lock and a dict) each
    time. Only for bounded label values: configured (kind, instance) pairs, a fixed set of
    reasons, and "unknown" for URLs that match no instance.
    """
    return metric.labels(*values)


class ScrapedStore(Protocol):
    """What ``/metrics`` reads from the job store when scraped."""

    def counts(self) -> dict[str, int]: ...

    def periodic_successes(self) -> dict[str, dt.datetime]: ...


class StoreCollector(Collector):
    """Gauges read from the store when scraped: ``bitrix_sla_jobs{status=…}``, and
    ``bitrix_sla_periodic_last_success_timestamp_seconds{task=…}`` for each periodic task that
    has succeeded once (alert on ``time() - …`` growing past a few intervals: a sweep that keeps
    failing leaves changed tickets unreconciled). Nothing when the database is unreachable."""

    def __init__(self, store: ScrapedStore) -> None:
        self._store = store

    def collect(self) -> Iterator[GaugeMetricFamily]:
        try:
            counts = self._store.counts()
            successes = self._store.periodic_successes()
        except Exception:
            return
        jobs = GaugeMetricFamily(
            "bitrix_sla_jobs", "Jobs in the store by status", labels=["status"]
        )
        for status, count in counts.items():
            jobs.add_metric([status], count)
        yield jobs
        last = GaugeMetricFamily(
            "bitrix_sla_periodic_last_success_timestamp_seconds",
            "When each periodic task's last successful run started (Unix time), any replica",
            labels=["task"],
        )
        for task, when in sorted(successes.items()):
            last.add_metric([task], when.timestamp())
        yield last


def render(store: ScrapedStore | None = None) -> tuple[bytes, str]:
    """The exposition text for ``/metrics`` and its content type."""
    extra = CollectorRegistry()
    if store is not None:
        extra.register(StoreCollector(store))
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.MultiProcessCollector(extra)  # type: ignore[no-untyped-call]
        return generate_latest(extra), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY) + generate_latest(extra), CONTENT_TYPE_LATEST
