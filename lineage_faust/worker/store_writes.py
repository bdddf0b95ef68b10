"""Writing a triaged batch to the store, and what was written.

The same writes wherever they run: in the triage helper when the store lets a helper process
write to it (``Store.for_helper``: SQLite), so the rows never travel back to the worker, whose
event-loop thread is its bottleneck; otherwise in the worker (Cassandra, small batches, a
helper that failed).

A value the store refuses for good (``StoreRefused``: too large for it, invalid for its
schema) must not stop the batch: the batch's rows are then written one by one, and each
event refused alone is dead-lettered (reason ``store_refused``) instead of stored.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from lineage_faust.domain.triage import Batch, RawMessage, Written
from lineage_faust.failures import describe
from lineage_faust.store import EventSink, StoreRefused

log = logging.getLogger(__name__)
T = TypeVar("T")
R = TypeVar("R")


async def write_each(
    write: Callable[[Sequence[T]], Awaitable[R]], rows: Sequence[T]
) -> tuple[list[R], dict[int, str]]:
    """Write ``rows`` one at a time: what each write returned, and the rows the store
    refused (position -> why). Other errors are raised (the caller retries)."""
    results: list[R] = []
    refused: dict[int, str] = {}
    for position, row in enumerate(rows):
        try:
            results.append(await write([row]))
        except StoreRefused as exc:
            refused[position] = describe(exc)
    return results, refused


async def write_refusing(
    write: Callable[[Sequence[T]], Awaitable[R]], rows: Sequence[T], what: str
) -> tuple[list[R], dict[int, str]]:
    """``write(rows)``; if the store refuses a value, the rows one by one (``write_each``)."""
    try:
        return [await write(rows)], {}
    except StoreRefused as exc:
        if exc.rows is not None:  # the store wrote the others, and says which it refused
            log.warning("the store refused %d %s (%s)", len(exc.rows), what, describe(exc))
            return [exc.new], dict.fromkeys(exc.rows, describe(exc))  # type: ignore[list-item]
        log.warning("the store refused %s (%s): writing them one by one", what, describe(exc))
        return await write_each(write, rows)


async def write_batch(store: EventSink, batch: Batch, messages: list[RawMessage]) -> Written:
    """Store the batch's events, dead letters and dataset links (each write idempotent).
    ``messages``: the batch's consumed messages (to dead-letter what the store refuses)."""
    started = time.perf_counter()
    new_runs, refused_runs = await write_refusing(store.write_events, batch.run_events, "events")
    new_non_runs, refused_non_runs = await write_refusing(
        store.write_non_run_events, batch.non_run_events, "non-run events"
    )
    if refused_runs or refused_non_runs:
        why = next(iter({**refused_runs, **refused_non_runs}.values()))
        batch.refuse(set(refused_runs), set(refused_non_runs), messages, why)
    _, refused_letters = await write_refusing(
        store.write_dead_letters, batch.dead_letters(), "dead letters"
    )
    if refused_letters:  # they are still on the dead-letter topic
        log.error("the store refused %d dead letters; they are not kept", len(refused_letters))
    _, refused_links = await write_refusing(
        store.write_dataset_io, batch.dataset_io, "dataset links"
    )
    if refused_links:
        log.error("the store refused %d dataset links; they are not kept", len(refused_links))
    return Written(
        len(batch.run_events),
        len(batch.non_run_events),
        sum(new_runs),
        sum(new_non_runs),
        time.perf_counter() - started,
    )
