"""Which runs and jobs read and wrote each dataset, in SQLite (``dataset_io``, ``dataset_jobs``)."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

from lineage_faust.domain.datasets import DatasetIO
from lineage_faust.store.queries import (
    DatasetLink,
    DatasetRun,
    DatasetRunPage,
)
from lineage_faust.store.sqlite.codecs import (
    _LIVE,
    _dt,
    _execute_rows,
    _now_us,
    _open_time_cursor,
    _us,
)
from lineage_faust.store.sqlite.runs import SQLiteRuns


class SQLiteDatasets(SQLiteRuns):
    async def write_dataset_io(self, rows: Sequence[DatasetIO]) -> None:
        if not rows:
            return
        expires = self._expires_at()
        runs = [
            (r.namespace, r.name, r.direction, r.run_id, r.job_namespace, r.job,
             _us(r.event_time), r.row_count, r.size_bytes, expires)
            for r in rows
            if r.run_id is not None
        ]  # fmt: skip
        jobs = [
            (r.namespace, r.name, r.direction, r.job_namespace, r.job, _us(r.event_time), expires)
            for r in rows
        ]

        def write(conn: sqlite3.Connection) -> None:
            conn.execute("BEGIN IMMEDIATE")
            try:
                _execute_rows(
                    conn,
                    "INSERT INTO dataset_io (dsNamespace, dsName, direction, runId, "
                    "jobNamespace, jobName, eventTime, rowCount, sizeBytes, expiresAt)",
                    runs,
                    "ON CONFLICT (dsNamespace, dsName, direction, runId) DO UPDATE SET "
                    "eventTime = max(eventTime, excluded.eventTime), "
                    "rowCount = coalesce(excluded.rowCount, rowCount), "
                    "sizeBytes = coalesce(excluded.sizeBytes, sizeBytes), "
                    "expiresAt = excluded.expiresAt",
                )
                _execute_rows(
                    conn,
                    "INSERT INTO dataset_jobs (dsNamespace, dsName, direction, jobNamespace, "
                    "jobName, lastSeen, expiresAt)",
                    jobs,
                    "ON CONFLICT (dsNamespace, dsName, direction, jobNamespace, jobName) "
                    "DO UPDATE SET lastSeen = max(lastSeen, excluded.lastSeen), "
                    "expiresAt = excluded.expiresAt",
                )
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise

        await self._run(write)

    _IO_COLUMNS = (
        "dsNamespace, dsName, direction, runId, jobNamespace, jobName, eventTime, rowCount, "
        "sizeBytes"
    )

    @staticmethod
    def _io_row(row: Sequence[Any]) -> DatasetIO:
        return DatasetIO(*row[:6], _dt(row[6]), row[7], row[8])  # type: ignore[arg-type]

    async def list_dataset_runs(
        self, namespace: str, name: str, limit: int, cursor: str | None = None
    ) -> DatasetRunPage:
        scope = f"dataset-runs|{namespace}|{name}"
        where = ["dsNamespace = ?", "dsName = ?", _LIVE]
        params: list[Any] = [namespace, name, _now_us()]
        if position := _open_time_cursor(scope, cursor):
            at, key = position
            after_run, _, after_direction = key.partition("\n")
            where.append(
                "(eventTime < ? OR (eventTime = ? AND (runId > ? OR "
                "(runId = ? AND direction > ?))))"
            )
            params += [at, at, after_run, after_run, after_direction]
        sql = (
            f"SELECT {self._IO_COLUMNS} FROM dataset_io WHERE {' AND '.join(where)} "
            "ORDER BY eventTime DESC, runId ASC, direction ASC LIMIT ?"
        )
        rows, next_cursor = await self._listing(
            scope, sql, params, limit, lambda r: (r[6], f"{r[3]}\n{r[2]}")
        )
        ios = [self._io_row(r) for r in rows]
        statuses = await self.get_run_statuses([io.run_id for io in ios if io.run_id])
        return DatasetRunPage(
            [DatasetRun(io, statuses.get(io.run_id or "")) for io in ios], next_cursor
        )

    async def _links(self, sql: str, params: tuple) -> list[DatasetLink]:
        rows = await self._read(lambda conn: conn.execute(sql, params).fetchall())
        return [DatasetLink(r[0], r[1], r[2], _dt(r[3])) for r in rows]  # type: ignore[arg-type]

    async def dataset_jobs(self, namespace: str, name: str) -> list[DatasetLink]:
        return await self._links(
            "SELECT jobNamespace, jobName, direction, lastSeen FROM dataset_jobs "
            f"WHERE dsNamespace = ? AND dsName = ? AND {_LIVE} ORDER BY lastSeen DESC LIMIT 1000",
            (namespace, name, _now_us()),
        )

    async def job_datasets(self, namespace: str, job: str) -> list[DatasetLink]:
        return await self._links(
            "SELECT dsNamespace, dsName, direction, lastSeen FROM dataset_jobs "
            f"WHERE jobNamespace = ? AND jobName = ? AND {_LIVE} ORDER BY lastSeen DESC "
            "LIMIT 1000",
            (namespace, job, _now_us()),
        )

    async def run_datasets(self, run_id: str) -> list[DatasetIO]:
        sql = (
            f"SELECT {self._IO_COLUMNS} FROM dataset_io WHERE runId = ? AND {_LIVE} "
            "ORDER BY direction, dsNamespace, dsName"
        )
        rows = await self._read(lambda conn: conn.execute(sql, (run_id, _now_us())).fetchall())
        return [self._io_row(r) for r in rows]
