"""The whole system as a user runs it: `lineage-faust up`, `send`, then the API and the DLQ.

Real embedded broker, real worker and API processes, real SQLite (and a real Cassandra when
LINEAGE_CASSANDRA_HOSTS is set). The samples are sent twice
(a redelivery must change nothing) together with a file of broken lines.
"""

from __future__ import annotations

import asyncio
import signal
import socket
import subprocess
import sys
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest
from aiokafka import AIOKafkaConsumer

from lineage_faust.kafka.embedded import free_port
from tests.support.cassandra import (
    STORE_KINDS,
    cassandra_env,
    cassandra_url,
    drop_keyspace,
    new_keyspace,
)
from tests.support.helpers import EXTERNAL_KAFKA, SAMPLES, clean_env, run_cli, up_env, wait_until
from tests.support.olclient import job_event

pytestmark = pytest.mark.integration
MAX_BYTES = 64 * 1024


def broken_lines() -> list[bytes]:
    good = orjson.loads(SAMPLES.read_bytes().splitlines()[0])
    wrong_type = {**good, "run": {**good["run"], "runId": 12345}}
    no_job_name = {**good, "job": {"namespace": "airflow_ol_corpus"}}
    bad_time = {**good, "eventTime": "last tuesday"}
    huge = {**good, "padding": "x" * (MAX_BYTES + 1)}
    return [
        b"this is not json",
        b"[1, 2, 3]",
        b'{"eventTime": "2026-11-21T10:00:00Z"}',
        orjson.dumps(wrong_type),
        orjson.dumps(no_job_name),
        orjson.dumps(bad_time),
        orjson.dumps(huge),
        b'{"eventType": "START", "note": "caf\xe9 not utf-8"}',
    ]


async def read_topic(bootstrap: str, topic: str, expected: int) -> list:
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        group_id=None,
        enable_auto_commit=False,
    )
    await consumer.start()
    records: list = []
    try:
        async with asyncio.timeout(60):
            while len(records) < expected:
                batch = await consumer.getmany(timeout_ms=1000)
                for rs in batch.values():
                    records.extend(rs)
        await asyncio.sleep(1)  # anything beyond the expected count would be a bug
        for rs in (await consumer.getmany(timeout_ms=1000)).values():
            records.extend(rs)
    finally:
        await consumer.stop()
    return records


@pytest.fixture(params=STORE_KINDS)
def store_env(request: pytest.FixtureRequest) -> Iterator[dict[str, str]]:
    """No store setting (the embedded SQLite default), or a fresh Cassandra keyspace."""
    if request.param == "sqlite":
        yield {}
        return
    keyspace = new_keyspace()
    yield {"LINEAGE_STORE": cassandra_url(keyspace), **cassandra_env()}
    drop_keyspace(keyspace)


def test_up_send_query_and_dead_letters(tmp_path: Path, store_env: dict[str, str]) -> None:
    port = free_port()
    env = clean_env(
        LINEAGE_DATA_DIR=str(tmp_path / "data"),
        LINEAGE_API_PORT=str(port),
        LINEAGE_MAX_EVENT_BYTES=str(MAX_BYTES),
        LINEAGE_PARTITIONS="4",
        **store_env,
        **up_env(f"e2e-{uuid.uuid4().hex[:8]}"),
    )
    topic = env.get("LINEAGE_TOPIC", "openlineage.events")
    broken = tmp_path / "broken.jsonl"
    broken.write_bytes(b"\n".join(broken_lines()) + b"\n")
    extra = tmp_path / "job-event.json"
    extra.write_bytes(job_event("standalone.job"))

    log = (tmp_path / "up.log").open("wb")
    up = subprocess.Popen(
        [sys.executable, "-m", "lineage_faust", "up"], env=env, stdout=log, stderr=subprocess.STDOUT
    )
    api = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: _healthy(api), 60, "the API to come up")
        for path in (SAMPLES, SAMPLES, broken, extra):
            sent = run_cli(env, "send", "--no-progress", str(path))
            assert sent.returncode == 0, sent.stderr
        assert "sent 28, failed 0" in run_cli(env, "send", "--no-progress", str(SAMPLES)).stderr

        lines = SAMPLES.read_bytes().splitlines()
        per_run = Counter(orjson.loads(line)["run"]["runId"] for line in lines)
        with httpx.Client(base_url=api, timeout=10) as client:

            def all_stored() -> bool:
                return all(_count(client, run_id) == n for run_id, n in per_run.items())

            wait_until(all_stored, 90, "every sample event to be queryable")

            def statuses() -> dict[str, dict] | None:
                got = {}
                for run_id in per_run:
                    response = client.get(f"/api/v1/runs/{run_id}")
                    if response.status_code != 200:
                        return None
                    got[run_id] = response.json()["run"]
                done = all(s["eventCount"] == per_run[s["runId"]] for s in got.values())
                return got if done else None

            runs = wait_until(statuses, 60, "run statuses")
        failed = sorted(r["job"] for r in runs.values() if r["state"] == "FAIL")
        assert failed == [
            "ol_failing_retry",
            "ol_failing_retry.always_fails",
            "ol_failing_retry.always_fails",
        ]
        assert all(r["state"] == "COMPLETE" for r in runs.values() if r["job"] not in failed)
        assert all(r["eventCount"] == per_run[r["runId"]] for r in runs.values())  # no doubles
        for r in runs.values():
            if r["state"] == "FAIL" and r["job"].endswith("always_fails"):
                assert r["errorMessage"] and r["parentRunId"] and r["rootRunId"]

        bootstrap = EXTERNAL_KAFKA or (tmp_path / "data" / "broker.addr").read_text().strip()
        records = asyncio.run(read_topic(bootstrap, f"{topic}.dlq", len(broken_lines())))
        assert sorted(r.value for r in records) == sorted(broken_lines())
        for record in records:
            headers = dict(record.headers)
            assert headers["lineage.dlq.reason"] and headers["lineage.dlq.detail"]
            assert headers["lineage.source.topic"] == topic.encode()
            assert int(headers["lineage.source.offset"]) >= 0
        reasons = Counter(dict(r.headers)["lineage.dlq.reason"].decode() for r in records)
        assert reasons == {
            "not_json": 1,
            "not_object": 1,
            "not_openlineage": 1,
            "missing_field": 1,
            "invalid_field": 2,
            "too_large": 1,
            "not_utf8": 1,
        }
    finally:
        up.send_signal(signal.SIGINT)
        code = up.wait(60)
        log.close()
    output = (tmp_path / "up.log").read_text(errors="replace")
    assert code == 0, output[-3000:]
    assert "stopped" in output
    assert not (tmp_path / "data" / "broker.addr").exists()
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
        pass


def _healthy(api: str) -> bool:
    try:
        return httpx.get(f"{api}/api/atlas/v2/openlineage/health", timeout=2).is_success
    except httpx.HTTPError:
        return False


def _count(client: httpx.Client, run_id: str) -> int:
    total, cursor = 0, None
    while True:
        params = {"pageSize": 7, **({"pagingState": cursor} if cursor else {})}
        body = client.get(f"/api/atlas/v2/openlineage/runs/{run_id}", params=params).json()
        total += body["eventCount"]
        cursor = body["nextPagingState"]
        if not cursor:
            return total
