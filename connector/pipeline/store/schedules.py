"""Periodic tasks' ticks, in the ``schedules`` table: each tick has one owner among replicas.

A replica takes a tick by a write that holds only on the row as it read it (``try_tick``): the
task's first INSERT, or an UPDATE of the time it is next due; two replicas cannot both take
one. The owner records when a tick's run did its work (``tick_succeeded``): a run that failed
or was cut short is done again, from the last tick that succeeded. What the tasks do is
:mod:`connector.pipeline.periodic`'s.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import func, literal, select, update

from connector.pipeline.db import schedules
from connector.pipeline.store.base import StoreBase
from connector.pipeline.store.records import EPOCH, Tick


class Schedules(StoreBase):
    """Claiming and recording the ticks of periodic tasks."""

    def periodic_successes(self) -> dict[str, dt.datetime]:
        """When each periodic task's last successful tick was, for those that have had one."""
        query = select(schedules.c.name, schedules.c.succeeded_at).where(
            schedules.c.succeeded_at.is_not(None)
        )
        with self._read() as connection:
            return {row.name: row.succeeded_at for row in connection.execute(query)}

    def first_tick(self, name: str) -> dt.datetime | None:
        """When periodic task ``name`` first ticked (None if it never has): a task none of whose
        runs has succeeded yet starts each run from there (see
        :func:`connector.pipeline.periodic.reconciliation`)."""
        query = select(schedules.c.first_run_at).where(schedules.c.name == name)
        with self._read() as connection:
            value = connection.execute(query).scalar()
        assert value is None or isinstance(value, dt.datetime)
        return value

    def try_tick(self, name: str, interval_seconds: float, owner: str) -> Tick | None:
        """Claim this period's run of periodic task ``name``: exactly one replica gets it.

        Returns the tick to the owner, or None when another replica owns this tick or it is not
        due yet. The owner calls :meth:`tick_succeeded` once the run has done its work; until
        then every later tick starts from the last one that succeeded.
        """
        with self._write() as connection:
            now = self.now(connection)
            step = dt.timedelta(seconds=interval_seconds)
            row = connection.execute(select(schedules).where(schedules.c.name == name)).first()
            if row is None:
                created = connection.execute(
                    self._insert(schedules)
                    .values(
                        name=name,
                        next_run_at=now + step,
                        last_run_at=now,
                        last_owner=owner,
                        first_run_at=now,
                    )
                    .on_conflict_do_nothing(index_elements=["name"])
                    .returning(schedules.c.name)
                ).scalar()
                return Tick(name=name, at=now, since=EPOCH) if created else None
            seen = row.next_run_at
            if seen.tzinfo is None:
                seen = seen.replace(tzinfo=dt.UTC)
            if seen > now:
                return None
            result = connection.execute(
                update(schedules)
                .where(schedules.c.name == name, schedules.c.next_run_at == row.next_run_at)
                .values(
                    next_run_at=now + step,
                    last_run_at=now,
                    last_owner=owner,
                    # a row a replica of an older version made has none: this tick is the first
                    first_run_at=func.coalesce(
                        schedules.c.first_run_at, literal(now, schedules.c.first_run_at.type)
                    ),
                )
            )
            if result.rowcount != 1:
                return None
            return Tick(name=name, at=now, since=row.succeeded_at or EPOCH)

    def tick_succeeded(self, tick: Tick) -> None:
        """Record that ``tick``'s run did its work: later ticks start from ``tick.at``."""
        with self._write() as connection:
            connection.execute(
                update(schedules)
                .where(
                    schedules.c.name == tick.name,
                    schedules.c.succeeded_at.is_(None) | (schedules.c.succeeded_at < tick.at),
                )
                .values(succeeded_at=tick.at)
            )
