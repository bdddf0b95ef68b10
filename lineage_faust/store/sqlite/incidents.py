"""Incidents' lifecycles in SQLite: a record per incident written only over the version it
was read at (one transaction: the compare and the write), the subjects pointing at the
incident last saved with them, and a listing newest first."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

import orjson

from lineage_faust.domain.incidents import Incident
from lineage_faust.store.queries import IncidentPage, IncidentQuery
from lineage_faust.store.sqlite.codecs import (
    _LIVE,
    _now_us,
    _open_time_cursor,
    _seal_time_cursor,
    _us,
)
from lineage_faust.store.sqlite.connection import SQLiteConnection

SCAN_ROWS = 200  # incidents read per step of a filtered listing


class SQLiteIncidents(SQLiteConnection):
    async def get_incidents(self, incident_ids: Sequence[str]) -> dict[str, Incident]:
        ids = list(dict.fromkeys(incident_ids))
        if not ids:
            return {}
        sql = (
            f"SELECT incident, version FROM incident_book WHERE incidentId IN "
            f"({','.join('?' * len(ids))}) AND {_LIVE}"
        )
        rows = await self._read(lambda conn: conn.execute(sql, [*ids, _now_us()]).fetchall())
        return {i.incident_id: i for i in (_incident(*row) for row in rows)}

    async def incidents_of_subjects(self, subjects: Sequence[str]) -> dict[str, str]:
        wanted = list(dict.fromkeys(subjects))
        if not wanted:
            return {}
        sql = (
            f"SELECT subject, incidentId FROM incident_subjects WHERE subject IN "
            f"({','.join('?' * len(wanted))}) AND {_LIVE}"
        )
        rows = await self._read(lambda conn: conn.execute(sql, [*wanted, _now_us()]).fetchall())
        return dict(rows)

    async def save_incident(self, incident: Incident) -> bool:
        expected = incident.version
        expires = self._expires_at()

        def save(conn: sqlite3.Connection) -> bool:
            conn.execute("BEGIN IMMEDIATE")
            try:
                row = conn.execute(
                    "SELECT version FROM incident_book WHERE incidentId = ?",
                    (incident.incident_id,),
                ).fetchone()
                if (row[0] if row else 0) != expected:
                    conn.execute("ROLLBACK")
                    return False
                incident.version = expected + 1
                text = orjson.dumps(incident.to_dict()).decode()
                conn.execute(
                    "INSERT INTO incident_book (incidentId, version, state, openedAt, "
                    "incident, expiresAt) VALUES (?, ?, ?, ?, ?, ?) "
                    "ON CONFLICT (incidentId) DO UPDATE SET version = excluded.version, "
                    "state = excluded.state, incident = excluded.incident, "
                    "expiresAt = excluded.expiresAt",
                    (
                        incident.incident_id,
                        incident.version,
                        incident.state,
                        _us(incident.opened_at),
                        text,
                        expires,
                    ),
                )
                conn.executemany(
                    "INSERT INTO incident_subjects (subject, incidentId, expiresAt) "
                    "VALUES (?, ?, ?) ON CONFLICT (subject) DO UPDATE SET "
                    "incidentId = excluded.incidentId, expiresAt = excluded.expiresAt",
                    [(s, incident.incident_id, expires) for s in incident.subjects],
                )
                conn.execute("COMMIT")
            except BaseException:
                incident.version = expected
                conn.execute("ROLLBACK")
                raise
            return True

        return await self._run(save)

    async def list_incidents(
        self, query: IncidentQuery, limit: int, cursor: str | None = None
    ) -> IncidentPage:
        scope = query.scope()
        position = _open_time_cursor(scope, cursor)
        where = [_LIVE]
        params: list[Any] = [_now_us()]
        if query.state is not None:
            where.append("state = ?")
            params.append(query.state)
        if query.since is not None:
            where.append("openedAt >= ?")
            params.append(_us(query.since))
        found: list[tuple[Incident, int]] = []
        while len(found) <= limit:  # namespace/job filtered here: a scan in steps
            step = list(where)
            step_params = list(params)
            if position is not None:
                at, after = position
                step.append("(openedAt < ? OR (openedAt = ? AND incidentId > ?))")
                step_params += [at, at, after]
            sql = (
                f"SELECT incident, version, openedAt, incidentId FROM incident_book "
                f"WHERE {' AND '.join(step)} ORDER BY openedAt DESC, incidentId ASC LIMIT ?"
            )
            rows = await self._read(
                lambda conn, sql=sql, p=step_params: conn.execute(sql, [*p, SCAN_ROWS]).fetchall()
            )
            for text, version, opened, incident_id in rows:
                incident = _incident(text, version)
                if query.matches(incident):
                    found.append((incident, opened))
                position = (opened, incident_id)
                if len(found) > limit:
                    break
            if len(rows) < SCAN_ROWS:
                break
        if len(found) <= limit:
            return IncidentPage([i for i, _ in found], None)
        last, opened = found[limit - 1]
        return IncidentPage(
            [i for i, _ in found[:limit]], _seal_time_cursor(scope, opened, last.incident_id)
        )


def _incident(text: str, version: int) -> Incident:
    incident = Incident.from_dict(orjson.loads(text))
    incident.version = version
    return incident
