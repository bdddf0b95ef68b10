"""The SQLite store keeps few statement shapes: sqlite3 caches each distinct statement's
compiled program per connection, and multi-row statements of every batch size made the
worker's memory grow as sizes accumulated (README, Performance)."""

from __future__ import annotations

from pathlib import Path

from lineage_faust.store.sqlite.codecs import _chunks, _padded
from lineage_faust.store.sqlite.store import SQLiteStore
from tests.support.runs_data import T0, run_status


def test_chunks_keep_every_row_in_order_in_few_sizes() -> None:
    sizes: set[int] = set()
    for n in range(1, 3000):
        rows = [(i, "x") for i in range(n)]
        chunks = _chunks(rows)
        assert [row for chunk in chunks for row in chunk] == rows
        sizes.update(len(chunk) for chunk in chunks)
    assert sizes == {1 << k for k in range(11)}  # 1, 2, 4, ..., 1024: 11 shapes in all


def test_chunks_respect_the_parameter_limit() -> None:
    wide = [tuple(range(100))] * 1000  # 100 parameters a row: at most 320 rows a statement
    assert max(len(chunk) for chunk in _chunks(wide)) == 256


def test_padded_lists_hold_every_value_and_only_repeat_the_last() -> None:
    for n in range(1, 1300):
        values = [f"run-{i}" for i in range(n)]
        lists = _padded(values)
        assert all(len(part) & (len(part) - 1) == 0 and len(part) <= 512 for part in lists)
        assert [v for part in lists for v in dict.fromkeys(part)] == values


async def test_statuses_of_any_batch_size_use_few_statements(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "lineage.db")
    await store.open()
    try:
        statements: set[str] = set()  # as run, values filled in
        await store._run(lambda conn: conn.set_trace_callback(statements.add))
        expected: set[str] = set()
        for n in range(1, 120):
            batch = [
                run_status(f"run-{n}-{i}", "COMPLETE", namespace="ns", job="job", start=T0)
                for i in range(n)
            ]
            await store.write_run_statuses(batch)
            expected.update(s.run_id for s in batch)
        # (the trace shows statements with their values: count the rows of each)
        shapes = {s.count("('run-") for s in statements if s.startswith("INSERT INTO run_status")}
        assert shapes == {1, 2, 4, 8, 16, 32, 64}  # not one shape per batch size
        some = sorted(expected)[:301]  # read back through a padded IN list (512)
        assert set(await store.get_run_statuses([*some, "missing"])) == set(some)
    finally:
        await store.close()
