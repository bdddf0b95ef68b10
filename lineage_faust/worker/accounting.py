"""Counters the worker keeps about what it did: logged every 10 s, and exported to
Prometheus through ``WorkerMetrics``."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from lineage_faust.failures import describe
from lineage_faust.worker.metrics import WorkerMetrics

if TYPE_CHECKING:
    from lineage_faust.domain.triage import Batch, Written


@dataclass(slots=True)
class Stats:
    """Since this process started. Every consumed message is exactly one of: stored (new),
    deduplicated (already stored: a redelivery or a repeat) or dead-lettered, so
    ``consumed == stored + deduplicated + dead_lettered`` after every batch."""

    consumed: int = 0
    stored_run_events: int = 0
    stored_non_run_events: int = 0
    deduplicated: int = 0
    dead_lettered: Counter[str] = field(default_factory=Counter)
    redelivered_updates: int = 0  # run updates the fold had already applied
    runs_updated: int = 0
    runs_evicted: int = 0
    runs_revived: int = 0
    resumed_partitions: int = 0
    metrics: WorkerMetrics = field(default_factory=WorkerMetrics)
    last_batch_at: float = field(default_factory=time.monotonic)  # or when the worker started

    def record_batch(self, batch: Batch, written: Written) -> None:
        """A batch is done: ``written`` says how many of its events were new."""
        self.last_batch_at = time.monotonic()
        new_run_events, new_non_run_events = written.new_run_events, written.new_non_run_events
        duplicates = written.run_events - new_run_events
        duplicates += written.non_run_events - new_non_run_events
        consumed = written.run_events + written.non_run_events + len(batch.rejected)
        self.consumed += consumed
        self.stored_run_events += new_run_events
        self.stored_non_run_events += new_non_run_events
        self.deduplicated += duplicates
        reasons = [r.rejection.reason for r in batch.rejected]
        self.dead_lettered.update(reasons)
        m = self.metrics
        m.consumed.inc(consumed)
        m.stored.labels("run").inc(new_run_events)
        m.stored.labels("non_run").inc(new_non_run_events)
        m.deduplicated.inc(duplicates)
        for reason in reasons:
            m.dead_lettered.labels(reason).inc()

    def accounting(self) -> dict[str, int | bool]:
        stored = self.stored_run_events + self.stored_non_run_events
        dead = sum(self.dead_lettered.values())
        return {
            "consumed": self.consumed,
            "stored": stored,
            "deduplicated": self.deduplicated,
            "deadLettered": dead,
            "balanced": self.consumed == stored + self.deduplicated + dead,
        }

    def summary(self) -> str:
        dead = sum(self.dead_lettered.values())
        return (
            f"consumed={self.consumed} run_events={self.stored_run_events} "
            f"non_run_events={self.stored_non_run_events} dead_lettered={dead} "
            f"duplicates={self.deduplicated} redelivered_updates={self.redelivered_updates} "
            f"runs_updated={self.runs_updated} "
            f"runs_evicted={self.runs_evicted} runs_revived={self.runs_revived} "
            f"resumed_partitions={self.resumed_partitions}"
        )


REFUSALS_SHOWN_S = 600.0  # a permanent refusal stays on /health this long after the last one


@dataclass(slots=True)
class Health:
    """What the worker is currently failing to do (store writes, broker sends), and since when.

    ``retry_forever`` reports into it; the worker's ``/health`` page answers 503 while
    anything is failing, or while events wait and nothing is consumed (a stall), so an
    orchestrator or an operator sees an outage the worker is waiting out (it keeps its
    offsets and resumes by itself). What was refused for good and passed by (a topic that
    refuses every message, a value the store refuses) shows as ``degraded`` with a 200: the
    pipeline goes on, but an operator has something to fix.
    """

    failing: dict[str, tuple[float, str]] = field(default_factory=dict)  # what -> (since, error)
    # what -> (first, last, how many, last error): permanent failures the pipeline passed by
    refusals: dict[str, tuple[float, float, int, str]] = field(default_factory=dict)

    def failed(self, what: str, error: BaseException) -> None:
        since = self.failing.get(what, (time.time(), ""))[0]
        self.failing[what] = (since, describe(error))

    def recovered(self, what: str) -> None:
        self.failing.pop(what, None)

    def refused(self, what: str, error: BaseException | str) -> None:
        now = time.time()
        first, _, count, _ = self.refusals.get(what, (now, now, 0, ""))
        text = error if isinstance(error, str) else describe(error)
        self.refusals[what] = (first, now, count + 1, text)

    @property
    def ok(self) -> bool:
        return not self.failing

    def report(self, stalled: str | None = None) -> dict:
        """``stalled``: why the pipeline is stalled, if it is (503 like a failure)."""
        now = time.time()
        failing = [
            {"what": what, "forSeconds": round(now - since, 1), "lastError": error}
            for what, (since, error) in sorted(self.failing.items())
        ]
        if stalled:
            failing.append({"what": "consume events", "forSeconds": None, "lastError": stalled})
        refused = [
            {
                "what": what,
                "count": count,
                "sinceSeconds": round(now - first, 1),
                "lastError": error,
            }
            for what, (first, last, count, error) in sorted(self.refusals.items())
            if now - last < REFUSALS_SHOWN_S
        ]
        status = "unhealthy" if failing else "degraded" if refused else "ok"
        return {"status": status, "failing": failing, "refused": refused}
