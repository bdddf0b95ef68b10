"""Which datasets each run read and wrote: pure extraction from validated events, no I/O.

Run events name their ``inputs`` and ``outputs``; a JobEvent declares a job's datasets without a
run. Row counts and sizes come from the ``outputStatistics`` / ``inputStatistics`` dataset
facets (or ``dataQualityMetrics.rowCount``) when a producer sends them. A malformed entry is
skipped, never a reason to reject the event (it is stored verbatim anyway).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from pydantic import ValidationError

from lineage_faust.domain.fast_pickle import pickled_as_arguments
from lineage_faust.domain.model import (
    DatasetRef,
    DatasetStatisticsFacet,
    JobEvent,
    RunEvent,
    ValidEvent,
    facet,
)

INPUT, OUTPUT = "input", "output"


@pickled_as_arguments
@dataclass(frozen=True, slots=True)
class DatasetIO:
    """One dataset a run (or, with ``run_id`` None, a job) read or wrote."""

    namespace: str
    name: str
    direction: str  # "input" or "output"
    run_id: str | None
    job_namespace: str
    job: str
    event_time: datetime
    row_count: int | None = None
    size_bytes: int | None = None


def _statistics(ref: DatasetRef, direction: str) -> tuple[int | None, int | None]:
    facets, names = (
        (ref.outputFacets, ("outputStatistics",))
        if direction == OUTPUT
        else (ref.inputFacets, ("inputStatistics", "dataQualityMetrics"))
    )
    stats = next(
        (s for n in names if (s := facet(facets, n, DatasetStatisticsFacet)) is not None), None
    )
    if stats is None:
        return None, None
    return _small(stats.rowCount), _small(stats.size)


def _small(value: int | None) -> int | None:
    """Counts that fit a 64-bit column; anything else is not a count we can keep."""
    return value if value is not None and 0 <= value < 2**63 else None


def dataset_io(event: ValidEvent) -> list[DatasetIO]:
    payload = event.payload
    if isinstance(payload, RunEvent):
        run_id: str | None = payload.run.runId
    elif isinstance(payload, JobEvent):
        run_id = None
    else:  # a DatasetEvent describes a dataset, not who read or wrote it
        return []
    found: dict[tuple[str, str, str], DatasetIO] = {}
    for direction, items in ((INPUT, payload.inputs), (OUTPUT, payload.outputs)):
        if not isinstance(items, list):
            continue
        for raw in items:
            try:
                ref = DatasetRef.model_validate(raw)
            except ValidationError:  # a malformed entry: skipped
                continue
            rows, size = _statistics(ref, direction)
            found[(ref.namespace, ref.name, direction)] = DatasetIO(
                ref.namespace,
                ref.name,
                direction,
                run_id,
                payload.job.namespace,
                payload.job.name,
                event.event_time.at,
                rows,
                size,
            )
    return list(found.values())
