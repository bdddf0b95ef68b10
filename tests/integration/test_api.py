"""The query API over real HTTP, served by a real `lineage-faust api` process on SQLite (and
on Cassandra when LINEAGE_CASSANDRA_HOSTS is set)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import orjson
import pytest

from lineage_faust.domain.model import ValidEvent, parse_event
from lineage_faust.domain.records import status_from_state
from lineage_faust.domain.runstate import RunUpdate, fold
from lineage_faust.store import StoredEvent, open_store
from tests.support.cassandra import STORE_KINDS, drop_keyspace, use_store
from tests.support.helpers import SAMPLES, Stack

LINES = [line for line in SAMPLES.read_bytes().splitlines() if line.strip()]
EVENTS = [e for e in (parse_event(line, 1 << 20) for line in LINES) if isinstance(e, ValidEvent)]
TASK_RUN = next(e for e in EVENTS if e.payload.job.name == "ol_sleep_mapped.mapped_square")
MAPPED_RUN_ID = TASK_RUN.payload.run.runId  # one mapped task instance: START + COMPLETE
EXPECTED = sum(e.payload.run.runId == MAPPED_RUN_ID for e in EVENTS)


async def _populate(store_url: str) -> None:
    store = open_store(store_url)
    await store.open()
    await store.write_events([StoredEvent.from_valid(e) for e in EVENTS])
    by_run: dict[str, list[RunUpdate]] = {}
    for e in EVENTS:
        by_run.setdefault(e.payload.run.runId, []).append(RunUpdate.from_event(e))
    now = datetime.now(UTC)
    await store.write_run_statuses([status_from_state(fold(u), now) for u in by_run.values()])
    await store.close()


@pytest.fixture(scope="module", params=STORE_KINDS)
def api(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[httpx.Client]:
    tmp = tmp_path_factory.mktemp("api")
    stack = Stack(tmp=tmp, bootstrap="127.0.0.1:1", name="api")  # the read API needs no broker
    store_url, keyspace = use_store(request.param, stack.db_path, stack.extra_env)
    asyncio.run(_populate(store_url))
    proc = stack.start_api()
    try:
        with httpx.Client(base_url=stack.api_url, timeout=10) as client:
            yield client
    finally:
        proc.stop()
        if keyspace:
            drop_keyspace(keyspace)


def assert_error(response: httpx.Response, status: int, words: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["success"] is False and words in body["error"]
    assert "Traceback" not in response.text


def test_events_by_run_envelope(api: httpx.Client) -> None:
    body = api.get(f"/api/atlas/v2/openlineage/runs/{MAPPED_RUN_ID}").json()
    assert body["success"] is True and body["runId"] == MAPPED_RUN_ID
    assert body["eventCount"] == len(body["events"]) == EXPECTED == 2
    assert body["pageSize"] == 25 and body["nextPagingState"] is None
    assert set(body) == {
        "success",
        "message",
        "error",
        "runId",
        "eventCount",
        "events",
        "pageSize",
        "nextPagingState",
    }
    first = body["events"][0]
    assert set(first) == {"eventId", "source", "jobName", "runId", "eventTime", "event", "status"}
    assert first["source"] == "https://github.com/apache/airflow/tree/providers-openlineage/2.20.3"
    assert first["eventTime"].endswith("Z") and len(first["eventTime"]) == 24
    times = [uuid.UUID(e["eventId"]).time for e in body["events"]]
    assert times == sorted(times, reverse=True)
    assert [e["status"] for e in body["events"]] == ["COMPLETE", "START"]


def test_paging_over_http_visits_every_event_once(api: httpx.Client) -> None:
    seen, cursor = [], None
    while True:
        params = {"pageSize": 1, **({"pagingState": cursor} if cursor else {})}
        body = api.get(f"/api/atlas/v2/openlineage/runs/{MAPPED_RUN_ID}", params=params).json()
        seen += [e["eventId"] for e in body["events"]]
        cursor = body["nextPagingState"]
        if not cursor:
            break
    assert len(seen) == len(set(seen)) == EXPECTED


def test_event_by_id_is_verbatim(api: httpx.Client) -> None:
    url = f"/api/atlas/v2/openlineage/runs/{MAPPED_RUN_ID}/events/{TASK_RUN.event_id}"
    body = api.get(url).json()
    assert body["eventCount"] == 1
    assert body["events"][0]["event"] == TASK_RUN.text
    assert orjson.loads(body["events"][0]["event"])["run"]["runId"] == MAPPED_RUN_ID


def test_errors_are_envelopes_with_fitting_status(api: httpx.Client) -> None:
    base = f"/api/atlas/v2/openlineage/runs/{MAPPED_RUN_ID}"
    assert_error(api.get(base, params={"pageSize": 0}), 400, "pageSize")
    assert_error(api.get(base, params={"pageSize": 1001}), 400, "pageSize")
    assert_error(api.get(base, params={"pageSize": "ten"}), 400, "pageSize")
    assert_error(api.get(base, params={"pagingState": "not-a-cursor!"}), 400, "pagingState")
    assert_error(api.get(f"{base}/events/not-a-uuid"), 400, "not a UUID")
    assert_error(api.get(f"{base}/events/{uuid.uuid1()}"), 404, "no event")
    assert_error(api.get("/api/v1/runs/does-not-exist"), 404, "no run")
    assert_error(api.get("/no/such/route"), 404, "Not Found")


def test_cursor_of_one_run_is_refused_for_another(api: httpx.Client) -> None:
    body = api.get(f"/api/atlas/v2/openlineage/runs/{MAPPED_RUN_ID}", params={"pageSize": 1}).json()
    other = EVENTS[0].payload.run.runId
    response = api.get(
        f"/api/atlas/v2/openlineage/runs/{other}", params={"pagingState": body["nextPagingState"]}
    )
    assert_error(response, 400, "pagingState")


def test_unknown_run_is_an_empty_page(api: httpx.Client) -> None:
    body = api.get("/api/atlas/v2/openlineage/runs/never-seen").json()
    assert body["success"] is True and body["events"] == [] and body["eventCount"] == 0


def test_health_and_run_status(api: httpx.Client) -> None:
    health = api.get("/api/atlas/v2/openlineage/health").json()
    assert health == {**health, "success": True, "message": "OpenLineage event storage is healthy"}
    run = api.get(f"/api/v1/runs/{MAPPED_RUN_ID}").json()["run"]
    assert run["state"] == "COMPLETE" and run["eventCount"] == EXPECTED
    assert run["parentRunId"] == run["rootRunId"] != MAPPED_RUN_ID
    assert run["durationMs"] > 0 and run["job"] == "ol_sleep_mapped.mapped_square"


def test_openapi_documents_the_endpoints(api: httpx.Client) -> None:
    paths = api.get("/openapi.json").json()["paths"]
    assert "/api/atlas/v2/openlineage/runs/{runId}" in paths
    assert "400" in paths["/api/atlas/v2/openlineage/runs/{runId}"]["get"]["responses"]
