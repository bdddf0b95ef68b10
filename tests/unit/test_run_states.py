"""track_runs' orchestration without a broker: the live table is a dictionary, publishing a
list, the store a real SQLite file. Folding, alerts once, revival from the store, sweeps,
incidents (one page per run tree's failure), stale datasets."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest

from lineage_faust.domain import alerting
from lineage_faust.domain.alerting import Grouping, Kind
from lineage_faust.domain.datasets import DatasetIO
from lineage_faust.domain.freshness import parse_expectations
from lineage_faust.domain.identity import run_partition
from lineage_faust.domain.model import ValidEvent, parse_event
from lineage_faust.domain.runstate import RunState, RunUpdate
from lineage_faust.settings import parse_settings
from lineage_faust.store import open_store
from lineage_faust.worker.run_states import APP_HEADER, Changes, RunStates, alert_partition
from lineage_faust.worker.state import WorkerState
from tests.contract.test_store_contract import make_alert
from tests.support.dbt_stream import dbt_stream
from tests.support.helpers import SAMPLES
from tests.support.runs_data import run_status

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


def paged(published: list) -> list[dict]:
    return [a for batch, _ in published for a in batch if a["paged"]]


async def test_a_dag_run_failing_after_its_task_joins_the_tasks_incident(harness) -> None:
    runs, _, published, store, _ = harness
    items = updates(SAMPLES.read_bytes().splitlines())
    task_fail = [u for u in items if u.parent_run_id is not None]
    dag = [u for u in items if u.parent_run_id is None]
    await runs.apply(parts(task_fail))  # the task's final try fails first ...
    await runs.apply(parts(dag))  # ... then its DAG run, because of it
    alerts = [a for batch, _ in published for a in batch]
    assert sorted(a["kind"] for a in alerts) == ["failed", "failed", "retrying_failure"]
    page = [a for a in alerts if a["paged"]]
    assert len(page) == 1 and page[0]["parentRunId"] is not None  # the task paged
    dag_failed = next(u for u in dag if u.event_type == "FAIL")
    dag_alert = next(a for a in alerts if a["runId"] == dag_failed.run_id)
    assert dag_alert["paged"] is False and dag_alert["pagedBy"] == page[0]["alertId"]
    assert dag_alert["incidentId"] == page[0]["incidentId"] != page[0]["alertId"]
    incident = await store.incident_alerts(page[0]["incidentId"], 10)
    assert [a.alert_id for a in incident] == [page[0]["alertId"], dag_alert["alertId"]]

    # redelivered, and rebuilt from the store: nothing pages again
    published.clear()
    await runs.apply(parts(items))
    assert paged(published) == []


async def test_a_dbt_statement_model_and_job_failing_page_once(harness) -> None:
    runs, _, published, _, _ = harness
    events, ids = dbt_stream()
    items = updates(events)
    for item in items:  # one at a time, in order, as a slow stream delivers them
        await runs.apply(parts([item]))
    failed = [a for batch, _ in published for a in batch if a["kind"] == "failed"]
    assert len(failed) == 3  # statement, model, job
    assert len({a["incidentId"] for a in failed}) == 1
    [page] = [a for a in failed if a["paged"]]
    assert page["runId"] == ids["statements"][-1]  # the root failure: the statement


async def test_without_grouping_every_final_failure_pages(harness) -> None:
    runs, _, published, _, state = harness
    state.settings = dataclasses.replace(
        state.settings,
        alert_rules=dataclasses.replace(state.settings.alert_rules, grouping=Grouping.NONE),
    )
    await runs.apply(parts(updates(SAMPLES.read_bytes().splitlines())))
    assert len(paged(published)) == 2
    assert all(a["incidentId"] == a["alertId"] for a in paged(published))


async def test_a_stale_dataset_pages_once_per_lapse_and_recovers(harness) -> None:
    runs, _, published, store, state = harness
    state.settings = dataclasses.replace(
        state.settings,
        dataset_expectations=parse_expectations({"pg://db/shop.*": {"maxAgeSeconds": 3600}}),
    )
    t0 = datetime(2026, 11, 1, 8, 0, tzinfo=UTC)

    async def written(run_id: str, at: datetime, name: str = "shop.orders") -> None:
        status = run_status(run_id, "COMPLETE", namespace="etl", job="load", start=at, end=at)
        await store.write_run_statuses([status])
        io = DatasetIO("pg://db", name, "output", run_id, "etl", "load", at)
        await store.write_dataset_io([io])

    await written("r1", t0)
    await written("r-other", t0, name="other.table")  # no expectation: never judged
    await runs.datasets.sweep(now=t0 + timedelta(minutes=30))
    assert published == []
    for minutes in (61, 90):  # stale; swept again: still the same lapse
        await runs.datasets.sweep(now=t0 + timedelta(minutes=minutes))
    [stale] = [a for batch, _ in published for a in batch]
    assert stale["kind"] == "stale" and stale["paged"] and stale["runId"] == "r1"
    assert (stale["datasetNamespace"], stale["datasetName"]) == ("pg://db", "shop.orders")
    [lapse] = await store.open_lapses()
    assert lapse.write.run_id == "r1" and lapse.max_age_s == 3600

    published.clear()
    await written("r2", t0 + timedelta(minutes=100))
    await runs.datasets.sweep(now=t0 + timedelta(minutes=101))
    fresh, resolved = [a for batch, _ in published for a in batch]
    assert fresh["kind"] == "fresh" and fresh["runId"] == "r2"
    assert fresh["incidentId"] == stale["incidentId"]
    assert await store.open_lapses() == []
    # the lapse's incident resolved by itself: one resolve message, the record says so
    assert resolved["kind"] == "resolved" and resolved["incidentId"] == stale["incidentId"]
    assert resolved["paged"] and resolved["datasetName"] == "shop.orders"
    incident = (await store.get_incidents([stale["incidentId"]]))[stale["incidentId"]]
    assert incident.state == "resolved" and incident.resolved_by == "lineage-faust"
    assert incident.recovered == {"dataset:pg://db/shop.orders": fresh["raisedAt"]}

    published.clear()  # a second lapse: a new page
    await runs.datasets.sweep(now=t0 + timedelta(minutes=100 + 61))
    [again] = [a for batch, _ in published for a in batch]
    assert again["kind"] == "stale" and again["alertId"] != stale["alertId"]


async def test_a_page_is_offered_at_once_and_every_alert_published_in_its_runs_partition(
    harness,
) -> None:
    """The worker that raises a page offers it to the webhooks' queues before publishing
    (nothing waits for a receiver); every alert is published marked with the deployment and
    in its run's partition (the one this worker owns: its notify agent reads it back)."""
    _, table, _, _, state = harness
    offered: list[str] = []
    sent: list[dict] = []

    async def publish(alerts: list[dict], live: list[dict]) -> None:
        assert offered  # offered before the group's publishing
        sent.extend(alerts)

    runs = RunStates(state, table, publish, page=lambda alert: offered.append(alert["alertId"]))
    await runs.apply(parts(updates(SAMPLES.read_bytes().splitlines())))
    paged = [orjson.loads(m["value"]) for m in sent if orjson.loads(m["value"])["paged"]]
    assert paged and offered == [a["alertId"] for a in paged]
    assert len(sent) == 3  # the unpaged ones are published too, offered to nobody
    for message in sent:
        run_id = orjson.loads(message["value"])["runId"]
        assert message["partition"] == run_partition(run_id, PARTITIONS)
        assert message["headers"] == [(APP_HEADER, state.settings.app_id.encode())]


def test_a_dataset_alert_goes_to_the_partition_of_the_worker_that_judges_datasets() -> None:
    """Stale and fresh alerts are raised by partition 0's owner, whatever the run that last
    wrote the dataset: published there, its notify agent reads them back (no second page
    from the worker that owns the writer run's partition)."""
    at = datetime(2026, 11, 1, tzinfo=UTC)
    runs = [f"run-{i}" for i in range(40)]
    assert {run_partition(r, PARTITIONS) for r in runs} != {0}
    for run_id in runs:
        failed = make_alert(run_id, "failed", "critical", at)
        stale = dataclasses.replace(
            failed, kind="stale", dataset_namespace="pg://db", dataset_name="shop.orders"
        )
        assert alert_partition(stale, PARTITIONS) == 0
        assert alert_partition(failed, PARTITIONS) == run_partition(run_id, PARTITIONS)


async def test_a_resolution_whose_write_answer_was_lost_still_sends_its_message(harness) -> None:
    """Cassandra can time out on a lightweight transaction that applied: the retry answers
    'not applied'. The worker reads the incident back, finds its own change, and still sends
    the resolve message, once."""
    runs, _, _, store, _ = harness
    t0 = datetime(2026, 11, 1, 8, 0, tzinfo=UTC)
    failed = RunState(run_id="r-fail", state="FAIL", namespace="etl", job="load")
    page = dataclasses.replace(
        alerting.make_alert(failed, Kind.FAILED, t0.timestamp(), paged=True), ended_at=t0
    )
    [recorded] = await store.record_alerts([page])
    assert await runs.lifecycle.apply([recorded], []) == []
    real_save, calls = store.save_incident, []

    async def save_then_lose_the_answer(incident):
        calls.append(incident.state)
        await real_save(incident)
        return len(calls) > 1  # the first answer is lost

    store.save_incident = save_then_lose_the_answer
    done = [("job:etl/load", t0 + timedelta(minutes=5))]
    [notice] = await runs.lifecycle.apply([], done)
    assert notice.kind == "resolved" and notice.incident_id == page.incident_id
    assert calls == ["resolved"]  # written once, not again over itself
    kept = (await store.get_incidents([page.incident_id]))[page.incident_id]
    assert kept.state == "resolved" and kept.version == 2
    assert await runs.lifecycle.apply([], done) == []  # a redelivery: nothing more
