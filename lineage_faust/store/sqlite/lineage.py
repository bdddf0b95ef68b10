"""A lineage walk's reads in SQLite: a whole level of nodes in one trip to the read thread and
one statement per kind of read: the level's keys go in as one JSON array (``json_each``), each
key an index seek (``dataset_jobs`` both ways, ``run_status_by_job_listing``, the newest
``dataset_io`` rows joined to their runs)."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

import orjson

from lineage_faust.domain.datasets import OUTPUT
from lineage_faust.domain.freshness import LastWrite
from lineage_faust.store.dataset_history import HISTORY_SCAN
from lineage_faust.store.interfaces import Link, NodeKey
from lineage_faust.store.queries import LatestRun
from lineage_faust.store.sqlite.codecs import _dt, _now_us
from lineage_faust.store.sqlite.datasets import SQLiteDatasets

# the n-th key of the array: its namespace and name
_NAMESPACE, _NAME = "json_extract(k.value, '$[0]')", "json_extract(k.value, '$[1]')"

# every link, unordered: the walk orders nodes itself and bounds the graph by its node limit
_JOB_LINKS = (
    "SELECT k.key, d.dsNamespace, d.dsName, d.direction FROM json_each(?) AS k "
    f"JOIN dataset_jobs AS d ON d.jobNamespace = {_NAMESPACE} AND d.jobName = {_NAME} "
    "WHERE d.expiresAt IS NULL OR d.expiresAt > ?"
)
_DATASET_LINKS = (
    "SELECT k.key, d.jobNamespace, d.jobName, d.direction FROM json_each(?) AS k "
    f"JOIN dataset_jobs AS d ON d.dsNamespace = {_NAMESPACE} AND d.dsName = {_NAME} "
    "WHERE d.expiresAt IS NULL OR d.expiresAt > ?"
)
# only the columns a graph shows (a whole status row costs more to decode than to find)
_LATEST_RUNS = (
    "SELECT k.key, r.runId, r.state, coalesce(r.endTime, r.lastEventTime) FROM json_each(?) AS k "
    "JOIN run_status AS r ON r.rowid = (SELECT rowid FROM run_status "
    f"WHERE namespace = {_NAMESPACE} AND jobName = {_NAME} "
    "AND (expiresAt IS NULL OR expiresAt > ?) ORDER BY runTime DESC, runId ASC LIMIT 1)"
)
# the newest output of a COMPLETE run among the dataset's newest HISTORY_SCAN history rows
# (as dataset_history.last_writes scans them): the listing index walked newest first, from
# no further back than the HISTORY_SCAN-th newest row
_LAST_GOOD_WRITES = (
    "SELECT k.key, s.runId, s.namespace, s.jobName, coalesce(s.endTime, s.lastEventTime) "
    "FROM json_each(?1) AS k JOIN run_status AS s ON s.runId = ("
    "SELECT io.runId FROM dataset_io AS io JOIN run_status AS r ON r.runId = io.runId "
    f"WHERE io.dsNamespace = {_NAMESPACE} AND io.dsName = {_NAME} "
    "AND (io.expiresAt IS NULL OR io.expiresAt > ?2) "
    f"AND io.direction = '{OUTPUT}' AND r.state = 'COMPLETE' "
    "AND (r.expiresAt IS NULL OR r.expiresAt > ?2) "
    "AND io.eventTime >= coalesce((SELECT eventTime FROM dataset_io "
    "WHERE dsNamespace = io.dsNamespace AND dsName = io.dsName "
    f"ORDER BY eventTime DESC LIMIT 1 OFFSET {HISTORY_SCAN - 1}), 0) "
    "ORDER BY io.eventTime DESC, io.runId ASC LIMIT 1)"
)


def _rows(conn: sqlite3.Connection, sql: str, keys: list[NodeKey], now: int) -> list[tuple]:
    return conn.execute(sql, (orjson.dumps(keys).decode(), now)).fetchall() if keys else []


def _unique(keys: Sequence[NodeKey]) -> list[NodeKey]:
    return list(dict.fromkeys(keys))


class SQLiteLineage(SQLiteDatasets):
    async def links_of(
        self, jobs: Sequence[NodeKey], datasets: Sequence[NodeKey]
    ) -> tuple[dict[NodeKey, list[Link]], dict[NodeKey, list[Link]]]:
        job_keys, dataset_keys = _unique(jobs), _unique(datasets)

        def read(conn: sqlite3.Connection) -> tuple[dict, dict]:
            now = _now_us()
            found: tuple[dict, dict] = ({}, {})
            for into, keys, sql in ((0, job_keys, _JOB_LINKS), (1, dataset_keys, _DATASET_LINKS)):
                for index, namespace, name, direction in _rows(conn, sql, keys, now):
                    found[into].setdefault(keys[index], []).append((namespace, name, direction))
            return found

        return await self._read(read)

    async def latest_runs(self, jobs: Sequence[NodeKey]) -> dict[NodeKey, LatestRun]:
        keys = _unique(jobs)

        def read(conn: sqlite3.Connection) -> dict[NodeKey, LatestRun]:
            return {
                keys[index]: LatestRun(run_id, state, _dt(ended))
                for index, run_id, state, ended in _rows(conn, _LATEST_RUNS, keys, _now_us())
            }

        return await self._read(read)

    async def last_good_writes(self, datasets: Sequence[NodeKey]) -> dict[NodeKey, LastWrite]:
        keys = _unique(datasets)

        def read(conn: sqlite3.Connection) -> dict[NodeKey, LastWrite]:
            return {
                keys[index]: LastWrite(*keys[index], _dt(at), run_id, namespace, job)
                for index, run_id, namespace, job, at in _rows(
                    conn, _LAST_GOOD_WRITES, keys, _now_us()
                )
                if at is not None
            }

        return await self._read(read)
