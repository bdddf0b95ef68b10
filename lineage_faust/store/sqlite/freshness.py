"""Freshness in SQLite: the datasets written (``dataset_io`` outputs) and the open lapses
(``stale_datasets``)."""

from __future__ import annotations

import orjson

from lineage_faust.domain.datasets import OUTPUT
from lineage_faust.domain.freshness import Lapse, lapse_from_dict, lapse_to_dict
from lineage_faust.store.sqlite.codecs import _LIVE, _now_us
from lineage_faust.store.sqlite.connection import SQLiteConnection


class SQLiteFreshness(SQLiteConnection):
    async def written_datasets(self) -> list[tuple[str, str]]:
        sql = (
            "SELECT DISTINCT dsNamespace, dsName FROM dataset_io "
            f"WHERE direction = ? AND {_LIVE} ORDER BY dsNamespace, dsName"
        )
        params = (OUTPUT, _now_us())
        rows = await self._read(lambda conn: conn.execute(sql, params).fetchall())
        return [(ns, name) for ns, name in rows]

    async def open_lapses(self) -> list[Lapse]:
        sql = "SELECT lapse FROM stale_datasets ORDER BY dsNamespace, dsName"
        rows = await self._read(lambda conn: conn.execute(sql).fetchall())
        return [lapse_from_dict(orjson.loads(r[0])) for r in rows]

    async def open_lapse(self, lapse: Lapse) -> None:
        row = (lapse.write.namespace, lapse.write.name, orjson.dumps(lapse_to_dict(lapse)).decode())
        await self._write_rows(
            "INSERT INTO stale_datasets (dsNamespace, dsName, lapse)",
            [row],
            "ON CONFLICT (dsNamespace, dsName) DO UPDATE SET lapse = excluded.lapse",
        )

    async def close_lapse(self, namespace: str, name: str) -> None:
        await self._write_rows(
            "DELETE FROM stale_datasets WHERE (dsNamespace, dsName) IN (", [(namespace, name)], ")"
        )
