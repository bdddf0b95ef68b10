"""One page per incident and stale datasets, end to end: a real broker, worker processes
(restarted in between), the API over HTTP, a webhook receiver, the real SQLite store.

The recorded Airflow samples fail one DAG run because of its task's final try; a dbt-shaped
stream fails a statement, its model and its job. Each is one incident: one page each, on the
alerts API and on the webhook, across redelivery and a restart. A dataset with a freshness
expectation pages once when it lapses, recovers when written again, lapses again.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import orjson
import pytest
from openlineage.client.event_v2 import OutputDataset, RunState

from tests.support.dbt_stream import dbt_stream
from tests.support.helpers import SAMPLES, Stack, wait_until
from tests.support.olclient import new_run_id, run_event
from tests.support.receiver import Receiver

pytestmark = pytest.mark.integration

DB = "postgres://db:5432"
EXPECTATIONS = {f"{DB}/shop.public.*": {"maxAgeSeconds": 4}}


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver(failures_per_alert=0) as r:
        yield r


def alerts(api: str) -> list[dict]:
    found, cursor = [], None
    while True:
        params = {"limit": 100, **({"cursor": cursor} if cursor else {})}
        page = httpx.get(f"{api}/api/v1/alerts", params=params, timeout=10).json()
        found += page["alerts"]
        if not (cursor := page["nextCursor"]):
            return found


def write_orders(path: Path) -> Path:
    """A run that writes shop.public.orders successfully, now."""
    run_id, now = new_run_id(), datetime.now(UTC)
    out = [OutputDataset(namespace=DB, name="shop.public.orders")]
    lines = [
        run_event(RunState.START, run_id, "load_orders", at=now, inputs=[], outputs=out),
        run_event(RunState.COMPLETE, run_id, "load_orders", at=now, inputs=[], outputs=out),
    ]
    path.write_bytes(b"\n".join(lines))
    return path


def test_one_page_per_incident_and_stale_datasets_page_once(
    stack: Stack, receiver: Receiver, tmp_path: Path
) -> None:
    stack.extra_env.update(
        LINEAGE_WEBHOOKS=receiver.url,
        LINEAGE_DATASET_EXPECTATIONS=orjson.dumps(EXPECTATIONS).decode(),
        LINEAGE_SWEEP_INTERVAL="0.5",
    )
    dbt_events, dbt_ids = dbt_stream()
    dbt_file = tmp_path / "dbt.jsonl"
    dbt_file.write_bytes(b"\n".join(dbt_events))
    worker = stack.spawn("worker", tag="worker-1")
    stack.start_api()
    api = stack.api_url
    wait_until(lambda: "Worker]: Ready" in worker.log(), 60, "worker ready")
    assert stack.send(SAMPLES, dbt_file).returncode == 0

    failed = wait_until(
        lambda: f if len(f := [a for a in alerts(api) if a["kind"] == "failed"]) == 5 else None,
        60,
        "five failures (a task and its DAG run; a statement, its model, its job)",
    )
    incidents = Counter(a["incidentId"] for a in failed)
    assert sorted(incidents.values()) == [2, 3]
    pages = [a for a in failed if a["paged"]]
    assert len(pages) == 2 and {a["incidentId"] for a in pages} == set(incidents)
    # the task's final try and its DAG run (failed seconds later) reach the worker over two
    # partitions: one of them pages (the task's when both are folded in one group), and the
    # incident's root cause is always the task's try, whose run ended first; dbt's three
    # failures arrive in one burst, over several partitions: one of them pages
    airflow_page = next(a for a in pages if a["namespace"] == "airflow_ol_corpus")
    assert airflow_page["job"] in ("ol_failing_retry.always_fails", "ol_failing_retry")
    airflow = httpx.get(f"{api}/api/v1/incidents/{airflow_page['incidentId']}", timeout=10)
    assert airflow.json()["rootCause"]["job"] == "ol_failing_retry.always_fails"
    dbt_page = next(a for a in pages if a["namespace"] == "dbt://warehouse")
    for joined in (a for a in failed if not a["paged"]):
        assert joined["pagedBy"] in {p["alertId"] for p in pages}
    wait_until(lambda: len(receiver.accepted) == 2, 30, "two webhook posts")
    assert sorted(receiver.accepted_ids()) == sorted(a["alertId"] for a in pages)

    incident = httpx.get(f"{api}/api/v1/incidents/{dbt_page['incidentId']}", timeout=10).json()
    assert incident["page"]["alertId"] == dbt_page["alertId"]
    assert incident["rootCause"]["runId"] == dbt_ids["statements"][-1]  # the failing SQL
    assert [a["job"] for a in incident["alerts"]] == [
        "shop.build.model.orders_1.sql",
        "shop.build.model.orders_1",
        "shop.build",
    ]
    assert httpx.get(f"{api}/api/v1/incidents/nope", timeout=10).status_code == 404

    # a dataset with an expectation: written, lapses, pages once, recovers
    assert stack.send(write_orders(tmp_path / "w1.jsonl")).returncode == 0

    def kinds(kind: str) -> list[dict]:
        return [a for a in alerts(api) if a["kind"] == kind]

    [stale] = wait_until(lambda: kinds("stale") or None, 30, "the dataset lapses")
    assert stale["paged"] and stale["datasetName"] == "shop.public.orders"
    listed = httpx.get(f"{api}/api/v1/datasets", params={"stale": "true"}, timeout=10).json()
    assert [d["name"] for d in listed["datasets"]] == ["shop.public.orders"]
    assert listed["datasets"][0]["ageSeconds"] > 4 and listed["datasets"][0]["maxAgeSeconds"] == 4
    assert listed["datasets"][0]["lastWriterJob"] == "load_orders"
    assert httpx.get(f"{api}/api/v1/datasets", params={"stale": "false"}).status_code == 400
    worker_log_before = worker.log().count("freshness:")
    wait_until(lambda: worker.log().count("pipeline:") >= 1, 30, "a stats line")  # time passes
    assert len(kinds("stale")) == 1  # many sweeps, one lapse, one page
    assert worker_log_before >= 1

    assert stack.send(write_orders(tmp_path / "w2.jsonl")).returncode == 0
    [fresh] = wait_until(lambda: kinds("fresh") or None, 30, "the dataset is fresh again")
    assert fresh["incidentId"] == stale["incidentId"]
    # the lapse's incident resolved by itself: one resolve message at the webhook
    [resolved] = wait_until(lambda: kinds("resolved") or None, 30, "the lapse resolved")
    assert resolved["incidentId"] == stale["incidentId"] and resolved["datasetName"]
    lapse = httpx.get(f"{api}/api/v1/incidents/{stale['incidentId']}", timeout=10).json()
    assert lapse["lifecycle"]["state"] == "resolved"
    assert lapse["lifecycle"]["recovered"] == {
        "dataset:postgres://db:5432/shop.public.orders": fresh["raisedAt"]
    }
    wait_until(lambda: len(kinds("stale")) == 2, 30, "the second lapse")  # not written again

    # redelivered, and after a restart: no incident pages twice
    assert worker.stop() == 0
    restarted = stack.spawn("worker", tag="worker-2")
    try:
        wait_until(lambda: "Worker]: Ready" in restarted.log(), 60, "worker ready again")
        assert stack.send(SAMPLES, dbt_file).returncode == 0
        wait_until(lambda: "consumed=" in restarted.log(), 30, "the replay consumed")
        wait_until(lambda: len(receiver.accepted) >= 5, 30, "the stale/fresh pages delivered")
    finally:
        assert restarted.stop() == 0
    final = alerts(api)
    assert len([a for a in final if a["kind"] == "failed" and a["paged"]]) == 2
    by_kind = Counter(a["kind"] for a in receiver.accepted)
    assert by_kind["failed"] == 2 and by_kind["stale"] >= 2 and by_kind["fresh"] == 1
    assert by_kind["resolved"] == 1  # the first lapse's; the second is still open
    assert len(receiver.accepted_ids()) == len(set(receiver.accepted_ids()))  # each once


def test_runs_show_their_tries_children_by_start_and_one_time_format(stack: Stack) -> None:
    worker = stack.spawn("worker")
    stack.start_api()
    api = stack.api_url
    wait_until(lambda: "Worker]: Ready" in worker.log(), 60, "worker ready")
    assert stack.send(SAMPLES).returncode == 0
    lines = [orjson.loads(line) for line in SAMPLES.read_bytes().splitlines()]
    dag_run = next(e["run"]["runId"] for e in lines if e["job"]["name"] == "ol_failing_retry")

    def children() -> list[dict] | None:
        body = httpx.get(f"{api}/api/v1/runs/{dag_run}", timeout=10).json()
        kids = body.get("children", [])
        return kids if len(kids) == 3 and all(k["state"] != "RUNNING" for k in kids) else None

    kids = wait_until(children, 60, "the DAG run's three task runs")
    assert [k["startTime"] for k in kids] == sorted(k["startTime"] for k in kids)
    tries = [(k["job"].split(".")[-1], k["tryNumber"], k["maxTries"], k["retried"]) for k in kids]
    assert tries == [
        ("ok_before", 1, 1, False),
        ("always_fails", 1, 2, True),
        ("always_fails", 2, 2, False),
    ]
    run = httpx.get(f"{api}/api/v1/runs/{dag_run}", timeout=10).json()["run"]
    for key in ("startTime", "endTime", "updatedAt", "nominalStartTime", "firstEventTime"):
        assert run[key] is None or (run[key].endswith("Z") and len(run[key]) == 24), (key, run[key])
    ns = lines[0]["job"]["namespace"]
    history = httpx.get(
        f"{api}/api/v1/jobs/{ns.replace('/', '%2F')}/ol_failing_retry.always_fails/runs",
        timeout=10,
    ).json()
    assert history["count"] == 2  # both tries are runs ...
    assert history["summary"]["runs"] == 1 and history["summary"]["retriedTries"] == 1
    assert history["summary"]["states"] == {"FAIL": 1}  # ... the task failed once
    alert = httpx.get(f"{api}/api/v1/alerts", timeout=10).json()["alerts"][0]
    assert alert["raisedAt"].endswith("Z") and len(alert["raisedAt"]) == 24
    worker.stop()
