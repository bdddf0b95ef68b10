"""Which runs and jobs read and wrote each dataset, on Cassandra (``dataset_runs`` per dataset
and month, ``dataset_jobs``, ``job_datasets``, ``datasets_by_run``)."""

from __future__ import annotations

import asyncio
import zlib
from collections.abc import Hashable, Sequence
from datetime import datetime
from typing import Any

import orjson

from lineage_faust.domain.datasets import OUTPUT, DatasetIO
from lineage_faust.domain.freshness import Lapse, lapse_from_dict, lapse_to_dict
from lineage_faust.store.cassandra.codecs import (
    _FAR_FUTURE,
    _FAR_PAST,
    _ms,
    _utc,
    month_bucket,
)
from lineage_faust.store.cassandra.runs import CassandraRuns
from lineage_faust.store.cassandra.schema import WRITTEN_SHARDS
from lineage_faust.store.cursors import open_cursor
from lineage_faust.store.queries import (
    DatasetLink,
    DatasetRun,
    DatasetRunPage,
)

LAPSES = "open"  # stale_datasets' one partition: the open lapses (a few, one per dataset)


class CassandraDatasets(CassandraRuns):
    async def write_dataset_io(self, rows: Sequence[DatasetIO]) -> None:
        from cassandra.query import UNSET_VALUE  # no null cells: absent stats keep older ones

        def count(value: int | None) -> Any:
            return UNSET_VALUE if value is None else value

        noted: list = []
        writes: list[tuple[str, Hashable, Sequence[Any]]] = []
        seen: dict[tuple, datetime] = {}  # (dataset, direction, job) -> its latest time
        for r in rows:
            at = _ms(r.event_time)
            link = (r.namespace, r.name, r.direction, r.job_namespace, r.job)
            seen[link] = max(seen.get(link, at), at)
            if r.run_id is None:
                continue
            bucket = month_bucket(at)
            self._note_bucket("dataset", f"{r.namespace}\n{r.name}", bucket, writes, noted)
            io = (r.job_namespace, r.job, at, count(r.row_count), count(r.size_bytes))
            run_row = (r.namespace, r.name, bucket, r.run_id, r.direction, *io)
            writes.append(("insert_dataset_run", (r.namespace, r.name, bucket), run_row))
            of_run = (r.run_id, r.direction, r.namespace, r.name, *io)
            writes.append(("insert_dataset_of_run", ("run", r.run_id), of_run))
            if r.direction == OUTPUT:
                self._note_written(r.namespace, r.name, writes, noted)
        # a dataset's and a job's rows are the same for every run: one each per call
        for (ns, name, direction, job_ns, job), at in seen.items():
            dataset_job = (ns, name, direction, job_ns, job, at)
            writes.append(("insert_dataset_job", ("ds", ns, name), dataset_job))
            job_dataset = (job_ns, job, direction, ns, name, at)
            writes.append(("insert_job_dataset", ("job", job_ns, job), job_dataset))
        await self._write_all(writes)
        self._remember_buckets(noted)

    def _note_written(self, namespace: str, name: str, writes: list, noted: list) -> None:
        """A ``written_datasets`` row for an output, once per process (every time when rows
        expire: the row must outlive the dataset's newest write)."""
        key = ("written", f"{namespace}\n{name}", _FAR_PAST)
        if key in self._known_buckets and not self.retention_s:
            return
        shard = zlib.crc32(f"{namespace}\n{name}".encode()) % WRITTEN_SHARDS
        writes.append(("insert_written_dataset", ("written", shard), (shard, namespace, name)))
        noted.append(key)

    async def written_datasets(self) -> list[tuple[str, str]]:
        read = self._all_rows
        shards = await asyncio.gather(
            *(read("select_written_datasets", (shard,)) for shard in range(WRITTEN_SHARDS))
        )
        return sorted((ns, name) for rows in shards for ns, name in rows)

    async def open_lapses(self) -> list[Lapse]:
        rows = await self._all_rows("select_lapses", (LAPSES,))
        return [lapse_from_dict(orjson.loads(r[0])) for r in rows]

    async def open_lapse(self, lapse: Lapse) -> None:
        text = orjson.dumps(lapse_to_dict(lapse)).decode()
        row = (LAPSES, lapse.write.namespace, lapse.write.name, text)
        await self._write_all([("insert_lapse", ("lapse",), row)])

    async def close_lapse(self, namespace: str, name: str) -> None:
        await self._write_all([("delete_lapse", ("lapse",), (LAPSES, namespace, name))])

    @staticmethod
    def _io_row(row: Sequence[Any]) -> DatasetIO:
        return DatasetIO(*row[:6], _utc(row[6]), row[7], row[8])  # type: ignore[arg-type]

    async def _all_rows(self, name: str, values: Sequence[Any]) -> list[tuple]:
        rows: list[tuple] = []
        state: bytes | None = None
        while True:
            page, state = await self._execute(name, values, fetch_size=5000, paging_state=state)
            rows.extend(page)
            if state is None:
                return rows

    async def list_dataset_runs(
        self, namespace: str, name: str, limit: int, cursor: str | None = None
    ) -> DatasetRunPage:
        # A month's partition is read whole and sorted newest first (it is keyed by run, so a
        # run's later events update its row); the cursor is (month, position in that order).
        scope = f"dataset-runs|{namespace}|{name}"
        position = self._position(open_cursor(scope, cursor) if cursor else None)
        buckets = await self._buckets("dataset", f"{namespace}\n{name}", _FAR_PAST, _FAR_FUTURE)
        if position is not None:
            buckets = [b for b in buckets if b <= position[0]]
        found: list[DatasetIO] = []
        end = None
        for bucket in buckets:
            rows = await self._all_rows("select_dataset_runs", (namespace, name, bucket))
            ios = sorted(
                (self._io_row(r) for r in rows),
                key=lambda io: (-io.event_time.timestamp(), io.run_id or "", io.direction),
            )
            skip = (
                int.from_bytes(position[1], "big")
                if position is not None and bucket == position[0] and position[1]
                else 0
            )
            take = ios[skip : skip + limit - len(found)]
            found.extend(take)
            if len(found) >= limit:
                if skip + len(take) < len(ios):
                    end = (bucket, (skip + len(take)).to_bytes(8, "big"))
                elif bucket != buckets[-1]:
                    end = (buckets[buckets.index(bucket) + 1], None)
                break
        statuses = await self.get_run_statuses([io.run_id for io in found if io.run_id])
        runs = [DatasetRun(io, statuses.get(io.run_id or "")) for io in found]
        return DatasetRunPage(runs, self._seal(scope, end))

    async def _links(self, name: str, key: tuple[str, str]) -> list[DatasetLink]:
        rows = await self._all_rows(name, key)
        links = [DatasetLink(r[0], r[1], r[2], _utc(r[3])) for r in rows]  # type: ignore[arg-type]
        return sorted(links, key=lambda link: link.last_seen, reverse=True)[:1000]

    async def dataset_jobs(self, namespace: str, name: str) -> list[DatasetLink]:
        return await self._links("select_dataset_jobs", (namespace, name))

    async def job_datasets(self, namespace: str, job: str) -> list[DatasetLink]:
        return await self._links("select_job_datasets", (namespace, job))

    async def run_datasets(self, run_id: str) -> list[DatasetIO]:
        rows = await self._all_rows("select_datasets_of_run", (run_id,))
        return [self._io_row(r) for r in rows]
