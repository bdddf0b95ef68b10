"""The alerts outbox on Cassandra: a lightweight transaction records each alert once by id;
published alerts are marked with a plain update; ``alerts_by_day`` lists them newest first,
``alerts_by_incident`` by incident. The incident ledger: a lightweight transaction per
incident gives it to the first alert that claims it."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import datetime

import orjson

from lineage_faust.domain.alerting import Alert
from lineage_faust.store.cassandra.codecs import (
    _FAR_FUTURE,
    _FAR_PAST,
    _ms,
    day_bucket,
    walk_buckets,
)
from lineage_faust.store.cassandra.listings import CassandraListings
from lineage_faust.store.cursors import open_cursor
from lineage_faust.store.queries import (
    AlertPage,
    AlertQuery,
)


class CassandraAlerts(CassandraListings):
    async def _record_alert(self, alert: Alert) -> tuple[Alert, str] | None:
        """The alert as first recorded (and its text) unless published already."""
        text = orjson.dumps(alert.to_dict()).decode()
        raised = _ms(alert.raised_at)
        rows, _ = await self._execute(
            "insert_alert", (alert.alert_id, raised, alert.severity, text)
        )
        if not (rows and rows[0][0]):  # not applied: recorded before (or a retried insert)
            found, _ = await self._execute("select_alert", (alert.alert_id,))
            if not found or found[0][1]:
                return None  # published already
            return Alert.from_dict(orjson.loads(found[0][0])), found[0][0]
        return alert, text

    async def record_alerts(self, alerts: Sequence[Alert]) -> list[Alert]:
        unique = list({a.alert_id: a for a in alerts}.values())
        recorded = [r for r in await asyncio.gather(*map(self._record_alert, unique)) if r]
        noted: list = []
        writes: list = []
        for alert, text in recorded:
            raised = _ms(alert.raised_at)
            bucket = day_bucket(raised)
            self._note_bucket("alerts", "", bucket, writes, noted)
            row = (bucket, raised, alert.alert_id, alert.severity, text)
            writes.append(("insert_alert_by_day", bucket, row))
            incident = alert.incident_id
            by_incident = (incident, raised, alert.alert_id, text)
            writes.append(("insert_alert_by_incident", ("incident", incident), by_incident))
        await self._write_all(writes)
        self._remember_buckets(noted)
        return [alert for alert, _ in recorded]

    async def claim_incidents(self, claims: Sequence[tuple[str, str]]) -> dict[str, str]:
        first = {incident: alert for incident, alert in reversed(claims)}  # first claim wins

        async def claim(incident: str, alert: str) -> tuple[str, str]:
            rows, _ = await self._execute("claim_incident", (incident, alert))
            # not applied: the row holds the alert that claimed it first
            # ([applied], incidentId, alertId)
            return incident, alert if rows[0][0] else rows[0][2]

        return dict(await asyncio.gather(*(claim(i, a) for i, a in first.items())))

    async def incident_alerts(self, incident_id: str, limit: int) -> list[Alert]:
        rows, _ = await self._execute("select_alerts_by_incident", (incident_id, limit))
        return [Alert.from_dict(orjson.loads(r[0])) for r in rows]

    async def mark_alerts_published(self, alert_ids: Sequence[str]) -> None:
        ids = dict.fromkeys(alert_ids)
        await self._write_all([("mark_alert_published", i, (i,)) for i in ids])

    async def list_alerts(
        self, query: AlertQuery, limit: int, cursor: str | None = None
    ) -> AlertPage:
        scope = query.scope()
        position = self._position(open_cursor(scope, cursor) if cursor else None)
        lower = _ms(query.since) if query.since else _FAR_PAST
        severities = set(query.severities)
        buckets = await self._buckets("alerts", "", day_bucket(lower), _FAR_FUTURE)

        async def page(bucket: datetime, n: int, state: bytes | None) -> tuple:
            return await self._execute(
                "select_alerts_by_day", (bucket, lower), fetch_size=n, paging_state=state
            )

        async def accept(rows: list) -> list[Alert]:
            return [
                Alert.from_dict(orjson.loads(text))
                for _, _, severity, text in rows
                if severity in severities
            ]

        alerts, end = await walk_buckets(
            buckets, page, accept, limit, position, max(10 * limit, 500)
        )
        return AlertPage(alerts, self._seal(scope, end))
