"""A dataset's last writes, read from any store's dataset history (``Queries``): what the
datasets API shows and what the freshness sweep judges."""

from __future__ import annotations

from lineage_faust.domain.datasets import OUTPUT
from lineage_faust.domain.freshness import LastWrite
from lineage_faust.domain.records import RunStatus
from lineage_faust.store.interfaces import Queries
from lineage_faust.store.queries import DatasetRun

HISTORY_SCAN = 500  # rows of a dataset's history read to find its last good and failed writes
FAILED = ("FAIL", "ABORT")


async def last_writes(
    store: Queries, namespace: str, name: str
) -> tuple[DatasetRun | None, DatasetRun | None, bool]:
    """(last successful write, last failed write, anything known) from the newest history."""
    good = failed = None
    cursor, scanned, known = None, 0, False
    while scanned < HISTORY_SCAN and (good is None or failed is None):
        page = await store.list_dataset_runs(namespace, name, 100, cursor)
        known = known or bool(page.runs)
        for run in page.runs:
            status = run.status
            if run.io.direction != OUTPUT or status is None:
                continue
            if good is None and status.state == "COMPLETE":
                good = run
            elif failed is None and status.state in FAILED:
                failed = run
        scanned += len(page.runs)
        cursor = page.next_cursor
        if cursor is None:
            break
    return good, failed, known


def as_last_write(run: DatasetRun | None) -> LastWrite | None:
    """A successful write as the freshness rules see it (when its run ended)."""
    if run is None or run.status is None:
        return None
    return last_write_of(run.io.namespace, run.io.name, run.status)


def last_write_of(namespace: str, name: str, status: RunStatus) -> LastWrite | None:
    at = status.end_time or status.last_event_time
    if at is None:
        return None
    return LastWrite(namespace, name, at, status.run_id, status.namespace, status.job)


async def last_good_write(store: Queries, namespace: str, name: str) -> LastWrite | None:
    good, _, _ = await last_writes(store, namespace, name)
    return as_last_write(good)
