"""One contract for every store implementation (SQLite always; Cassandra joins this list
with its own issue)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest

from lineage_faust.identity import sort_key
from lineage_faust.model import ValidEvent, parse_event
from lineage_faust.runstate import RunUpdate, fold
from lineage_faust.store import InvalidCursor, Store, StoredEvent, open_store
from lineage_faust.store.base import DeadLetter, NonRunEvent, status_from_state
from lineage_faust.store.sqlite import SQLiteStore

from .olclient import dataset_event, job_event

BASE = datetime(2026, 11, 21, 10, 0, 0, tzinfo=UTC)


def make_events(run_id: str, n: int, *, per_ms: int = 3) -> list[StoredEvent]:
    """n events of one run; several share each millisecond (ids must still differ)."""
    events = []
    for i in range(n):
        at = BASE + timedelta(milliseconds=i // per_ms)
        raw = orjson.dumps(
            {
                "eventTime": at.isoformat(),
                "eventType": "RUNNING",
                "seq": i,
                "producer": "https://example.com/p",
                "run": {"runId": run_id},
                "job": {"namespace": "ns", "name": "job"},
            }
        )
        valid = parse_event(raw, 1 << 20)
        assert isinstance(valid, ValidEvent)
        events.append(StoredEvent.from_valid(valid))
    return events


@pytest.fixture(params=["sqlite"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    s = open_store(f"sqlite:///{tmp_path / 'contract.db'}")
    await s.open()
    yield s
    await s.close()


async def test_event_writes_are_idempotent(store: Store) -> None:
    events = make_events("run-a", 20)
    await store.write_events(events)
    await store.write_events(events[5:15])
    await store.write_events(events)
    assert await store.count_events("run-a") == 20
    page = await store.get_events("run-a", 1000)
    assert sorted(e.event_id for e in page.events) == sorted(e.event_id for e in events)


@pytest.mark.parametrize("page_size", [1, 7, 250])
async def test_paging_returns_each_event_once_newest_first(store: Store, page_size: int) -> None:
    events = make_events("run-paged", 1000)
    await store.write_events(events)
    await store.write_events(make_events("other-run", 10))
    seen: list[StoredEvent] = []
    cursor = None
    pages = 0
    while True:
        page = await store.get_events("run-paged", page_size, cursor)
        assert len(page.events) <= page_size
        seen.extend(page.events)
        pages += 1
        cursor = page.next_cursor
        if cursor is None:
            break
    assert len(seen) == 1000
    assert len({e.event_id for e in seen}) == 1000
    times = [e.event_id.time for e in seen]
    assert times == sorted(times, reverse=True)
    assert pages == -(-1000 // page_size)  # no empty trailing page
    assert {e.run_id for e in seen} == {"run-paged"}


async def test_event_round_trip_is_verbatim(store: Store) -> None:
    [event] = make_events("run-b", 1)
    await store.write_events([event])
    got = await store.get_event("run-b", event.event_id)
    assert got == event
    assert await store.get_event("run-b", uuid.uuid1()) is None
    assert await store.get_event("no-such-run", event.event_id) is None


async def test_unknown_run_gives_an_empty_page(store: Store) -> None:
    page = await store.get_events("never-seen", 25)
    assert page.events == [] and page.next_cursor is None
    assert await store.get_run_status("never-seen") is None
    assert await store.count_events("never-seen") == 0


async def test_bad_or_foreign_cursors_are_rejected(store: Store) -> None:
    await store.write_events(make_events("run-c", 5))
    await store.write_events(make_events("run-d", 5))
    page = await store.get_events("run-c", 2)
    assert page.next_cursor
    for bad in ("!!!", "AAAA", page.next_cursor[:-3], page.next_cursor + "AA"):
        with pytest.raises(InvalidCursor):
            await store.get_events("run-c", 2, bad)
    with pytest.raises(InvalidCursor):
        await store.get_events("run-d", 2, page.next_cursor)


async def test_run_status_round_trip_and_upsert(store: Store) -> None:
    def upd(kind: str, t: int, **kw: object) -> RunUpdate:
        return RunUpdate(
            event_id=f"e{t}",
            run_id="run-s",
            event_type=kind,
            ticks=t * 10_000_000,
            namespace="ns",
            job="job",
            **kw,
        )

    now = datetime.now(UTC).replace(microsecond=0)
    running = fold([upd("START", 1_700_000_000, parent_run_id="dag", root_run_id="dag")])
    await store.write_run_statuses([status_from_state(running, now)])
    got = await store.get_run_status("run-s")
    assert got is not None and got.state == "RUNNING" and got.parent_run_id == "dag"
    assert got.start_time == datetime.fromtimestamp(1_700_000_000, UTC)
    done = fold([upd("START", 1_700_000_000), upd("FAIL", 1_700_000_042, error_message="boom")])
    await store.write_run_statuses([status_from_state(done, now)])
    got = await store.get_run_status("run-s")
    assert got == status_from_state(done, now)
    assert got.duration_ms == 42_000 and got.error_message == "boom"
    assert set(await store.get_run_statuses(["run-s", "missing"])) == {"run-s"}


async def test_recent_event_ids_newest_first(store: Store) -> None:
    events = make_events("run-e", 10)
    await store.write_events(events)
    newest = sorted(events, key=lambda e: sort_key(e.event_id), reverse=True)
    assert await store.recent_event_ids("run-e", 3) == [str(e.event_id) for e in newest[:3]]


async def test_non_run_events_and_dead_letters(store: Store) -> None:
    job, dataset = (parse_event(job_event("j"), 1 << 20), parse_event(dataset_event("d"), 1 << 20))
    rows = [NonRunEvent.from_valid(job), NonRunEvent.from_valid(dataset)]  # type: ignore[arg-type]
    await store.write_non_run_events(rows)
    await store.write_non_run_events(rows)
    assert await store.get_non_run_events("tests", "j", 10) == [rows[0]]
    assert await store.get_non_run_events("db", "d", 10) == [rows[1]]
    letter = DeadLetter(
        "t",
        0,
        7,
        "not_json",
        "not JSON: ...",
        None,
        datetime.now(UTC).replace(microsecond=0),
        b"k",
        b"\xffgarbage",
    )
    await store.write_dead_letters([letter])
    await store.write_dead_letters([letter])
    assert await store.get_dead_letters(10) == [letter]


async def test_health_checks_for_real(store: Store, tmp_path: Path) -> None:
    await store.health()
    if isinstance(store, SQLiteStore):
        broken = SQLiteStore(tmp_path / "missing-dir" / "x.db")
        with pytest.raises(Exception, match="not open"):
            await broken.health()


async def test_sqlite_reader_sees_writer_commits(tmp_path: Path) -> None:
    """The API (reader) and worker (writer) are separate connections on one WAL file."""
    writer = SQLiteStore(tmp_path / "shared.db")
    reader = SQLiteStore(tmp_path / "shared.db")
    await writer.open()
    await reader.open()
    try:
        for i in range(5):
            await writer.write_events(make_events(f"run-{i}", 3))
            assert await reader.count_events(f"run-{i}") == 3
    finally:
        await writer.close()
        await reader.close()
