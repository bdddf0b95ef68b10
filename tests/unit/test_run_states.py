"""track_runs' orchestration without a broker: the live table is a dictionary, publishing a
list, the store a real SQLite file. Folding, alerts once, revival from the store, sweeps."""

from __future__ import annotations

import time
from collections.abc import Iterable
from pathlib import Path

import orjson
import pytest

from lineage_faust.domain.identity import run_partition
from lineage_faust.domain.model import ValidEvent, parse_event
from lineage_faust.domain.runstate import RunState, RunUpdate
from lineage_faust.settings import parse_settings
from lineage_faust.store import open_store
from lineage_faust.worker.run_states import Changes, RunStates
from lineage_faust.worker.state import WorkerState
from tests.support.helpers import SAMPLES

PARTITIONS = 4


class DictTable:
    def __init__(self) -> None:
        self.data: dict[bytes, bytes] = {}

    def read(self, source: object, run_ids: Iterable[str]) -> dict[str, bytes | None]:
        return {r: self.data.get(r.encode()) for r in run_ids}

    def items(self) -> Iterable[tuple[bytes, bytes]]:
        return list(self.data.items())

    async def write(self, changes: Changes) -> None:
        for items in changes.values():
            for key, value in items:
                if value is None:
                    self.data.pop(key, None)
                else:
                    self.data[key] = value


def updates(lines: list[bytes]) -> list[RunUpdate]:
    found = []
    for line in lines:
        event = parse_event(line, 1 << 20)
        assert isinstance(event, ValidEvent)
        found.append(RunUpdate.from_event(event))
    return found


def parts(items: list[RunUpdate]) -> list:
    """One part (message) per owning partition, as ingest forwards them."""
    by_partition: dict[int, list[RunUpdate]] = {}
    for u in items:
        by_partition.setdefault(run_partition(u.run_id, PARTITIONS), []).append(u)
    return [(f"message-{p}", p, us) for p, us in sorted(by_partition.items())]


@pytest.fixture
async def harness(tmp_path: Path):
    settings = parse_settings(
        {
            "LINEAGE_DATA_DIR": str(tmp_path),
            "LINEAGE_PARTITIONS": str(PARTITIONS),
            "LINEAGE_RUN_RETENTION": "60",
            "LINEAGE_ALERT_IDLE": "600",
        }
    )
    store = open_store(settings.store_url)
    await store.open()
    table, published = DictTable(), []

    async def publish(alerts: list[dict], live: list[dict]) -> None:
        published.append(([orjson.loads(a["value"]) for a in alerts], live))

    state = WorkerState(settings, store)
    yield RunStates(state, table, publish), table, published, store, state
    await store.close()


async def test_the_samples_fold_into_states_alerts_once_and_live_changes(harness) -> None:
    runs, table, published, store, state = harness
    items = updates(SAMPLES.read_bytes().splitlines())
    await runs.apply(parts(items))
    run_ids = {u.run_id for u in items}
    statuses = await store.get_run_statuses(list(run_ids))
    assert sorted(s.state for s in statuses.values()).count("FAIL") == 3
    assert len(table.data) == len(run_ids)  # every run in the live table
    alerts = [a for batch, _ in published for a in batch]
    assert sorted(a["kind"] for a in alerts) == ["failed", "failed", "retrying_failure"]
    assert any(live for _, live in published)  # the state changes went to the live topic
    assert state.stats.runs_updated == len(run_ids)

    # the same messages again (a redelivery): nothing new anywhere
    published.clear()
    await runs.apply(parts(items))
    assert published == [] or all(not batch for batch, _ in published)
    assert state.stats.redelivered_updates == len(items)
    assert await store.count_events(items[0].run_id) == 0  # (events are ingest's to store)


async def test_a_run_that_left_the_table_is_rebuilt_from_the_store(harness) -> None:
    runs, table, published, _, state = harness
    items = updates(SAMPLES.read_bytes().splitlines())
    await runs.apply(parts(items))
    failed = next(u for u in items if u.event_type == "FAIL")
    table.data.pop(failed.run_id.encode())  # gone: evicted, or a changelog cut short
    published.clear()
    await runs.apply(parts([failed]))  # a late redelivery of its FAIL event
    assert state.stats.runs_revived == 1
    rebuilt = RunState.from_dict(orjson.loads(table.data[failed.run_id.encode()]))
    assert rebuilt.state == "FAIL" and rebuilt.alerted  # the alert it raised is noted again
    assert all(not batch for batch, _ in published)  # and not published a second time


async def test_sweeps_evict_finished_runs_and_page_a_stuck_one(harness) -> None:
    runs, table, published, _, state = harness
    lines = SAMPLES.read_bytes().splitlines()
    items = updates(lines)
    started = next(u for u in items if u.event_type == "START")
    only_start = [u for u in items if u.run_id == started.run_id and u.event_type == "START"]
    others = [u for u in items if u.run_id != started.run_id]
    await runs.apply(parts(others + only_start))
    partition = run_partition(started.run_id, PARTITIONS)
    finished = [k for k in table.data if run_partition(k.decode(), PARTITIONS) == partition]
    # later: past the retention window and the idle threshold
    real = time.time
    try:
        time.time = lambda: real() + 3600  # type: ignore[assignment]
        await runs.sweep("sweep", partition, {partition})
    finally:
        time.time = real  # type: ignore[assignment]
    assert started.run_id.encode() in table.data  # still running: kept
    assert all(k not in table.data for k in finished if k != started.run_id.encode())
    stuck = [a for batch, _ in published for a in batch if a["kind"] == "stuck"]
    assert [a["runId"] for a in stuck] == [started.run_id]
    assert state.stats.runs_evicted == len(finished) - 1
