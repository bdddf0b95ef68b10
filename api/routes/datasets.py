"""Datasets for operators: who read and wrote each dataset, its freshness, and what a failed
run leaves stale downstream."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, Response

from lineage_faust.domain.datasets import INPUT, OUTPUT
from lineage_faust.store.dataset_history import last_writes
from lineage_faust.store.queries import DatasetLink, DatasetRun

from ..errors import ApiError
from ..schemas import (
    DatasetResponse,
    DatasetRunOut,
    DatasetRuns,
    DatasetWrite,
    Impact,
    ImpactedDataset,
    JobLink,
    StaleDataset,
    StaleDatasetList,
    iso_ms,
)
from .common import Cursor, Limit, RunIdPath, encoded_names, errors, json_response, store_of
from .runs import run_href

router = APIRouter(prefix="/api/v1", tags=["datasets"])
Name = Annotated[str, Path(min_length=1, max_length=1024)]


def write_of(run: DatasetRun) -> DatasetWrite:
    status = run.status
    assert status is not None
    return DatasetWrite(
        runId=status.run_id,
        namespace=status.namespace,
        job=status.job,
        state=status.state,
        time=iso_ms(status.end_time or status.last_event_time),
        rowCount=run.io.row_count,
        sizeBytes=run.io.size_bytes,
    )


def job_links(links: list[DatasetLink], direction: str) -> list[JobLink]:
    return [
        JobLink(namespace=link.namespace, name=link.name, lastSeen=iso_ms(link.last_seen) or "")
        for link in links
        if link.direction == direction
    ]


@router.get("/datasets", response_model=StaleDatasetList, responses=errors(400, 401, 503))
async def datasets(
    request: Request,
    stale: Annotated[bool, Query(description="Only datasets past their expectation")],
) -> Response:
    """Datasets that outlived their freshness expectation (``LINEAGE_DATASET_EXPECTATIONS``),
    as the worker's last sweep found them, with their age and last writer. Only ``stale=true``
    is served: the full list of datasets is not kept in one place."""
    if not stale:
        raise ApiError(400, "only stale=true is supported: GET /api/v1/datasets?stale=true")
    now = datetime.now(UTC)
    lapses = await store_of(request).open_lapses()
    items = [
        StaleDataset(
            namespace=lapse.write.namespace,
            name=lapse.write.name,
            ageSeconds=round((now - lapse.write.at).total_seconds(), 3),
            maxAgeSeconds=lapse.max_age_s,
            staleSince=iso_ms(lapse.since) or "",
            lastWrite=iso_ms(lapse.write.at) or "",
            lastWriterRunId=lapse.write.run_id,
            lastWriterNamespace=lapse.write.job_namespace,
            lastWriterJob=lapse.write.job,
        )
        for lapse in sorted(lapses, key=lambda lapse: lapse.write.at)
    ]
    return json_response(StaleDatasetList(count=len(items), datasets=items))


@router.get(
    "/datasets/{namespace:path}/{name}/runs",
    response_model=DatasetRuns,
    responses=errors(400, 401, 503),
)
async def dataset_runs(
    request: Request, namespace: Name, name: Name, limit: Limit = 50, cursor: Cursor = None
) -> Response:
    """Runs that read or wrote the dataset, newest first. Namespaces such as
    ``postgres://db:5432`` must be URL-encoded (``postgres:%2F%2Fdb:5432``)."""
    namespace, name = encoded_names(request, "datasets", "runs", (namespace, name))
    page = await store_of(request).list_dataset_runs(namespace, name, limit, cursor or None)
    runs = [
        DatasetRunOut(
            runId=r.io.run_id or "",
            href=run_href(r.io.run_id or ""),
            direction=r.io.direction,
            namespace=r.io.job_namespace,
            job=r.io.job,
            state=r.status.state if r.status else None,
            eventTime=iso_ms(r.io.event_time) or "",
            startTime=iso_ms(r.status.start_time) if r.status else None,
            endTime=iso_ms(r.status.end_time) if r.status else None,
            rowCount=r.io.row_count,
            sizeBytes=r.io.size_bytes,
        )
        for r in page.runs
    ]
    return json_response(
        DatasetRuns(
            namespace=namespace, name=name, count=len(runs), runs=runs, nextCursor=page.next_cursor
        )
    )


@router.get(
    "/datasets/{namespace:path}/{name}",
    response_model=DatasetResponse,
    responses=errors(400, 401, 404, 503),
)
async def dataset(request: Request, namespace: Name, name: Name) -> Response:
    """A dataset's last successful write (run, job, time), its last failed attempt, the jobs
    seen writing and reading it, and its freshness (age of the last successful write)."""
    namespace, name = encoded_names(request, "datasets", None, (namespace, name))
    store = store_of(request)
    good, failed, known = await last_writes(store, namespace, name)
    jobs = await store.dataset_jobs(namespace, name)
    if not known and not jobs:
        raise ApiError(404, f"no dataset {namespace}/{name} seen")
    freshness = None
    if good is not None and good.status is not None:
        written = good.status.end_time or good.status.last_event_time
        if written is not None:
            freshness = round((datetime.now(UTC) - written).total_seconds(), 3)
    return json_response(
        DatasetResponse(
            namespace=namespace,
            name=name,
            lastSuccessfulWrite=write_of(good) if good else None,
            lastFailedWrite=write_of(failed) if failed else None,
            freshnessSeconds=freshness,
            writers=job_links(jobs, OUTPUT),
            readers=job_links(jobs, INPUT),
        )
    )


@router.get("/runs/{runId}/impact", response_model=Impact, responses=errors(400, 401, 404, 503))
async def impact(request: Request, runId: RunIdPath) -> Response:
    """What a (failed) run leaves stale: the datasets it was expected to write (its own
    declared outputs, and the outputs of its job's earlier runs) and the jobs reading them."""
    store = store_of(request)
    status = await store.get_run_status(runId)
    if status is None:
        raise ApiError(404, f"no run {runId}")
    declared = {
        (io.namespace, io.name) for io in await store.run_datasets(runId) if io.direction == OUTPUT
    }
    usual = {
        (d.namespace, d.name)
        for d in await store.job_datasets(status.namespace, status.job)
        if d.direction == OUTPUT
    }
    outputs = []
    downstream: dict[tuple[str, str], JobLink] = {}
    for ds_namespace, ds_name in sorted(declared | usual):
        good, _, _ = await last_writes(store, ds_namespace, ds_name)
        readers = [
            r
            for r in job_links(await store.dataset_jobs(ds_namespace, ds_name), INPUT)
            if (r.namespace, r.name) != (status.namespace, status.job)
        ]
        for reader in readers:
            downstream.setdefault((reader.namespace, reader.name), reader)
        outputs.append(
            ImpactedDataset(
                namespace=ds_namespace,
                name=ds_name,
                declaredByRun=(ds_namespace, ds_name) in declared,
                lastSuccessfulWrite=write_of(good) if good else None,
                readers=readers,
            )
        )
    return json_response(
        Impact(
            runId=status.run_id,
            namespace=status.namespace,
            job=status.job,
            state=status.state,
            expectedOutputs=outputs,
            downstreamJobs=list(downstream.values()),
        )
    )
