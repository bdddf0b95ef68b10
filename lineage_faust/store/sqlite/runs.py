"""Run statuses in SQLite: one row per run; listings by state, time, job and parent (indexes)."""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping, Sequence

from lineage_faust.domain.records import (
    STATUS_COLUMNS,
    RunStatus,
    run_time,
    state_time,
    status_to_row,
)
from lineage_faust.store.queries import (
    RunPage,
    RunQuery,
)
from lineage_faust.store.sqlite.codecs import (
    _LIVE,
    _now_us,
    _open_time_cursor,
    _padded,
    _status_row,
    _us,
)
from lineage_faust.store.sqlite.connection import SQLiteConnection


class SQLiteRuns(SQLiteConnection):
    async def write_run_statuses(
        self, statuses: Sequence[RunStatus], previous: Mapping[str, RunStatus] | None = None
    ) -> None:
        # SQLite's own indexes follow the row, so ``previous`` is not needed here.
        expires = self._expires_at()
        rows = [
            (*status_to_row(s, _us), _us(run_time(s)), _us(state_time(s)), expires)
            for s in statuses
        ]
        columns = [*STATUS_COLUMNS.split(", "), "runTime", "stateTime", "expiresAt"]
        updates = ", ".join(f"{c}=excluded.{c}" for c in columns[1:])
        await self._write_rows(
            f"INSERT INTO run_status ({', '.join(columns)})",
            rows,
            f"ON CONFLICT (runId) DO UPDATE SET {updates}",
        )

    async def get_run_status(self, run_id: str) -> RunStatus | None:
        return (await self.get_run_statuses([run_id])).get(run_id)

    async def get_run_statuses(self, run_ids: Sequence[str]) -> dict[str, RunStatus]:
        ids = list(dict.fromkeys(run_ids))
        if not ids:
            return {}

        def query(conn: sqlite3.Connection) -> list[tuple]:
            rows: list[tuple] = []
            now = _now_us()
            for chunk in _padded(ids):
                sql = (
                    f"SELECT {STATUS_COLUMNS} FROM run_status "
                    f"WHERE runId IN ({', '.join('?' * len(chunk))}) AND {_LIVE}"
                )
                rows.extend(conn.execute(sql, (*chunk, now)).fetchall())
            return rows

        return {row[0]: _status_row(row) for row in await self._read(query)}

    async def list_runs(self, query: RunQuery, limit: int, cursor: str | None = None) -> RunPage:
        scope = query.scope()
        column = "stateTime" if query.state and not query.job else "runTime"
        where, params = [_LIVE], [_now_us()]
        for sql_column, value in (
            ("state", query.state),
            ("namespace", query.namespace),
            ("jobName", query.job),
        ):
            if value is not None:
                where.append(f"{sql_column} = ?")
                params.append(value)
        if query.since is not None:
            where.append(f"{column} >= ?")
            params.append(_us(query.since))
        if query.until is not None:
            where.append(f"{column} <= ?")
            params.append(_us(query.until))
        if position := _open_time_cursor(scope, cursor):
            at, after_run = position
            where.append(f"({column} < ? OR ({column} = ? AND runId > ?))")
            params += [at, at, after_run]
        sql = (
            f"SELECT {STATUS_COLUMNS}, {column} FROM run_status WHERE {' AND '.join(where)} "
            f"ORDER BY {column} DESC, runId ASC LIMIT ?"
        )
        rows, next_cursor = await self._listing(scope, sql, params, limit, lambda r: (r[-1], r[0]))
        return RunPage([_status_row(r[:-1]) for r in rows], next_cursor)

    async def list_children(self, run_id: str, limit: int, cursor: str | None = None) -> RunPage:
        scope = f"children|{run_id}"
        where, params = ["parentRunId = ?", _LIVE], [run_id, _now_us()]
        if position := _open_time_cursor(scope, cursor):
            at, after_run = position
            where.append("(runTime > ? OR (runTime = ? AND runId > ?))")
            params += [at, at, after_run]
        sql = (
            f"SELECT {STATUS_COLUMNS}, runTime FROM run_status WHERE {' AND '.join(where)} "
            "ORDER BY runTime, runId LIMIT ?"
        )
        rows, next_cursor = await self._listing(scope, sql, params, limit, lambda r: (r[-1], r[0]))
        return RunPage([_status_row(r[:-1]) for r in rows], next_cursor)
