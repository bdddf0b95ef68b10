"""The alerts outbox in SQLite: an alert recorded once by id, published, marked published;
the incident ledger: the first alert to claim an incident holds it."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

import orjson

from lineage_faust.domain.alerting import Alert
from lineage_faust.store.queries import (
    AlertPage,
    AlertQuery,
)
from lineage_faust.store.sqlite.codecs import (
    _LIVE,
    _execute_rows,
    _now_us,
    _open_time_cursor,
    _us,
)
from lineage_faust.store.sqlite.connection import SQLiteConnection


class SQLiteAlerts(SQLiteConnection):
    async def record_alerts(self, alerts: Sequence[Alert]) -> list[Alert]:
        if not alerts:
            return []
        expires = self._expires_at()
        rows = [
            (
                a.alert_id,
                _us(a.raised_at),
                a.severity,
                orjson.dumps(a.to_dict()).decode(),
                expires,
                a.incident_id,
            )
            for a in alerts
        ]
        ids = [a.alert_id for a in alerts]

        def record(conn: sqlite3.Connection) -> list[tuple]:
            conn.execute("BEGIN IMMEDIATE")
            try:
                _execute_rows(
                    conn,
                    "INSERT OR IGNORE INTO alerts "
                    "(alertId, raisedAt, severity, alert, expiresAt, incidentId)",
                    rows,
                )
                marks = ",".join("?" * len(ids))
                pending = conn.execute(
                    f"SELECT alert FROM alerts WHERE alertId IN ({marks}) AND published = 0",
                    ids,
                ).fetchall()
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            return pending

        pending = {}
        for (text,) in await self._run(record):
            alert = Alert.from_dict(orjson.loads(text))
            pending[alert.alert_id] = alert
        return [pending[i] for i in dict.fromkeys(ids) if i in pending]

    async def mark_alerts_published(self, alert_ids: Sequence[str]) -> None:
        await self._write_rows(
            "UPDATE alerts SET published = 1 WHERE alertId IN (", [(i,) for i in alert_ids], ")"
        )

    async def claim_incidents(self, claims: Sequence[tuple[str, str]]) -> dict[str, str]:
        if not claims:
            return {}
        expires = self._expires_at()
        first = {incident: alert for incident, alert in reversed(claims)}  # first claim wins
        ids = list(first)

        def claim(conn: sqlite3.Connection) -> list[tuple]:
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.executemany(
                    "INSERT OR IGNORE INTO incidents (incidentId, alertId, expiresAt) "
                    "VALUES (?, ?, ?)",
                    [(incident, alert, expires) for incident, alert in first.items()],
                )
                marks = ",".join("?" * len(ids))
                held = conn.execute(
                    f"SELECT incidentId, alertId FROM incidents WHERE incidentId IN ({marks})", ids
                ).fetchall()
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            return held

        return dict(await self._run(claim))

    async def incident_alerts(self, incident_id: str, limit: int) -> list[Alert]:
        sql = (
            f"SELECT alert FROM alerts WHERE incidentId = ? AND {_LIVE} "
            "ORDER BY raisedAt, alertId LIMIT ?"
        )
        params = (incident_id, _now_us(), limit)
        rows = await self._read(lambda conn: conn.execute(sql, params).fetchall())
        return [Alert.from_dict(orjson.loads(r[0])) for r in rows]

    async def list_alerts(
        self, query: AlertQuery, limit: int, cursor: str | None = None
    ) -> AlertPage:
        scope = query.scope()
        severities = query.severities
        where = [_LIVE, f"severity IN ({','.join('?' * len(severities))})"]
        params: list[Any] = [_now_us(), *severities]
        if query.since is not None:
            where.append("raisedAt >= ?")
            params.append(_us(query.since))
        if position := _open_time_cursor(scope, cursor):
            at, after = position
            where.append("(raisedAt < ? OR (raisedAt = ? AND alertId > ?))")
            params += [at, at, after]
        sql = (
            f"SELECT alert, raisedAt, alertId FROM alerts WHERE {' AND '.join(where)} "
            "ORDER BY raisedAt DESC, alertId ASC LIMIT ?"
        )
        rows, next_cursor = await self._listing(scope, sql, params, limit, lambda r: (r[1], r[2]))
        return AlertPage([Alert.from_dict(orjson.loads(r[0])) for r in rows], next_cursor)
