"""The Cassandra store's walk over time buckets (pure logic, no cluster): resuming from any
returned position, with rows filtered out and a scan bound, yields every row exactly once."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from lineage_faust.store.cassandra.codecs import walk_buckets

BUCKETS = [datetime(2026, 11, 21, tzinfo=UTC) - timedelta(hours=h) for h in range(6)]


def make_source(seed: int) -> dict[datetime, list[tuple[datetime, int]]]:
    rng = random.Random(seed)
    return {b: [(b, i) for i in range(rng.choice([0, 0, 1, 5, 13, 40]))] for b in BUCKETS}


def pager(source: dict[datetime, list], calls: list[int]):
    async def page(bucket: datetime, n: int, state: bytes | None) -> tuple[list, bytes | None]:
        """Like Cassandra: at most n rows; a full page carries a state even at the very end."""
        assert n >= 1
        calls.append(n)
        start = int.from_bytes(state, "big") if state else 0
        rows = source[bucket][start : start + n]
        end = start + len(rows)
        return rows, end.to_bytes(4, "big") if len(rows) == n else None

    return page


async def accept(rows: list) -> list:
    return [r for r in rows if r[1] % 3 != 2]  # some index rows turn out stale


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("limit,max_scan", [(1, 500), (4, 7), (25, 30), (1000, 10_000)])
async def test_walk_returns_every_row_once_in_order(seed: int, limit: int, max_scan: int) -> None:
    source = make_source(seed)
    expected = [r for b in BUCKETS for r in source[b] if r[1] % 3 != 2]
    calls: list[int] = []
    page = pager(source, calls)
    got: list = []
    position = None
    for _ in range(10_000):
        rows, position = await walk_buckets(BUCKETS, page, accept, limit, position, max_scan)
        assert len(rows) <= limit
        got.extend(rows)
        if position is None:
            break
    assert got == expected
    assert all(n <= limit for n in calls)  # never asks for more than one page can return


async def test_no_buckets_means_no_rows() -> None:
    rows, position = await walk_buckets([], pager({}, []), accept, 10, None, 100)
    assert rows == [] and position is None
