"""Counters the worker keeps about what it did: logged every 10 s, and exported to
Prometheus through ``WorkerMetrics``."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .metrics import WorkerMetrics

if TYPE_CHECKING:
    from .triage import Batch


@dataclass(slots=True)
class Stats:
    consumed: int = 0
    stored_run_events: int = 0
    stored_non_run_events: int = 0
    dead_lettered: Counter[str] = field(default_factory=Counter)
    duplicates: int = 0
    runs_updated: int = 0
    runs_evicted: int = 0
    runs_revived: int = 0
    resumed_partitions: int = 0
    metrics: WorkerMetrics = field(default_factory=WorkerMetrics)

    def record_batch(self, batch: Batch) -> None:
        self.consumed += batch.consumed
        self.stored_run_events += len(batch.run_events)
        self.stored_non_run_events += len(batch.non_run_events)
        reasons = [r.rejection.reason for r in batch.rejected]
        self.dead_lettered.update(reasons)
        m = self.metrics
        m.consumed.inc(batch.consumed)
        m.stored.labels("run").inc(len(batch.run_events))
        m.stored.labels("non_run").inc(len(batch.non_run_events))
        for reason in reasons:
            m.dead_lettered.labels(reason).inc()

    def record_duplicates(self, n: int) -> None:
        self.duplicates += n
        self.metrics.deduplicated.inc(n)

    def summary(self) -> str:
        dead = sum(self.dead_lettered.values())
        return (
            f"consumed={self.consumed} run_events={self.stored_run_events} "
            f"non_run_events={self.stored_non_run_events} dead_lettered={dead} "
            f"duplicates={self.duplicates} runs_updated={self.runs_updated} "
            f"runs_evicted={self.runs_evicted} runs_revived={self.runs_revived} "
            f"resumed_partitions={self.resumed_partitions}"
        )


@dataclass(slots=True)
class Health:
    """What the worker is currently failing to do (store writes, broker sends), and since when.

    ``retry_forever`` reports into it; the worker's ``/health`` page answers 503 while
    anything is failing, so an orchestrator or an operator sees an outage the worker is
    waiting out (it keeps its offsets and resumes by itself).
    """

    failing: dict[str, tuple[float, str]] = field(default_factory=dict)  # what -> (since, error)

    def failed(self, what: str, error: BaseException) -> None:
        since = self.failing.get(what, (time.time(), ""))[0]
        self.failing[what] = (since, f"{type(error).__name__}: {error}"[:500])

    def recovered(self, what: str) -> None:
        self.failing.pop(what, None)

    @property
    def ok(self) -> bool:
        return not self.failing

    def report(self) -> dict:
        now = time.time()
        return {
            "status": "ok" if self.ok else "unhealthy",
            "failing": [
                {"what": what, "forSeconds": round(now - since, 1), "lastError": error}
                for what, (since, error) in sorted(self.failing.items())
            ],
        }
