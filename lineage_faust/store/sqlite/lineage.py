"""A lineage walk's reads in SQLite: a whole level of nodes in one trip to the read thread,
each node one index seek (``dataset_jobs`` both ways, ``run_status_by_job_listing``, the
newest ``dataset_io`` rows joined to their runs)."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from lineage_faust.domain.datasets import OUTPUT
from lineage_faust.domain.freshness import LastWrite
from lineage_faust.domain.records import STATUS_COLUMNS, RunStatus
from lineage_faust.store.dataset_history import HISTORY_SCAN, last_write_of
from lineage_faust.store.interfaces import Link, NodeKey
from lineage_faust.store.sqlite.codecs import _LIVE, _now_us, _status_row
from lineage_faust.store.sqlite.datasets import SQLiteDatasets

# every link, unordered: the walk orders nodes itself and bounds the graph by its node limit
_JOB_LINKS = (
    "SELECT dsNamespace, dsName, direction FROM dataset_jobs "
    f"WHERE jobNamespace = ? AND jobName = ? AND {_LIVE}"
)
_DATASET_LINKS = (
    "SELECT jobNamespace, jobName, direction FROM dataset_jobs "
    f"WHERE dsNamespace = ? AND dsName = ? AND {_LIVE}"
)
_LATEST_RUN = (
    f"SELECT {STATUS_COLUMNS} FROM run_status WHERE namespace = ? AND jobName = ? AND {_LIVE} "
    "ORDER BY runTime DESC, runId ASC LIMIT 1"
)
# the dataset's newest history rows (as dataset_history.last_writes scans them), then the
# first of those that is an output of a COMPLETE run
_LAST_GOOD_WRITE = (
    f"SELECT {', '.join('s.' + c for c in STATUS_COLUMNS.split(', '))} FROM "
    "(SELECT runId, direction, eventTime FROM dataset_io "
    f"WHERE dsNamespace = ? AND dsName = ? AND {_LIVE} "
    f"ORDER BY eventTime DESC, runId ASC, direction ASC LIMIT {HISTORY_SCAN}) AS io "
    f"JOIN run_status AS s ON s.runId = io.runId "
    f"WHERE io.direction = '{OUTPUT}' AND s.state = 'COMPLETE' AND "
    "(s.expiresAt IS NULL OR s.expiresAt > ?) "
    "ORDER BY io.eventTime DESC, io.runId ASC LIMIT 1"
)


def _links(conn: sqlite3.Connection, sql: str, keys: Sequence[NodeKey], now: int) -> dict:
    found: dict[NodeKey, list[Link]] = {}
    for key in dict.fromkeys(keys):
        if rows := conn.execute(sql, (*key, now)).fetchall():
            found[key] = rows
    return found


class SQLiteLineage(SQLiteDatasets):
    async def links_of(
        self, jobs: Sequence[NodeKey], datasets: Sequence[NodeKey]
    ) -> tuple[dict[NodeKey, list[Link]], dict[NodeKey, list[Link]]]:
        def read(conn: sqlite3.Connection) -> tuple[dict, dict]:
            now = _now_us()
            return _links(conn, _JOB_LINKS, jobs, now), _links(conn, _DATASET_LINKS, datasets, now)

        return await self._read(read)

    async def latest_runs(self, jobs: Sequence[NodeKey]) -> dict[NodeKey, RunStatus]:
        def read(conn: sqlite3.Connection) -> dict[NodeKey, RunStatus]:
            now, found = _now_us(), {}
            for key in dict.fromkeys(jobs):
                row = conn.execute(_LATEST_RUN, (*key, now)).fetchone()
                if row is not None:
                    found[key] = _status_row(row)
            return found

        return await self._read(read)

    async def last_good_writes(self, datasets: Sequence[NodeKey]) -> dict[NodeKey, LastWrite]:
        def read(conn: sqlite3.Connection) -> dict[NodeKey, RunStatus]:
            now, found = _now_us(), {}
            for key in dict.fromkeys(datasets):
                row = conn.execute(_LAST_GOOD_WRITE, (*key, now, now)).fetchone()
                if row is not None:
                    found[key] = _status_row(row)
            return found

        writes = {key: last_write_of(*key, run) for key, run in (await self._read(read)).items()}
        return {key: write for key, write in writes.items() if write is not None}
