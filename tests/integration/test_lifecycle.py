"""Incidents that resolve themselves, end to end: a real broker, worker processes (restarted
between failure and recovery), the API over HTTP, a JSON webhook and a PagerDuty-shaped one,
the real SQLite store.

The recorded Airflow DAG fails (its task's final try); the task is cleared and its next try
succeeds, then the DAG run completes. A dbt project fails a model; it is run again and every
model succeeds. Each incident pages once, resolves by itself once, and each webhook gets its
trigger, then one resolve (PagerDuty: one ``dedup_key``). A third failure is acknowledged and
resolved by hand through the API.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import orjson
import pytest
from openlineage.client.event_v2 import RunState

from tests.support.dbt_stream import dbt_stream
from tests.support.helpers import SAMPLES, Stack, wait_until
from tests.support.olclient import new_run_id, run_event
from tests.support.receiver import Receiver

pytestmark = pytest.mark.integration

ROUTING_KEY = "pd-routing-key"


@pytest.fixture
def receivers() -> Iterator[tuple[Receiver, Receiver]]:
    with Receiver() as plain, Receiver() as pagerduty:
        yield plain, pagerduty


def cleared_and_rerun(now: datetime) -> list[bytes]:
    """The recorded DAG's failed task cleared: its next try starts and succeeds, then the
    DAG run (the same run) completes."""
    lines = [orjson.loads(line) for line in SAMPLES.read_bytes().splitlines()]
    task = "ol_failing_retry.always_fails"
    start = next(e for e in lines if e["job"]["name"] == task and e["eventType"] == "START")
    dag_fail = next(
        e for e in lines if e["job"]["name"] == "ol_failing_retry" and e["eventType"] == "FAIL"
    )
    run_id = str(uuid.uuid4())
    events = []
    for kind, at in (("START", now), ("COMPLETE", now + timedelta(seconds=3))):
        event = orjson.loads(orjson.dumps(start))
        event["eventType"], event["eventTime"] = kind, at.isoformat()
        event["run"]["runId"] = run_id
        event["run"]["facets"].pop("errorMessage", None)
        airflow = event["run"]["facets"].get("airflow", {})
        if "taskInstance" in airflow:
            airflow["taskInstance"]["try_number"] = 3
        events.append(event)
    dag = orjson.loads(orjson.dumps(dag_fail))
    dag["eventType"], dag["eventTime"] = "COMPLETE", (now + timedelta(seconds=5)).isoformat()
    dag["run"]["facets"].pop("errorMessage", None)
    events.append(dag)
    return [orjson.dumps(e) for e in events]


def incidents(api: str, **params: str) -> list[dict]:
    found, cursor = [], None
    while True:
        page = httpx.get(
            f"{api}/api/v1/incidents",
            params={**params, "limit": 2, **({"cursor": cursor} if cursor else {})},
            timeout=10,
        ).json()
        found += page["incidents"]
        if not (cursor := page["nextCursor"]):
            return found


def test_incidents_resolve_by_themselves_and_by_hand(
    stack: Stack, receivers: tuple[Receiver, Receiver], tmp_path: Path
) -> None:
    plain, pagerduty = receivers
    stack.extra_env.update(
        LINEAGE_WEBHOOKS=f"{plain.url},pagerduty+{pagerduty.url}?routing_key={ROUTING_KEY}",
        LINEAGE_PUBLIC_URL="https://ops.example.com",
    )
    failing_dbt, _ = dbt_stream()
    fixed_dbt, _ = dbt_stream(datetime.now(UTC).replace(microsecond=0), fails=False)
    (tmp_path / "dbt-fail.jsonl").write_bytes(b"\n".join(failing_dbt))
    (tmp_path / "dbt-fixed.jsonl").write_bytes(b"\n".join(fixed_dbt))
    (tmp_path / "airflow-fixed.jsonl").write_bytes(b"\n".join(cleared_and_rerun(datetime.now(UTC))))
    worker = stack.spawn("worker", tag="worker-1")
    stack.start_api()
    api = stack.api_url
    wait_until(lambda: "Worker]: Ready" in worker.log(), 60, "worker ready")
    assert stack.send(SAMPLES, tmp_path / "dbt-fail.jsonl").returncode == 0

    opened = wait_until(
        lambda: found if len(found := incidents(api, state="open")) == 2 else None,
        60,
        "two incidents open (the DAG's, dbt's)",
    )
    by_namespace = {i["namespace"]: i for i in opened}
    airflow, dbt = by_namespace["airflow_ol_corpus"], by_namespace["dbt://warehouse"]
    assert set(airflow["failing"]) == {
        "job:airflow_ol_corpus/ol_failing_retry.always_fails",
        "job:airflow_ol_corpus/ol_failing_retry",
    }
    assert set(dbt["failing"]) == {
        "job:dbt://warehouse/shop.build",
        "job:dbt://warehouse/shop.build.model.orders_1",
        "job:dbt://warehouse/shop.build.model.orders_1.sql",
    }
    for incident in opened:
        assert incident["times"]["detect"] > 0 and incident["times"]["resolve"] is None
        assert incident["changes"][0]["state"] == "open"
        assert incident["url"] == f"https://ops.example.com/#incident/{incident['incidentId']}"
    wait_until(lambda: len(plain.accepted) == 2 and len(pagerduty.accepted) == 2, 30, "pages")

    # the worker restarts between the failures and their recoveries
    assert worker.stop() == 0
    restarted = stack.spawn("worker", tag="worker-2")
    try:
        wait_until(lambda: "Worker]: Ready" in restarted.log(), 60, "worker ready again")
        sent = stack.send(tmp_path / "airflow-fixed.jsonl", tmp_path / "dbt-fixed.jsonl")
        assert sent.returncode == 0
        resolved = wait_until(
            lambda: found if len(found := incidents(api, state="resolved")) == 2 else None,
            60,
            "both incidents resolved by themselves",
        )
        wait_until(
            lambda: len(plain.accepted) == 4 and len(pagerduty.accepted) == 4, 30, "resolves"
        )

        # a third failure, acknowledged and resolved by hand
        manual_run = new_run_id()
        fail = run_event(RunState.FAIL, manual_run, "etl.manual", error="disk full")
        (tmp_path / "manual.jsonl").write_bytes(fail)
        assert stack.send(tmp_path / "manual.jsonl").returncode == 0
        [manual] = wait_until(lambda: incidents(api, state="open") or None, 30, "its incident")
        wait_until(lambda: len(plain.accepted) == 5, 30, "its page")
        ack = httpx.post(
            f"{api}/api/v1/incidents/{manual['incidentId']}/acknowledge",
            json={"by": "ana", "note": "looking"},
            timeout=10,
        )
        assert ack.status_code == 200, ack.text
        assert ack.json()["state"] == "acknowledged" and ack.json()["acknowledgedBy"] == "ana"
        again = httpx.post(f"{api}/api/v1/incidents/{manual['incidentId']}/acknowledge")
        assert again.status_code == 409 and "acknowledged" in again.json()["error"]
        done = httpx.post(
            f"{api}/api/v1/incidents/{manual['incidentId']}/resolve",
            json={"by": "ana", "note": "freed the disk"},
            timeout=10,
        )
        assert done.status_code == 200, done.text
        body = done.json()
        assert body["state"] == "resolved" and body["resolvedBy"] == "ana"
        assert body["times"]["acknowledge"] <= body["times"]["resolve"]
        assert [c["state"] for c in body["changes"]] == ["open", "acknowledged", "resolved"]
        twice = httpx.post(f"{api}/api/v1/incidents/{manual['incidentId']}/resolve")
        assert twice.status_code == 409
        missing = httpx.post(f"{api}/api/v1/incidents/nope/resolve")
        assert missing.status_code == 404
        wait_until(
            lambda: len(plain.accepted) == 6 and len(pagerduty.accepted) == 6, 30, "its resolve"
        )
    finally:
        assert restarted.stop() == 0

    for incident in resolved:
        assert incident["resolvedBy"] == "lineage-faust" and not incident["failing"]
        assert incident["changes"][-1]["note"].startswith("recovered: ")
        assert incident["times"]["resolve"] >= incident["times"]["detect"]
    # each webhook: per incident its trigger, then exactly one resolve
    statuses = Counter((a["incidentId"], a["status"]) for a in plain.accepted)
    every = {airflow["incidentId"], dbt["incidentId"], manual["incidentId"]}
    assert statuses == Counter({(i, s): 1 for i in every for s in ("triggered", "resolved")})
    for incident_id in every:
        events = [e for e in pagerduty.accepted if e["dedup_key"] == incident_id]
        assert [e["event_action"] for e in events] == ["trigger", "resolve"]
        assert {e["routing_key"] for e in events} == {ROUTING_KEY}
    assert len(plain.accepted_ids()) == len(set(plain.accepted_ids()))
    assert incidents(api, state="open") == [] and incidents(api, state="acknowledged") == []
    assert len(incidents(api)) == 3
    assert [i["incidentId"] for i in incidents(api, job="shop.build")] == [dbt["incidentId"]]

    # the times, summed up: per job, overall, in /metrics
    summary = httpx.get(f"{api}/api/v1/incidents/summary", params={"days": 7}).json()
    assert summary["total"]["count"] == 3 and summary["total"]["open"] == 0
    assert summary["total"]["resolve"]["p50"] > 0
    # by each incident's page's job (which of a tree's failures pages depends on how they
    # reach the worker: docs/alerts.md)
    assert {j["name"] for j in summary["byJob"]} == {i["name"] for i in incidents(api)}
    assert "etl.manual" in {j["name"] for j in summary["byJob"]}
    job = httpx.get(f"{api}/api/v1/jobs/tests/etl.manual").json()
    assert job["last7Days"]["count"] == 1 and job["last30Days"]["acknowledge"]["p50"] > 0
    assert job["open"] == []
    metrics = httpx.get(f"{api}/metrics").text
    assert 'lineage_incidents{state="resolved",window="7d"} 3.0' in metrics
    assert 'lineage_incident_seconds{quantile="0.50",stage="resolve",window="30d"}' in metrics
    detail = httpx.get(f"{api}/api/v1/incidents/{dbt['incidentId']}").json()
    assert detail["lifecycle"]["state"] == "resolved"
    assert detail["page"]["kind"] == "failed" and detail["alerts"][-1]["kind"] == "resolved"
