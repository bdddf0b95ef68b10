"""Writing a triaged batch to the store, and what was written.

The same writes wherever they run: in the triage helper when the store lets a helper process
write to it (``Store.for_helper``: SQLite), so the rows never travel back to the worker, whose
event-loop thread is its bottleneck; otherwise in the worker (Cassandra, small batches, a
helper that failed).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from .store import Store
from .triage import Batch


@dataclass(frozen=True, slots=True)
class Written:
    """A batch's rows in the store: how many, and how many of them were new."""

    run_events: int
    non_run_events: int
    new_run_events: int
    new_non_run_events: int
    seconds: float  # how long the writes took


async def write_batch(store: Store, batch: Batch) -> Written:
    """Store the batch's events, dead letters and dataset links (each write idempotent)."""
    started = time.perf_counter()
    new_runs = await store.write_events(batch.run_events)
    new_non_runs = await store.write_non_run_events(batch.non_run_events)
    await store.write_dead_letters(batch.dead_letters())
    await store.write_dataset_io(batch.dataset_io)
    return Written(
        len(batch.run_events),
        len(batch.non_run_events),
        new_runs,
        new_non_runs,
        time.perf_counter() - started,
    )
