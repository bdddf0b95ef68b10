"""The embedded store: one SQLite file in WAL mode.

The worker writes and the API process reads the same file at the same time (WAL lets readers
proceed while a writer commits). One class per role, all on one set of connections
(``connection``): events and dead letters (``events``), run statuses (``runs``), dataset reads
and writes (``datasets``), the alerts outbox and incident ledger (``alerts``), incidents'
lifecycles (``incidents``), dataset freshness (``freshness``), lineage walks
(``lineage``); ``SQLiteStore`` is all of them.
"""

from __future__ import annotations

import sqlite3
from functools import partial
from typing import Any

from lineage_faust.store.interfaces import Store
from lineage_faust.store.sqlite.alerts import SQLiteAlerts
from lineage_faust.store.sqlite.codecs import (
    _LIVE,
    _now_us,
    pack_text,
)
from lineage_faust.store.sqlite.events import SQLiteEvents
from lineage_faust.store.sqlite.freshness import SQLiteFreshness
from lineage_faust.store.sqlite.incidents import SQLiteIncidents
from lineage_faust.store.sqlite.lineage import SQLiteLineage


class SQLiteStore(
    SQLiteEvents, SQLiteLineage, SQLiteAlerts, SQLiteIncidents, SQLiteFreshness, Store
):
    pack_text = staticmethod(pack_text)  # events come packed: see pack_text

    def __repr__(self) -> str:
        return f"SQLiteStore({str(self.path)!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        # pickled unopened: connections and threads belong to the process that opens it
        return (partial(SQLiteStore, self.path, **self._options), ())

    def for_helper(self) -> SQLiteStore:
        # SQLite takes writers from several processes (WAL: each waits its turn for the lock)
        return SQLiteStore(self.path, **self._options)

    async def counts(self) -> dict[str, int] | None:
        def count(conn: sqlite3.Connection) -> dict[str, int]:
            now = _now_us()
            found = {
                table: conn.execute(
                    f"SELECT count(*) FROM {table} WHERE {_LIVE}", (now,)
                ).fetchone()[0]
                for table in ("events_by_run", "non_run_events", "dead_letters", "alerts")
            }
            by_state = conn.execute(
                f"SELECT state, count(*) FROM run_status WHERE {_LIVE} GROUP BY state", (now,)
            ).fetchall()
            found.update({f"runs {state}": n for state, n in sorted(by_state)})
            return found

        return await self._read(count)


__all__ = ["SQLiteStore"]
