"""The store on Cassandra. One class per role, all on one session (``session``: connection,
prepared statements, batched writes): events and dead letters (``events``), run statuses
and their index tables (``runs``), dataset reads and writes (``datasets``), the alerts
outbox (``alerts``), incidents' lifecycles (``incidents``), lineage walks (``lineage``);
``CassandraStore`` is all of them. The driver's paging state is the API's opaque cursor (sealed
with a check, ``store.cursors``)."""

from __future__ import annotations

from functools import partial
from typing import Any

from lineage_faust.store.cassandra.alerts import CassandraAlerts
from lineage_faust.store.cassandra.events import CassandraEvents
from lineage_faust.store.cassandra.incidents import CassandraIncidents
from lineage_faust.store.cassandra.lineage import CassandraLineage
from lineage_faust.store.errors import StoreError
from lineage_faust.store.interfaces import Store


class CassandraStore(CassandraEvents, CassandraLineage, CassandraAlerts, CassandraIncidents, Store):
    def __repr__(self) -> str:
        return f"CassandraStore({','.join(self.options.hosts)}/{self.options.keyspace})"

    def __reduce__(self) -> tuple[Any, ...]:
        # pickled unopened: a session and its threads belong to the process that opens it
        return (partial(CassandraStore, self.options, retention_s=self.retention_s), ())

    def for_helper(self) -> CassandraStore:
        # Cassandra takes writes from any number of processes: the triage helper writes each
        # batch's events, dead letters and dataset links itself, on a session of its own
        return CassandraStore(self.options, retention_s=self.retention_s)

    async def health(self) -> None:
        rows, _ = await self._execute("select_meta", ("schema_version",))
        if not rows:
            raise StoreError("schema missing: schema_meta.schema_version not found")


__all__ = ["CassandraStore"]
