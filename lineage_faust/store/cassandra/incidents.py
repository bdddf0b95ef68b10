"""Incidents' lifecycles on Cassandra: a lightweight transaction writes an incident only over
the version it was read at (``IF NOT EXISTS`` for a new one, ``IF version = ?`` after), so
two workers and the API racing on one incident apply their changes one after the other.
``incidents_by_day`` lists them newest first (keys only; the record is read from
``incident_book``), ``incident_subjects`` points each failed job or dataset at its latest
incident."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import datetime

import orjson

from lineage_faust.domain.incidents import Incident
from lineage_faust.store.cassandra.codecs import (
    _FAR_FUTURE,
    _FAR_PAST,
    _ms,
    day_bucket,
    walk_buckets,
)
from lineage_faust.store.cassandra.listings import CassandraListings
from lineage_faust.store.cursors import open_cursor
from lineage_faust.store.queries import IncidentPage, IncidentQuery

IN_LIMIT = 100  # keys per IN (...) read


class CassandraIncidents(CassandraListings):
    async def get_incidents(self, incident_ids: Sequence[str]) -> dict[str, Incident]:
        ids = list(dict.fromkeys(incident_ids))
        chunks = [ids[i : i + IN_LIMIT] for i in range(0, len(ids), IN_LIMIT)]
        found = await asyncio.gather(*(self._execute("select_incidents", (c,)) for c in chunks))
        out = {}
        for rows, _ in found:
            for text, version in rows:
                incident = Incident.from_dict(orjson.loads(text))
                incident.version = version
                out[incident.incident_id] = incident
        return out

    async def incidents_of_subjects(self, subjects: Sequence[str]) -> dict[str, str]:
        wanted = list(dict.fromkeys(subjects))
        chunks = [wanted[i : i + IN_LIMIT] for i in range(0, len(wanted), IN_LIMIT)]
        found = await asyncio.gather(
            *(self._execute("select_incident_subjects", (c,)) for c in chunks)
        )
        return {subject: incident for rows, _ in found for subject, incident in rows}

    async def save_incident(self, incident: Incident) -> bool:
        expected = incident.version
        incident.version = expected + 1
        text = orjson.dumps(incident.to_dict()).decode()
        opened = _ms(incident.opened_at)
        try:
            if expected == 0:
                values = (incident.incident_id, 1, incident.state, opened, text)
                rows, _ = await self._execute("insert_incident", values)
            else:
                values = (incident.version, incident.state, text, incident.incident_id, expected)
                rows, _ = await self._execute("update_incident", values)
        except BaseException:
            incident.version = expected
            raise
        if not rows[0][0]:  # not applied: someone wrote another version first
            incident.version = expected
            return False
        writes: list = []
        noted: list = []
        bucket = day_bucket(opened)
        if expected == 0:
            self._note_bucket("incidents", "", bucket, writes, noted)
            row = (bucket, opened, incident.incident_id)
            writes.append(("insert_incident_by_day", bucket, row))
        for subject in incident.subjects:
            row = (subject, incident.incident_id)
            writes.append(("insert_incident_subject", ("subject", subject), row))
        await self._write_all(writes)
        self._remember_buckets(noted)
        return True

    async def list_incidents(
        self, query: IncidentQuery, limit: int, cursor: str | None = None
    ) -> IncidentPage:
        scope = query.scope()
        position = self._position(open_cursor(scope, cursor) if cursor else None)
        lower = _ms(query.since) if query.since else _FAR_PAST
        buckets = await self._buckets("incidents", "", day_bucket(lower), _FAR_FUTURE)

        async def page(bucket: datetime, n: int, state: bytes | None) -> tuple:
            return await self._execute(
                "select_incidents_by_day", (bucket, lower), fetch_size=n, paging_state=state
            )

        async def accept(rows: list) -> list[Incident]:
            found = await self.get_incidents([incident_id for _, incident_id in rows])
            return [
                found[incident_id]
                for _, incident_id in rows
                if incident_id in found and query.matches(found[incident_id])
            ]

        incidents, end = await walk_buckets(
            buckets, page, accept, limit, position, max(10 * limit, 500)
        )
        return IncidentPage(incidents, self._seal(scope, end))
