"""A lineage walk's reads on Cassandra: each node's partition read on its own (every one is
a single-partition query the driver routes to a replica holding it), a level's reads in
flight together, at most ``IN_FLIGHT`` at once."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from lineage_faust.domain.freshness import LastWrite
from lineage_faust.store.cassandra.datasets import CassandraDatasets
from lineage_faust.store.dataset_history import last_good_write
from lineage_faust.store.interfaces import Link, NodeKey
from lineage_faust.store.queries import DatasetLink, LatestRun, RunQuery

IN_FLIGHT = 64  # requests of one level at once (the driver's connections take far more)

_T = TypeVar("_T")


async def _each(
    keys: Sequence[NodeKey], read: Callable[[str, str], Awaitable[_T | None]]
) -> dict[NodeKey, _T]:
    gate = asyncio.Semaphore(IN_FLIGHT)

    async def one(key: NodeKey) -> _T | None:
        async with gate:
            return await read(*key)

    unique = list(dict.fromkeys(keys))
    found = await asyncio.gather(*(one(k) for k in unique))
    return {k: v for k, v in zip(unique, found, strict=True) if v}


class CassandraLineage(CassandraDatasets):
    async def links_of(
        self, jobs: Sequence[NodeKey], datasets: Sequence[NodeKey]
    ) -> tuple[dict[NodeKey, list[Link]], dict[NodeKey, list[Link]]]:
        def bare(links: list[DatasetLink]) -> list[Link]:
            return [(x.namespace, x.name, x.direction) for x in links]

        async def of_job(namespace: str, name: str) -> list[Link]:
            return bare(await self.job_datasets(namespace, name))

        async def of_dataset(namespace: str, name: str) -> list[Link]:
            return bare(await self.dataset_jobs(namespace, name))

        return await asyncio.gather(_each(jobs, of_job), _each(datasets, of_dataset))

    async def latest_runs(self, jobs: Sequence[NodeKey]) -> dict[NodeKey, LatestRun]:
        async def latest(namespace: str, job: str) -> LatestRun | None:
            page = await self.list_runs(RunQuery(namespace=namespace, job=job), 1)
            if not page.runs:
                return None
            run = page.runs[0]
            return LatestRun(run.run_id, run.state, run.end_time or run.last_event_time)

        return await _each(jobs, latest)

    async def last_good_writes(self, datasets: Sequence[NodeKey]) -> dict[NodeKey, LastWrite]:
        return await _each(datasets, lambda namespace, name: last_good_write(self, namespace, name))
