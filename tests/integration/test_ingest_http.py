"""OpenLineage's HTTP transport into the API ends up exactly like its Kafka transport.

Two isolated pipelines on the real embedded broker: the Airflow samples go to one through
Kafka (`lineage-faust send`) and to the other through `POST /api/v1/lineage` (one event per
request, as the transport sends them, every other one gzip-encoded). Their stores must hold
the same rows. Then the official openlineage-python client, with its own HTTP transport and
a bearer token, delivers events that the API returns.
"""

from __future__ import annotations

import gzip
import sqlite3
import uuid
from pathlib import Path

import httpx
import orjson
import pytest
from openlineage.client import OpenLineageClient
from openlineage.client.event_v2 import RunState
from openlineage.client.serde import Serde
from openlineage.client.transport.http import (
    ApiKeyTokenProvider,
    HttpCompression,
    HttpConfig,
    HttpTransport,
)

from lineage_faust.kafka.embedded import EmbeddedBroker
from tests.support.helpers import SAMPLES, Proc, Stack, wait_until
from tests.support.olclient import later, run_event_obj

pytestmark = pytest.mark.integration
TOKEN = "tok-ingest-0123456789"
LINES = [line for line in SAMPLES.read_bytes().splitlines() if line.strip()]
RUN_IDS = {orjson.loads(line)["run"]["runId"] for line in LINES}

EVENT_ROWS = (
    "SELECT eventId, runId, jobName, source, eventTime, event, status FROM events_by_run "
    "ORDER BY runId, eventSort"
)
STATUS_ROWS = (
    "SELECT runId, state, namespace, jobName, parentRunId, rootRunId, firstEventTime, "
    "lastEventTime, startTime, endTime, durationMs, eventCount, lastEventType, errorMessage, "
    "nominalStartTime, processingType FROM run_status ORDER BY runId"
)


def rows(db: Path, sql: str) -> list[tuple]:
    if not db.exists():
        return []
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
        try:
            return conn.execute(sql).fetchall()
        except sqlite3.OperationalError:  # not created yet
            return []


def settled(db: Path) -> bool:
    """Every sample stored and every run's status counting all its events."""
    events = rows(db, EVENT_ROWS)
    statuses = rows(db, STATUS_ROWS)
    counted = sum(s[11] for s in statuses)
    return len(events) == len(LINES) and len(statuses) == len(RUN_IDS) and counted == len(LINES)


def start_worker(stack: Stack) -> Proc:
    worker = stack.spawn("worker")
    wait_until(lambda: "Worker]: Ready" in worker.log(), 90, f"{stack.name} worker ready")
    return worker


def test_http_ingest_matches_kafka_ingest(broker: EmbeddedBroker, tmp_path: Path) -> None:
    via_kafka = Stack(tmp=tmp_path / "kafka", bootstrap=broker.bootstrap, name="t-via-kafka")
    via_http = Stack(tmp=tmp_path / "http", bootstrap=broker.bootstrap, name="t-via-http")
    via_http.extra_env.update(LINEAGE_API_TOKENS=TOKEN, LINEAGE_PARTITIONS="1")
    procs = [start_worker(via_kafka), start_worker(via_http)]
    try:
        procs.append(via_http.start_api())
        sent = via_kafka.send(SAMPLES)
        assert sent.returncode == 0, sent.stderr
        headers = {"Authorization": f"Bearer {TOKEN}"}
        with httpx.Client(base_url=via_http.api_url, headers=headers, timeout=30) as api:
            wait_until(
                lambda: api.get("/api/v1/health").json()["broker"] == "ok", 30, "API producer"
            )
            for i, line in enumerate(LINES):
                if i % 2:
                    response = api.post(
                        "/api/v1/lineage",
                        content=gzip.compress(line),
                        headers={"Content-Encoding": "gzip", "Content-Type": "application/json"},
                    )
                else:
                    response = api.post("/api/v1/lineage", content=line)
                assert response.status_code == 201, response.text
                assert response.json() == {
                    "success": True,
                    "accepted": 1,
                    "topic": via_http.topic,
                }
            for stack in (via_kafka, via_http):
                wait_until(lambda s=stack: settled(s.db_path), 90, f"{stack.name} settled")
            assert rows(via_http.db_path, EVENT_ROWS) == rows(via_kafka.db_path, EVENT_ROWS)
            assert rows(via_http.db_path, STATUS_ROWS) == rows(via_kafka.db_path, STATUS_ROWS)

            # The same events again as one JSON array, with a new run's event last: accepted,
            # and deduplicated downstream. (One partition: once the new run is stored, every
            # event before it in the array has been processed too.)
            marker_id = str(uuid.uuid4())
            marker = Serde.to_json(run_event_obj(RunState.START, marker_id, job="marker"))
            batch = b"[" + b",".join([*LINES, marker.encode()]) + b"]"
            response = api.post("/api/v1/lineage", content=batch)
            assert response.status_code == 201 and response.json()["accepted"] == len(LINES) + 1
            wait_until(
                lambda: api.get(f"/api/v1/runs/{marker_id}").status_code == 200, 60, "new run"
            )
            events = [r for r in rows(via_http.db_path, EVENT_ROWS) if r[1] != marker_id]
            assert events == rows(via_kafka.db_path, EVENT_ROWS)
            statuses = [r for r in rows(via_http.db_path, STATUS_ROWS) if r[0] != marker_id]
            assert statuses == rows(via_kafka.db_path, STATUS_ROWS)  # nothing doubled

            deliver_with_the_openlineage_client(via_http, api)
    finally:
        for proc in reversed(procs):
            proc.stop()


def deliver_with_the_openlineage_client(stack: Stack, api: httpx.Client) -> None:
    """The real client library, its HTTP transport, gzip and an API key (bearer token)."""
    config = HttpConfig(
        url=stack.api_url,
        timeout=10,
        compression=HttpCompression.GZIP,
        auth=ApiKeyTokenProvider({"apiKey": TOKEN}),
    )
    client = OpenLineageClient(transport=HttpTransport(config))
    run_id = str(uuid.uuid4())
    client.emit(run_event_obj(RunState.START, run_id, job="client.http"))
    client.emit(run_event_obj(RunState.FAIL, run_id, job="client.http", at=later(5), error="boom"))
    run = wait_until(
        lambda: (
            (r := api.get(f"/api/v1/runs/{run_id}")).status_code == 200
            and r.json()["run"]["state"] == "FAIL"
            and r.json()["run"]
        ),
        60,
        "the client's run",
    )
    assert run["job"] == "client.http" and run["eventCount"] == 2
    assert run["errorMessage"] == "boom"
    events = api.get(f"/api/atlas/v2/openlineage/runs/{run_id}").json()["events"]
    assert [e["status"] for e in events] == ["FAIL", "START"]
    # The client raises on anything but 2xx: a wrong key must be refused, not swallowed.
    config_wrong = HttpConfig(
        url=stack.api_url, timeout=10, auth=ApiKeyTokenProvider({"apiKey": "wrong-key-xxxxxxxx"})
    )
    with pytest.raises(Exception, match="401"):
        OpenLineageClient(transport=HttpTransport(config_wrong)).emit(
            run_event_obj(RunState.START, str(uuid.uuid4()))
        )
