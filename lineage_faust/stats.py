"""Counters the worker keeps about what it did (logged; exported as metrics later)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

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

    def record_batch(self, batch: Batch) -> None:
        self.consumed += batch.consumed
        self.stored_run_events += len(batch.run_events)
        self.stored_non_run_events += len(batch.non_run_events)
        self.dead_lettered.update(r.rejection.reason for r in batch.rejected)

    def summary(self) -> str:
        dead = sum(self.dead_lettered.values())
        return (
            f"consumed={self.consumed} run_events={self.stored_run_events} "
            f"non_run_events={self.stored_non_run_events} dead_lettered={dead} "
            f"duplicates={self.duplicates} runs_updated={self.runs_updated} "
            f"runs_evicted={self.runs_evicted} runs_revived={self.runs_revived} "
            f"resumed_partitions={self.resumed_partitions}"
        )
