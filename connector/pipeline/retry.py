"""The two retry layers, each a small named value.

* Inside a job (:data:`IN_JOB`): a few quick attempts with tenacity for transient failures
  (connection errors, timeouts, 5xx, 429), honouring ``Retry-After`` up to a cap.
* Across jobs (:class:`Backoff`): the job goes back to the queue with
  ``run_at = now + min(cap, base · 2^(attempt-1)) · jitter``, ``jitter`` uniform in
  [0.8, 1.2], until it is older than ``max_age`` or has had ``max_attempts``; then it is dead.
"""

from __future__ import annotations

import datetime as dt
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from tenacity import RetryCallState, Retrying, retry_if_exception_type, stop_after_attempt

from connector.errors import TransientError

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class InJobRetry:
    """Quick retries of one helpdesk call inside a running job."""

    attempts: int = 3
    base_seconds: float = 0.2
    cap_seconds: float = 5.0
    retry_after_cap_seconds: float = 10.0

    def wait(self, state: RetryCallState) -> float:
        """Exponential wait, or the server's ``Retry-After`` when it gave one (capped)."""
        outcome = state.outcome
        error = outcome.exception() if outcome is not None else None
        if isinstance(error, TransientError) and error.retry_after is not None:
            return float(min(max(error.retry_after, 0.0), self.retry_after_cap_seconds))
        return float(min(self.cap_seconds, self.base_seconds * 2 ** (state.attempt_number - 1)))

    def call(self, function: Callable[[], T], on_retry: Callable[[], None] | None = None) -> T:
        """Run ``function``; re-raise the last :class:`TransientError` when attempts run out."""

        def before_sleep(state: RetryCallState) -> None:
            error = state.outcome.exception() if state.outcome is not None else None
            log.warning(
                "transient failure, retry %d of %d in %.1fs: %s",
                state.attempt_number,
                self.attempts - 1,
                self.wait(state),
                error,
            )
            if on_retry is not None:
                on_retry()

        retrying = Retrying(
            retry=retry_if_exception_type(TransientError),
            stop=stop_after_attempt(self.attempts),
            wait=self.wait,
            before_sleep=before_sleep,
            reraise=True,
        )
        return retrying(function)


IN_JOB = InJobRetry()


@dataclass(frozen=True)
class Backoff:
    """Durable backoff between attempts of a job, and when to give up."""

    base_seconds: float = 2.0
    cap_seconds: float = 600.0
    max_attempts: int = 12
    max_age: dt.timedelta = dt.timedelta(hours=48)
    jitter: tuple[float, float] = (0.8, 1.2)

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        raw = min(self.cap_seconds, self.base_seconds * 2 ** max(attempt - 1, 0))
        low, high = self.jitter
        return float(raw * (rng or random).uniform(low, high))

    def gives_up(self, attempt: int, created_at: dt.datetime, now: dt.datetime) -> bool:
        """Whether a job that failed ``attempt`` times since ``created_at`` is dead."""
        return attempt >= self.max_attempts or now - created_at >= self.max_age
