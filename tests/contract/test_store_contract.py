"""One contract for every store implementation: SQLite always, Cassandra whenever
LINEAGE_CASSANDRA_HOSTS names a cluster (each test on a keyspace of its own)."""

from __future__ import annotations

import asyncio
import dataclasses
import sqlite3
import threading
import uuid
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
import zstandard

from lineage_faust.domain import incidents as lifecycle
from lineage_faust.domain.alerting import Alert, alert_id
from lineage_faust.domain.datasets import DatasetIO
from lineage_faust.domain.freshness import Lapse, LastWrite
from lineage_faust.domain.identity import sort_key
from lineage_faust.domain.model import ValidEvent, parse_event
from lineage_faust.domain.records import DeadLetter, NonRunEvent, status_from_state
from lineage_faust.domain.runstate import RunUpdate, fold
from lineage_faust.store import (
    InvalidCursor,
    RunQuery,
    SchemaError,
    Store,
    StoredEvent,
    open_store,
)
from lineage_faust.store.dataset_history import HISTORY_SCAN, last_good_write
from lineage_faust.store.queries import AlertQuery, IncidentQuery, LatestRun
from lineage_faust.store.sqlite.codecs import READERS
from lineage_faust.store.sqlite.store import SQLiteStore
from tests.support.cassandra import STORE_KINDS, cassandra_url, drop_keyspace, new_keyspace
from tests.support.olclient import dataset_event, job_event
from tests.support.runs_data import T0, expected, run_status, sixty_runs

StoreFactory = Callable[..., Awaitable[Store]]

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


@pytest.fixture(params=STORE_KINDS)
async def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[StoreFactory]:
    """Open fresh, empty stores of the kind under test (a new file / a new keyspace)."""
    opened: list[Store] = []
    keyspaces: list[str] = []

    async def make(retention_s: int | None = None) -> Store:
        if request.param == "sqlite":
            url = f"sqlite:///{tmp_path / f'contract-{len(opened)}.db'}"
        else:
            keyspaces.append(new_keyspace())
            url = cassandra_url(keyspaces[-1])
        store = open_store(url, retention_s=retention_s)
        await store.open()
        opened.append(store)
        return store

    yield make
    for store in opened:
        await store.close()
    for keyspace in keyspaces:
        await asyncio.to_thread(drop_keyspace, keyspace)


@pytest.fixture
async def store(make_store: StoreFactory) -> Store:
    return await make_store()


async def test_event_writes_are_idempotent_and_say_what_was_new(store: Store) -> None:
    events = make_events("run-a", 20)
    assert await store.write_events(events[:10]) == 10
    assert await store.write_events(events[5:15]) == 5  # 5..9 were there
    assert await store.write_events(events + events[:3]) == 5  # repeats within a batch too
    assert await store.write_events(events) == 0
    assert await store.count_events("run-a") == 20
    page = await store.get_events("run-a", 1000)
    assert sorted(e.event_id for e in page.events) == sorted(e.event_id for e in events)


async def test_overlapping_writes_of_one_event_count_it_as_new_once(store: Store) -> None:
    """Two batches in flight that carry the same events (a redelivery): the accounting is
    exact, as the rows are."""
    events = make_events("run-overlap", 30)
    for _ in range(3):
        counts = await asyncio.gather(
            store.write_events(events[:20]),
            store.write_events(events[10:]),
            store.write_events(events),
        )
        assert sum(counts) == (30 if _ == 0 else 0), counts
    assert await store.count_events("run-overlap") == 30


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


async def test_events_packed_before_the_store_read_back_as_their_text(store: Store) -> None:
    """Triage packs run events' text with the store's own ``pack_text`` (off the writer):
    written so, and mixed with unpacked ones, they read back verbatim."""
    events = make_events("run-packed", 4)
    pack = store.pack_text
    packed = [
        StoredEvent.from_valid(parse_event(e.event.encode(), 1 << 20), pack)  # type: ignore[arg-type]
        for e in events[:2]
    ]
    if pack is not None:
        assert all(p.packed == pack(p.event) for p in packed)
    assert packed == events[:2]  # the packed form is not part of the event's identity
    assert await store.write_events([*packed, *events[2:]]) == 4
    page = await store.get_events("run-packed", 10)
    assert {e.event_id: e for e in page.events} == {e.event_id: e for e in events}
    assert page.events[0].packed is None  # what is read back is the text


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


async def test_non_run_event_writes_say_what_was_new(store: Store) -> None:
    job = NonRunEvent.from_valid(parse_event(job_event("acct-job"), 1 << 20))  # type: ignore[arg-type]
    assert await store.write_non_run_events([job, job]) == 1
    assert await store.write_non_run_events([job]) == 0


async def test_non_run_events_packed_before_the_store_read_back_as_their_text(
    store: Store,
) -> None:
    job = parse_event(job_event("packed-job"), 1 << 20)
    packed = NonRunEvent.from_valid(job, store.pack_text)  # type: ignore[arg-type]
    if store.pack_text is not None:
        assert packed.packed == store.pack_text(packed.event)
    assert await store.write_non_run_events([packed]) == 1
    [got] = await store.get_non_run_events("tests", "packed-job", 10)
    assert got == NonRunEvent.from_valid(job) and got.event == packed.event  # type: ignore[arg-type]


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


async def walk_pages(
    fetch: Callable[[str | None], Awaitable[Any]],
    limit: int,
    ids: Callable[[Any], list[str]] = lambda page: [r.run_id for r in page.runs],
) -> list[str]:
    """Every item of every page, in order (each page checked against ``limit``)."""
    seen: list[str] = []
    cursor = None
    for _ in range(1000):
        page = await fetch(cursor)
        found = ids(page)
        assert len(found) <= limit
        seen.extend(found)
        cursor = page.next_cursor
        if cursor is None:
            return seen
    raise AssertionError("the pages never ended")


async def walk(store: Store, query: RunQuery, limit: int) -> list[str]:
    return await walk_pages(lambda cursor: store.list_runs(query, limit, cursor), limit)


@pytest.mark.parametrize("limit", [1, 7, 100])
async def test_list_runs_walks_every_page_once(store: Store, limit: int) -> None:
    runs = sixty_runs("ns-list")
    await store.write_run_statuses(runs)
    await store.write_run_statuses(sixty_runs("ns-other"))  # must never leak in
    queries = [
        RunQuery(namespace="ns-list"),
        RunQuery(state="FAIL", namespace="ns-list"),
        RunQuery(state="RUNNING", namespace="ns-list"),
        RunQuery(namespace="ns-list", job="job-1"),
        RunQuery(state="COMPLETE", namespace="ns-list", job="job-0"),
        RunQuery(
            state="FAIL",
            namespace="ns-list",
            since=T0 + timedelta(hours=3),
            until=T0 + timedelta(hours=9),
        ),
        RunQuery(namespace="ns-list", since=T0 + timedelta(hours=10)),
    ]
    for query in queries:
        want = expected(runs, query)
        assert want, query
        assert await walk(store, query, limit) == want, query


async def test_list_runs_follows_state_changes(store: Store) -> None:
    start = T0 + timedelta(minutes=1)
    running = run_status("moving", "RUNNING", namespace="ns-move", job="j", start=start)
    await store.write_run_statuses([running])
    running_q = RunQuery(state="RUNNING", namespace="ns-move")
    failed_q = RunQuery(state="FAIL", namespace="ns-move")
    assert await walk(store, running_q, 10) == ["moving"]
    failed = run_status(
        "moving", "FAIL", namespace="ns-move", job="j", start=start, end=start + timedelta(hours=2)
    )
    await store.write_run_statuses([failed], {"moving": running})
    assert await walk(store, running_q, 10) == []
    assert await walk(store, failed_q, 10) == ["moving"]
    # Without the previous status (a lost index delete) the listing is still right.
    other = run_status("lost", "RUNNING", namespace="ns-move", job="j", start=start)
    await store.write_run_statuses([other])
    done = run_status(
        "lost", "COMPLETE", namespace="ns-move", job="j", start=start, end=start + timedelta(1)
    )
    await store.write_run_statuses([done])
    assert await walk(store, running_q, 10) == []
    assert await walk(store, RunQuery(namespace="ns-move"), 10) == ["lost", "moving"]


async def test_list_runs_refuses_foreign_cursors(store: Store) -> None:
    await store.write_run_statuses(sixty_runs("ns-cur"))
    page = await store.list_runs(RunQuery(namespace="ns-cur"), 5)
    assert page.next_cursor
    with pytest.raises(InvalidCursor):
        await store.list_runs(RunQuery(namespace="ns-cur", state="FAIL"), 5, page.next_cursor)
    with pytest.raises(InvalidCursor):
        await store.list_runs(RunQuery(namespace="ns-cur"), 5, page.next_cursor[:-2])


async def walk_children(store: Store, run_id: str, limit: int) -> list[str]:
    return await walk_pages(lambda cursor: store.list_children(run_id, limit, cursor), limit)


@pytest.mark.parametrize("limit", [1, 4, 100])
async def test_children_of_a_run_walk_every_page_once(store: Store, limit: int) -> None:
    start = T0 + timedelta(minutes=3)
    tasks = [
        dataclasses.replace(
            run_status(
                f"task-{i:02d}",
                "COMPLETE",
                namespace="ns-kids",
                job=f"dag.t{i}",
                start=start,
                end=start + timedelta(seconds=i + 1),
            ),
            parent_run_id="dag-run",
            root_run_id="dag-run",
        )
        for i in range(9)
    ]
    other = dataclasses.replace(
        run_status("stranger", "RUNNING", namespace="ns-kids", job="x", start=start),
        parent_run_id="another-dag-run",
    )
    await store.write_run_statuses([*tasks, other])
    assert await walk_children(store, "dag-run", limit) == [t.run_id for t in tasks]
    assert await walk_children(store, "task-00", limit) == []
    # A child whose parent changes (the fold learnt it later) leaves its old parent's list.
    moved = dataclasses.replace(tasks[0], parent_run_id="another-dag-run")
    await store.write_run_statuses([moved], {moved.run_id: tasks[0]})
    assert await walk_children(store, "dag-run", limit) == [t.run_id for t in tasks[1:]]
    assert await walk_children(store, "another-dag-run", limit) == ["stranger", "task-00"]
    page = await store.list_children("dag-run", 2)
    assert page.next_cursor
    with pytest.raises(InvalidCursor):
        await store.list_children("another-dag-run", 2, page.next_cursor)


async def test_children_come_by_start_then_run_id_with_their_tries(store: Store) -> None:
    def child(run_id: str, minutes: int, **changes: Any):
        start = T0 + timedelta(minutes=minutes)
        status = run_status(run_id, "COMPLETE", namespace="ns-start", job=run_id, start=start)
        return dataclasses.replace(status, parent_run_id="dag-s", **changes)

    no_start = dataclasses.replace(child("c-first-event", 2), start_time=None)
    kids = [
        child("c-z", 1),
        child("c-late", 9),
        child("c-a", 5, try_number=1, max_tries=2, state="FAIL"),
        child("c-b", 5, try_number=2, max_tries=2),
        no_start,  # no START seen: its first event places it
    ]
    await store.write_run_statuses(kids)
    want = ["c-z", "c-first-event", "c-a", "c-b", "c-late"]
    for limit in (1, 2, 10):
        assert await walk_children(store, "dag-s", limit) == want
    # a START that arrives late moves the child
    moved = child("c-late", 0)
    await store.write_run_statuses([moved], {"c-late": kids[1]})
    assert await walk_children(store, "dag-s", 2) == ["c-late", *want[:-1]]
    page = await store.list_children("dag-s", 10)
    tries = {r.run_id: (r.try_number, r.max_tries, r.retried) for r in page.runs}
    assert tries["c-a"] == (1, 2, True) and tries["c-b"] == (2, 2, False)
    assert tries["c-z"] == (None, None, False)


async def test_the_first_claim_of_an_incident_holds_it(store: Store) -> None:
    assert await store.claim_incidents([]) == {}
    held = await store.claim_incidents([("inc-1", "alert-a"), ("inc-1", "alert-b")])
    assert held == {"inc-1": "alert-a"}
    # claimed again, by anyone, from several tasks at once: the first holder stands
    results = await asyncio.gather(
        *(
            store.claim_incidents([("inc-1", f"alert-{i}"), ("inc-2", f"alert-{i}")])
            for i in range(5)
        )
    )
    assert all(r["inc-1"] == "alert-a" for r in results)
    assert len({r["inc-2"] for r in results}) == 1


async def test_an_incident_lists_its_alerts_oldest_first(store: Store) -> None:
    page = dataclasses.replace(make_alert("run-i1", "failed", "critical", BASE), incident_id="inc")
    joined = dataclasses.replace(
        make_alert("run-i2", "failed", "critical", BASE + timedelta(seconds=3)),
        incident_id="inc",
        paged=False,
        paged_by=page.alert_id,
    )
    alone = make_alert("run-i3", "stuck", "warning", BASE + timedelta(seconds=1))
    await store.record_alerts([joined, alone, page])
    assert await store.incident_alerts("inc", 10) == [page, joined]
    assert await store.incident_alerts(alone.alert_id, 10) == [alone]
    assert await store.incident_alerts("nothing", 10) == []


async def test_open_lapses_and_the_datasets_written(store: Store) -> None:
    def io(name: str, direction: str, run_id: str) -> DatasetIO:
        return DatasetIO("pg://db", name, direction, run_id, "etl", "load", BASE)

    await store.write_dataset_io(
        [
            io("shop.orders", "output", "r1"),
            io("shop.raw", "input", "r1"),
            io("a.b", "output", "r2"),
        ]
    )
    await store.write_dataset_io([io("shop.orders", "output", "r3")])  # written again
    assert await store.written_datasets() == [("pg://db", "a.b"), ("pg://db", "shop.orders")]
    write = LastWrite("pg://db", "shop.orders", BASE, "r1", "etl", "load")
    lapse = Lapse(write, 3600.0, BASE + timedelta(hours=2))
    assert await store.open_lapses() == []
    await store.open_lapse(lapse)
    later = Lapse(dataclasses.replace(write, run_id="r3"), 60.0, BASE + timedelta(hours=3))
    await store.open_lapse(later)  # replaces the dataset's lapse
    other = Lapse(dataclasses.replace(write, name="a.b"), 60.0, BASE)
    await store.open_lapse(other)
    assert sorted(await store.open_lapses(), key=lambda x: x.write.name) == [other, later]
    await store.close_lapse("pg://db", "shop.orders")
    await store.close_lapse("pg://db", "never.stale")  # closing what is not open: nothing
    assert await store.open_lapses() == [other]


def make_alert(run_id: str, kind: str, severity: str, raised_at: datetime) -> Alert:
    return Alert(
        alert_id=alert_id(run_id, kind),
        kind=kind,
        severity=severity,
        paged=severity != "info",
        run_id=run_id,
        namespace="ns-alerts",
        job="job",
        state="FAIL",
        raised_at=raised_at,
        error_message="boom",
        stack_trace="Traceback\n  line 1",
        started_at=raised_at - timedelta(minutes=5),
        ended_at=raised_at,
    )


async def test_alerts_are_kept_once_and_published_once(store: Store) -> None:
    first = make_alert("run-a", "failed", "critical", BASE)
    other = make_alert("run-b", "stuck", "warning", BASE + timedelta(seconds=1))
    assert await store.record_alerts([first, other]) == [first, other]
    # raised again later (a redelivery): the first record stands and is still unpublished
    again = dataclasses.replace(first, raised_at=BASE + timedelta(hours=1))
    assert await store.record_alerts([again]) == [first]
    await store.mark_alerts_published([first.alert_id])
    assert await store.record_alerts([again, other]) == [other]
    await store.mark_alerts_published([other.alert_id])
    assert await store.record_alerts([again, other]) == []
    page = await store.list_alerts(AlertQuery(), 10)
    assert page.alerts == [other, first] and page.next_cursor is None


@pytest.mark.parametrize("limit", [1, 4, 100])
async def test_alert_listing_walks_every_page_once(store: Store, limit: int) -> None:
    severities = ("info", "warning", "critical")
    alerts = [
        make_alert(f"run-{i:02d}", "failed", severities[i % 3], BASE + timedelta(hours=i * 5))
        for i in range(12)  # 55 hours: several day partitions
    ]
    await store.record_alerts(alerts)
    newest_first = sorted(alerts, key=lambda a: a.raised_at, reverse=True)
    cases = [
        (AlertQuery(), newest_first),
        (AlertQuery(min_severity="warning"), [a for a in newest_first if a.severity != "info"]),
        (
            AlertQuery(min_severity="critical"),
            [a for a in newest_first if a.severity == "critical"],
        ),
        (
            AlertQuery(since=BASE + timedelta(hours=20)),
            [a for a in newest_first if a.raised_at >= BASE + timedelta(hours=20)],
        ),
    ]
    for filters, want in cases:
        got = await walk_pages(
            lambda cursor, q=filters: store.list_alerts(q, limit, cursor),
            limit,
            lambda page: [a.alert_id for a in page.alerts],
        )
        assert got == [a.alert_id for a in want], filters
    page = await store.list_alerts(AlertQuery(), 2)
    assert page.next_cursor
    with pytest.raises(InvalidCursor):
        await store.list_alerts(AlertQuery(min_severity="critical"), 2, page.next_cursor)


async def test_retention_expires_every_kind_of_row(make_store: StoreFactory) -> None:
    store = await make_store(retention_s=2)
    events = make_events("run-ttl", 3)
    await store.write_events(events)
    status = run_status("run-ttl", "RUNNING", namespace="ns-ttl", job="j", start=T0)
    await store.write_run_statuses([status])
    job = parse_event(job_event("ttl-job"), 1 << 20)
    await store.write_non_run_events([NonRunEvent.from_valid(job)])  # type: ignore[arg-type]
    now = datetime.now(UTC).replace(microsecond=0)
    await store.write_dead_letters([DeadLetter("t", 0, 1, "not_json", "x", None, now, None, b"x")])
    assert await store.count_events("run-ttl") == 3
    assert await store.get_run_status("run-ttl") is not None
    assert await walk(store, RunQuery(namespace="ns-ttl"), 10) == ["run-ttl"]
    await asyncio.sleep(3.5)
    assert await store.count_events("run-ttl") == 0
    assert (await store.get_events("run-ttl", 10)).events == []
    assert await store.get_run_status("run-ttl") is None
    assert await walk(store, RunQuery(namespace="ns-ttl"), 10) == []
    assert await store.get_non_run_events("tests", "ttl-job", 10) == []
    assert await store.get_dead_letters(10) == []


async def test_a_newer_schema_is_refused(make_store: StoreFactory, tmp_path: Path) -> None:
    store = await make_store()
    if isinstance(store, SQLiteStore):
        await store._run(
            lambda conn: conn.execute("UPDATE meta SET value='99' WHERE key='schema_version'")
        )
    else:
        ks = store.options.keyspace  # type: ignore[attr-defined]
        await asyncio.to_thread(
            store._session.execute,  # type: ignore[attr-defined]
            f"INSERT INTO {ks}.schema_meta (name, value) VALUES ('schema_version', '99')",
        )
    await store.close()
    with pytest.raises(SchemaError, match="newer than this code"):
        await store.open()


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


async def test_sqlite_reads_run_side_by_side(tmp_path: Path) -> None:
    """Concurrent reads (the API's clients) each get a thread and connection of their own:
    a lookup waiting on the disk does not hold up the others."""
    store = SQLiteStore(tmp_path / "lineage.db")
    await store.open()
    together = threading.Barrier(READERS, timeout=10)

    def meet(conn: sqlite3.Connection) -> sqlite3.Connection:  # once READERS are in at once
        conn.execute("SELECT count(*) FROM events_by_run").fetchone()
        together.wait()
        return conn

    try:
        await store.write_events(make_events("run-side", 2))
        connections = await asyncio.gather(*(store._read(meet) for _ in range(READERS)))
        assert len({id(c) for c in connections}) == READERS
        assert await store.count_events("run-side") == 2
    finally:
        await store.close()
    for conn in connections:  # closed with the store
        with pytest.raises(sqlite3.ProgrammingError):
            conn.execute("SELECT 1")


async def test_sqlite_keeps_event_text_compressed_and_reads_older_rows(tmp_path: Path) -> None:
    """Event text is stored zstd-compressed; rows of earlier versions (plain TEXT, zlib)
    still read as they were."""
    store = SQLiteStore(tmp_path / "lineage.db")
    await store.open()
    try:
        plain, deflated, new = make_events("run-mixed", 3)
        # rows written by earlier versions: the same rows, their event as plain text / zlib
        await store.write_events([plain, deflated])
        with sqlite3.connect(tmp_path / "lineage.db") as conn:
            conn.execute(
                "UPDATE events_by_run SET event=? WHERE eventId=?",
                (plain.event, str(plain.event_id)),
            )
            conn.execute(
                "UPDATE events_by_run SET event=? WHERE eventId=?",
                (zlib.compress(deflated.event.encode(), 1), str(deflated.event_id)),
            )
        await store.write_events([new])
        with sqlite3.connect(tmp_path / "lineage.db") as conn:
            kinds = dict(conn.execute("SELECT eventId, typeof(event) FROM events_by_run"))
            packed = conn.execute(
                "SELECT event FROM events_by_run WHERE eventId=?", (str(new.event_id),)
            ).fetchone()[0]
        assert kinds == {
            str(plain.event_id): "text",
            str(deflated.event_id): "blob",
            str(new.event_id): "blob",
        }
        assert zstandard.ZstdDecompressor().decompress(packed).decode() == new.event
        page = await store.get_events("run-mixed", 10)
        assert {e.event_id: e for e in page.events} == {
            e.event_id: e for e in (plain, deflated, new)
        }
        for event in (plain, deflated, new):
            assert await store.get_event("run-mixed", event.event_id) == event
    finally:
        await store.close()


def io(ds: str, direction: str, run: str | None, job: str, minutes: int, **stats: int) -> DatasetIO:
    return DatasetIO(
        "warehouse", ds, direction, run, "ns-ds", job, BASE + timedelta(minutes=minutes), **stats
    )


async def test_dataset_io_round_trip_and_walk(store: Store) -> None:
    rows = []
    for i in range(9):  # the loader writes orders every hour; the report reads it
        rows.append(io("orders", "output", f"load-{i}", "loader", 60 * i))
        rows.append(io("orders", "input", f"report-{i}", "report", 60 * i + 30))
    rows.append(io("orders", "output", "load-3", "loader", 185, row_count=42, size_bytes=9000))
    rows.append(io("orders", "input", None, "auditor", 999))  # a JobEvent: no run
    await store.write_dataset_io(rows)
    await store.write_dataset_io(rows)  # idempotent
    statuses = [
        run_status(
            f"load-{i}",
            "COMPLETE" if i != 8 else "FAIL",
            namespace="ns-ds",
            job="loader",
            start=BASE + timedelta(hours=i),
            end=BASE + timedelta(hours=i, minutes=5),
        )
        for i in range(9)
    ]
    await store.write_run_statuses(statuses)
    for limit in (1, 4, 100):
        got = await walk_pages(
            lambda cursor, n=limit: store.list_dataset_runs("warehouse", "orders", n, cursor),
            limit,
            lambda page: [f"{r.io.run_id}/{r.io.direction}" for r in page.runs],
        )
        want = [f"report-{i}/input" for i in range(9)] + [f"load-{i}/output" for i in range(9)]
        assert sorted(got) == sorted(want) and len(got) == 18, limit
        assert got[0] == "report-8/input"  # newest first
    page = await store.list_dataset_runs("warehouse", "orders", 100)
    load3 = next(r for r in page.runs if r.io.run_id == "load-3")
    assert (load3.io.row_count, load3.io.size_bytes) == (42, 9000)
    assert load3.status is not None and load3.status.state == "COMPLETE"
    assert next(r for r in page.runs if r.io.run_id == "report-1").status is None
    jobs = await store.dataset_jobs("warehouse", "orders")
    assert {(j.name, j.direction) for j in jobs} == {
        ("loader", "output"),
        ("report", "input"),
        ("auditor", "input"),
    }
    assert jobs[0].name == "auditor"  # most recently seen first
    assert [(d.name, d.direction) for d in await store.job_datasets("ns-ds", "loader")] == [
        ("orders", "output")
    ]
    assert [(d.name, d.direction) for d in await store.run_datasets("load-3")] == [
        ("orders", "output")
    ]
    assert (await store.list_dataset_runs("warehouse", "nothing", 10)).runs == []


async def test_lineage_reads_of_a_level_agree_with_one_node_reads(store: Store) -> None:
    rows = [io("orders", "output", f"load-{i}", "loader", 60 * i) for i in range(9)]
    rows += [io("orders", "input", f"report-{i}", "report", 60 * i + 30) for i in range(9)]
    rows += [io("summary", "output", f"report-{i}", "report", 60 * i + 31) for i in range(9)]
    await store.write_dataset_io(rows)
    await store.write_run_statuses(
        [
            run_status(
                f"load-{i}",
                "COMPLETE" if i < 7 else "FAIL",
                namespace="ns-ds",
                job="loader",
                start=BASE + timedelta(hours=i),
                end=BASE + timedelta(hours=i, minutes=5),
            )
            for i in range(9)
        ]
    )
    jobs = [("ns-ds", "loader"), ("ns-ds", "report"), ("ns-ds", "nobody"), ("ns-ds", "loader")]
    datasets = [("warehouse", "orders"), ("warehouse", "summary"), ("warehouse", "nothing")]

    of_jobs, of_datasets = await store.links_of(jobs, datasets)
    assert {k: sorted(v) for k, v in of_jobs.items()} == {
        k: sorted((x.namespace, x.name, x.direction) for x in await store.job_datasets(*k))
        for k in jobs[:2]
    }
    assert {k: sorted(v) for k, v in of_datasets.items()} == {
        k: sorted((x.namespace, x.name, x.direction) for x in await store.dataset_jobs(*k))
        for k in datasets[:2]
    }
    assert sorted(of_jobs[("ns-ds", "report")]) == [
        ("warehouse", "orders", "input"),
        ("warehouse", "summary", "output"),
    ]

    latest = await store.latest_runs(jobs)
    assert set(latest) == {("ns-ds", "loader")}  # the report's runs have no status here
    assert latest[("ns-ds", "loader")] == LatestRun(
        "load-8", "FAIL", BASE + timedelta(hours=8, minutes=5)
    )

    writes = await store.last_good_writes(datasets)
    assert writes == {("warehouse", "orders"): await last_good_write(store, "warehouse", "orders")}
    good = writes[("warehouse", "orders")]
    assert (good.run_id, good.job, good.at) == (
        "load-6",
        "loader",
        BASE + timedelta(hours=6, minutes=5),
    )
    assert await store.links_of([], []) == ({}, {})
    assert await store.latest_runs([]) == {} and await store.last_good_writes([]) == {}


async def test_a_good_write_older_than_the_scanned_history_is_not_found(store: Store) -> None:
    # one good write, then more failed ones than a dataset's history scan reads
    failed = HISTORY_SCAN + 5
    rows = [io("events", "output", f"w-{i}", "writer", i) for i in range(failed + 1)]
    await store.write_dataset_io(rows)
    await store.write_run_statuses(
        [
            run_status(
                f"w-{i}",
                "COMPLETE" if i == 0 else "FAIL",
                namespace="ns-ds",
                job="writer",
                start=BASE + timedelta(minutes=i),
                end=BASE + timedelta(minutes=i, seconds=30),
            )
            for i in range(failed + 1)
        ]
    )
    key = ("warehouse", "events")
    assert await store.last_good_writes([key]) == {}
    assert await last_good_write(store, *key) is None
    await store.write_run_statuses(  # the newest write within the scan succeeds after all
        [
            run_status(
                f"w-{failed}",
                "COMPLETE",
                namespace="ns-ds",
                job="writer",
                start=BASE + timedelta(minutes=failed),
                end=BASE + timedelta(minutes=failed, seconds=30),
            )
        ]
    )
    assert (await store.last_good_writes([key]))[key].run_id == f"w-{failed}"


async def test_a_version_5_sqlite_store_gains_tries_and_incidents_in_place(tmp_path: Path) -> None:
    path = tmp_path / "v5.db"
    with sqlite3.connect(path) as conn:  # the tables version 5 changes, as it left them
        conn.executescript(
            """
            CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
            INSERT INTO meta VALUES ('schema_version', '5');
            CREATE TABLE run_status (runId TEXT PRIMARY KEY, state TEXT NOT NULL,
                namespace TEXT NOT NULL, jobName TEXT NOT NULL, parentRunId TEXT, rootRunId TEXT,
                firstEventTime INTEGER, lastEventTime INTEGER, startTime INTEGER,
                endTime INTEGER, durationMs INTEGER, eventCount INTEGER NOT NULL,
                lastEventType TEXT, errorMessage TEXT, nominalStartTime TEXT,
                processingType TEXT, updatedAt INTEGER NOT NULL, runTime INTEGER NOT NULL,
                stateTime INTEGER NOT NULL, expiresAt INTEGER);
            INSERT INTO run_status VALUES ('old-run', 'COMPLETE', 'ns', 'job', 'p', 'p',
                1, 2, 1, 2, 1, 2, 'COMPLETE', NULL, NULL, NULL, 3, 1, 2, NULL);
            CREATE TABLE alerts (alertId TEXT PRIMARY KEY, raisedAt INTEGER NOT NULL,
                severity TEXT NOT NULL, alert TEXT NOT NULL,
                published INTEGER NOT NULL DEFAULT 0, expiresAt INTEGER);
            """
        )
        old = make_alert("old-run", "failed", "critical", BASE)
        text = orjson.dumps({**old.to_dict(), "incidentId": None}).decode()
        conn.execute(
            "INSERT INTO alerts (alertId, raisedAt, severity, alert) VALUES (?, ?, ?, ?)",
            (old.alert_id, 1, "critical", text),
        )
    store = SQLiteStore(path)
    await store.open()
    try:
        [child] = (await store.list_children("p", 10)).runs
        assert child.run_id == "old-run" and child.try_number is None
        assert await store.incident_alerts(old.alert_id, 10) == [old]  # its own incident
        retry = dataclasses.replace(child, try_number=1, max_tries=3, state="FAIL")
        await store.write_run_statuses([retry])
        assert (await store.get_run_status("old-run")).retried
    finally:
        await store.close()


# ---- incidents' lifecycles ------------------------------------------------------------------
def failure(run_id: str, job: str, at: datetime, namespace: str = "etl") -> Alert:
    alert = dataclasses.replace(make_alert(run_id, "failed", "critical", at), job=job)
    return dataclasses.replace(alert, namespace=namespace, ended_at=at)


async def test_an_incident_is_written_only_over_the_version_read(store: Store) -> None:
    page = failure("run-l1", "load", BASE)
    incident = lifecycle.open_incident(page, "inc-l")
    assert await store.get_incidents(["inc-l"]) == {}
    assert await store.save_incident(incident) and incident.version == 1
    stale = lifecycle.Incident.from_dict(incident.to_dict())  # a reader of version 1
    stale.version = 1
    assert await store.incidents_of_subjects(["job:etl/load", "job:etl/x"]) == {
        "job:etl/load": "inc-l"
    }

    lifecycle.acknowledge(incident, "ana", BASE + timedelta(minutes=1), "looking")
    assert await store.save_incident(incident) and incident.version == 2
    lifecycle.resolve(stale, "bo", BASE + timedelta(minutes=2))
    assert not await store.save_incident(stale)  # read version 1: lost the race
    assert stale.version == 1
    kept = (await store.get_incidents(["inc-l"]))["inc-l"]
    assert kept.state == "acknowledged" and kept.acknowledged_by == "ana" and kept.version == 2
    assert kept.to_dict() == incident.to_dict()
    # a new incident over one kept: refused too
    assert not await store.save_incident(lifecycle.open_incident(page, "inc-l"))


async def test_racing_writers_apply_their_changes_one_after_the_other(store: Store) -> None:
    incident = lifecycle.open_incident(failure("run-r0", "job-0", BASE), "inc-race")
    assert await store.save_incident(incident)

    async def join(n: int) -> None:
        alert = failure(f"run-r{n}", f"job-{n}", BASE + timedelta(seconds=n))
        while True:  # what the worker and the API do: read, change, write over what was read
            current = (await store.get_incidents(["inc-race"]))["inc-race"]
            if alert.alert_id in current.alert_ids:
                return  # applied by a write whose answer was lost (a retried LWT): once
            if await store.save_incident(lifecycle.join(current, alert)):
                return

    await asyncio.gather(*(join(n) for n in range(1, 9)))
    kept = (await store.get_incidents(["inc-race"]))["inc-race"]
    assert sorted(kept.pending) == sorted(f"job:etl/job-{n}" for n in range(9))
    assert kept.version == 9


async def test_incidents_list_newest_first_by_state_and_job(store: Store) -> None:
    saved = []
    for n in range(12):
        alert = failure(f"run-s{n}", f"job-{n % 3}", BASE + timedelta(hours=n))
        incident = lifecycle.open_incident(alert, f"inc-{n:02d}")
        if n % 4 == 0:
            lifecycle.resolve(incident, "ana", BASE + timedelta(hours=n, minutes=5))
        assert await store.save_incident(incident)
        saved.append(incident)

    async def walk(query: IncidentQuery, limit: int) -> list[str]:
        found, cursor = [], None
        while True:
            page = await store.list_incidents(query, limit, cursor)
            assert len(page.incidents) <= limit
            found += [i.incident_id for i in page.incidents]
            if (cursor := page.next_cursor) is None:
                return found

    newest_first = [i.incident_id for i in reversed(saved)]
    for limit in (1, 5, 100):
        assert await walk(IncidentQuery(), limit) == newest_first
        resolved = await walk(IncidentQuery(state="resolved"), limit)
        assert resolved == ["inc-08", "inc-04", "inc-00"]
        assert await walk(IncidentQuery(job="job-1"), limit) == [
            f"inc-{n:02d}" for n in (10, 7, 4, 1)
        ]
    since = BASE + timedelta(hours=9)
    assert await walk(IncidentQuery(since=since, state="open"), 2) == ["inc-11", "inc-10", "inc-09"]
    assert await walk(IncidentQuery(namespace="elsewhere"), 5) == []
    page = await store.list_incidents(IncidentQuery(), 2)
    with pytest.raises(InvalidCursor):
        await store.list_incidents(IncidentQuery(state="open"), 2, page.next_cursor)
