"""Walking time buckets on Cassandra: the listings' shared part."""

from __future__ import annotations

from datetime import datetime

from lineage_faust.store.cassandra.codecs import (
    _from_millis,
    _millis,
    _utc,
)
from lineage_faust.store.cassandra.session import CassandraSession
from lineage_faust.store.cursors import seal_cursor
from lineage_faust.store.errors import InvalidCursor


class CassandraListings(CassandraSession):
    """Listings that walk time buckets newest first (runs by state or job, a dataset's runs,
    alerts): which buckets exist, and the cursor that holds a bucket and the driver's paging
    state within it."""

    async def _buckets(
        self, scope: str, name: str, since: datetime, until: datetime
    ) -> list[datetime]:
        found: list[datetime] = []
        state: bytes | None = None
        while True:  # one row per bucket, newest first; years of hours are a few pages
            rows, state = await self._execute(
                "select_buckets", (scope, name, since, until), fetch_size=5000, paging_state=state
            )
            found.extend(_utc(r[0]) for r in rows)
            if state is None:
                return found

    @staticmethod
    def _position(raw: bytes | None) -> tuple[datetime, bytes | None] | None:
        if raw is None:
            return None
        if len(raw) < 8:
            raise InvalidCursor("pagingState was not issued for this query")
        return _from_millis(int.from_bytes(raw[:8], "big", signed=True)), raw[8:] or None

    @staticmethod
    def _seal(scope: str, position: tuple[datetime, bytes | None] | None) -> str | None:
        if position is None:
            return None
        bucket, state = position
        return seal_cursor(scope, _millis(bucket).to_bytes(8, "big", signed=True) + (state or b""))
