"""The operators' API (v1) over real HTTP: a real `lineage-faust api` process with credentials
configured, on SQLite (and on Cassandra when LINEAGE_CASSANDRA_HOSTS is set).

The store is filled directly (the Airflow samples folded into statuses, 60 hand-made runs,
dead letters); no broker is running, so HTTP ingest must answer 503 while reads work.
"""

from __future__ import annotations

import asyncio
import dataclasses
import gzip
import re
import statistics
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import orjson
import pytest

from lineage_faust.domain.model import ValidEvent, parse_event
from lineage_faust.domain.records import status_from_state
from lineage_faust.domain.runstate import RunUpdate, fold
from lineage_faust.store import DeadLetter, RunQuery, StoredEvent, open_store
from tests.support.cassandra import STORE_KINDS, drop_keyspace, use_store
from tests.support.helpers import SAMPLES, Stack, clean_env, run_cli
from tests.support.runs_data import T0, expected, sixty_runs

USER, PASSWORD = "ops", "correct horse battery"
TOKEN = "tok-0123456789abcdef"
LINES = [line for line in SAMPLES.read_bytes().splitlines() if line.strip()]
EVENTS = [e for e in (parse_event(line, 1 << 20) for line in LINES) if isinstance(e, ValidEvent)]
RUNS = sixty_runs("ns-api")
SLASHED = [
    dataclasses.replace(r, namespace="airflow://prod", job="etl/daily", run_id=f"slash-{i}")
    for i, r in enumerate(RUNS[:3])
]
NOW = datetime.now(UTC).replace(microsecond=0)
LETTERS = [
    DeadLetter("events", 0, 10, "not_json", "not JSON: x", None, NOW, b"k1", b"not json"),
    DeadLetter(
        "events", 1, 11, "not_utf8", "not UTF-8", None, NOW + timedelta(seconds=1), None, b"\xff"
    ),
    DeadLetter(
        "events",
        2,
        12,
        "too_large",
        "too big",
        None,
        NOW + timedelta(seconds=2),
        None,
        b"{" + "é".encode() * 40_000 + b"}",
    ),
]


def sample_statuses() -> list:
    by_run: dict[str, list[RunUpdate]] = {}
    for e in EVENTS:
        by_run.setdefault(e.payload.run.runId, []).append(RunUpdate.from_event(e))
    return [status_from_state(fold(u), NOW) for u in by_run.values()]


STATUSES = sample_statuses()


async def _populate(store_url: str) -> None:
    store = open_store(store_url)
    await store.open()
    await store.write_events([StoredEvent.from_valid(e) for e in EVENTS])
    await store.write_run_statuses([*STATUSES, *RUNS, *SLASHED])
    await store.write_dead_letters(LETTERS)
    await store.close()


@pytest.fixture(scope="module", params=STORE_KINDS)
def stack(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("api-v1")
    stack = Stack(tmp=tmp, bootstrap="127.0.0.1:1", name="apiv1")  # no broker there
    store_url, keyspace = use_store(request.param, stack.db_path, stack.extra_env)
    stack.extra_env.update(
        LINEAGE_API_USERS=f"someone:else,{USER}:{PASSWORD}",
        LINEAGE_API_TOKENS=TOKEN,
        LINEAGE_API_MAX_BODY_BYTES="100000",
    )
    asyncio.run(_populate(store_url))
    proc = stack.start_api()
    try:
        yield stack
    finally:
        proc.stop()
        if keyspace:
            drop_keyspace(keyspace)


@pytest.fixture(scope="module")
def api(stack: Stack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=stack.api_url, timeout=10, auth=(USER, PASSWORD)) as client:
        yield client


def assert_error(response: httpx.Response, status: int, words: str) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["success"] is False and words in body["error"], body
    return body


def walk(api: httpx.Client, url: str, limit: int, **params: str) -> list[dict]:
    runs: list[dict] = []
    cursor = None
    for _ in range(500):
        query = {**params, "limit": limit, **({"cursor": cursor} if cursor else {})}
        body = api.get(url, params=query).json()
        assert body["success"] and len(body["runs"]) == body["count"] <= limit, body
        runs += body["runs"]
        cursor = body["nextCursor"]
        if cursor is None:
            return runs
    raise AssertionError("pages never ended")


# ---- runs ------------------------------------------------------------------------------
def test_a_dag_run_lists_its_task_runs_and_a_task_run_links_to_it(api: httpx.Client) -> None:
    children: dict[str, list[str]] = {}
    for s in STATUSES:
        if s.parent_run_id:
            children.setdefault(s.parent_run_id, []).append(s.run_id)
    dag_run, tasks = max(children.items(), key=lambda item: len(item[1]))
    assert len(tasks) >= 3
    body = api.get(f"/api/v1/runs/{dag_run}").json()
    assert body["run"]["runId"] == dag_run and body["childrenNextCursor"] is None
    assert sorted(c["runId"] for c in body["children"]) == sorted(tasks)
    assert {c["parentRunId"] for c in body["children"]} == {dag_run}
    task = api.get(f"/api/v1/runs/{tasks[0]}").json()
    dag_status = next(s for s in STATUSES if s.run_id == dag_run)
    assert task["parent"] == {
        "runId": dag_run,
        "href": f"/api/v1/runs/{dag_run}",
        "namespace": dag_status.namespace,
        "job": dag_status.job,
        "state": dag_status.state,
    }
    assert task["children"] == []
    # every child once, however small the pages
    walked = walk(api, f"/api/v1/runs/{dag_run}/children", 1)
    assert sorted(r["runId"] for r in walked) == sorted(tasks)
    assert len(walked) == len(tasks)


QUERIES = [
    RunQuery(namespace="ns-api"),
    RunQuery(state="FAIL", namespace="ns-api"),
    RunQuery(state="RUNNING", namespace="ns-api", since=T0 + timedelta(hours=2)),
    RunQuery(namespace="ns-api", job="job-1", until=T0 + timedelta(hours=12)),
    RunQuery(
        state="COMPLETE",
        namespace="ns-api",
        since=T0 + timedelta(hours=1),
        until=T0 + timedelta(hours=9),
    ),
]


@pytest.mark.parametrize("query", QUERIES, ids=lambda q: q.scope())
def test_run_listings_walk_every_page_once_newest_first(api: httpx.Client, query) -> None:
    params = {
        k: v.isoformat() if isinstance(v, datetime) else v
        for k, v in dataclasses.asdict(query).items()
        if v is not None
    }
    want = expected(RUNS, query)
    assert want
    for limit in (7, 100):
        got = [r["runId"] for r in walk(api, "/api/v1/runs", limit, **params)]
        assert got == want, (limit, query)


def test_failed_in_the_last_hour(api: httpx.Client) -> None:
    """Naive times are UTC; FAIL listings go by when the run failed."""
    until = max(r.end_time for r in RUNS if r.state == "FAIL")
    since = until - timedelta(hours=1)
    params = {
        "state": "FAIL",
        "namespace": "ns-api",
        "since": since.replace(tzinfo=None).isoformat(),
    }
    got = [r["runId"] for r in walk(api, "/api/v1/runs", 50, **params)]
    want = [
        r.run_id
        for r in sorted(RUNS, key=lambda r: r.end_time or T0, reverse=True)
        if r.state == "FAIL" and r.end_time >= since
    ]
    assert got == want and got


def test_job_history_with_summary(api: httpx.Client) -> None:
    runs = walk(api, "/api/v1/jobs/ns-api/job-0/runs", 4)
    assert [r["runId"] for r in runs] == expected(RUNS, RunQuery(namespace="ns-api", job="job-0"))
    body = api.get("/api/v1/jobs/ns-api/job-0/runs", params={"limit": 1000}).json()
    mine = [r for r in RUNS if r.job == "job-0"]
    finished = [r for r in mine if r.state in ("COMPLETE", "FAIL")]
    summary = body["summary"]
    assert summary["runs"] == len(mine) == body["count"]
    assert summary["lastState"] == body["runs"][0]["state"]
    assert summary["states"] == {
        s: sum(r.state == s for r in mine) for s in sorted({r.state for r in mine})
    }
    complete = sum(r.state == "COMPLETE" for r in finished)
    assert summary["successRate"] == round(complete / len(finished), 4)
    assert summary["medianDurationMs"] == statistics.median(r.duration_ms for r in finished)
    assert body["namespace"] == "ns-api" and body["job"] == "job-0"


def test_job_names_with_slashes_are_url_encoded(api: httpx.Client) -> None:
    body = api.get("/api/v1/jobs/airflow:%2F%2Fprod/etl%2Fdaily/runs").json()
    assert body["namespace"] == "airflow://prod" and body["job"] == "etl/daily"
    assert sorted(r["runId"] for r in body["runs"]) == ["slash-0", "slash-1", "slash-2"]
    empty = api.get("/api/v1/jobs/ns-api/never-ran/runs").json()
    assert empty["count"] == 0 and empty["summary"]["successRate"] is None


# ---- dead letters ------------------------------------------------------------------------
def test_dead_letters_newest_first_with_reason_source_and_bytes(api: httpx.Client) -> None:
    body = api.get("/api/v1/dead-letters").json()
    letters = body["deadLetters"]
    assert body["count"] == 3
    assert [(d["reason"], d["partition"], d["offset"]) for d in letters] == [
        ("too_large", 2, 12),
        ("not_utf8", 1, 11),
        ("not_json", 0, 10),
    ]
    big, binary, text = letters
    assert text["value"] == "not json" and text["valueEncoding"] == "utf-8"
    assert text["key"] == "k1" and text["topic"] == "events" and text["detail"] == "not JSON: x"
    assert binary["value"] == "/w==" and binary["valueEncoding"] == "base64"
    assert big["valueTruncated"] and big["valueBytes"] == 80_002
    assert big["valueEncoding"] == "utf-8" and len(big["value"].encode()) <= 64 * 1024
    assert [d["reason"] for d in api.get("/api/v1/dead-letters?limit=1").json()["deadLetters"]] == [
        "too_large"
    ]


# ---- errors ------------------------------------------------------------------------------
def test_bad_requests_are_400_envelopes(api: httpx.Client) -> None:
    assert_error(api.get("/api/v1/runs", params={"state": "BROKEN"}), 400, "state")
    assert_error(api.get("/api/v1/runs", params={"job": "j"}), 400, "namespace")
    assert_error(api.get("/api/v1/runs", params={"limit": 0}), 400, "limit")
    assert_error(api.get("/api/v1/runs", params={"since": "yesterday"}), 400, "since")
    assert_error(
        api.get("/api/v1/runs", params={"since": "2026-02-01", "until": "2026-01-01"}), 400, "since"
    )
    assert_error(api.get("/api/v1/runs", params={"cursor": "garbage"}), 400, "pagingState")
    page = api.get("/api/v1/runs", params={"namespace": "ns-api", "limit": 2}).json()
    foreign = {"state": "FAIL", "namespace": "ns-api", "cursor": page["nextCursor"]}
    assert_error(api.get("/api/v1/runs", params=foreign), 400, "not issued for this query")
    assert_error(api.get("/api/v1/dead-letters", params={"limit": 5000}), 400, "limit")
    assert_error(api.get("/api/v1/runs/nope"), 404, "no run nope")


# ---- auth --------------------------------------------------------------------------------
PROTECTED = [
    "/api/v1/runs",
    "/api/v1/runs/x",
    "/api/v1/runs/x/children",
    "/api/v1/jobs/a/b/runs",
    "/api/v1/dead-letters",
    "/api/v1/alerts",
    "/api/v1/datasets/db/t",
    "/api/v1/datasets/db/t/runs",
    "/api/v1/runs/x/impact",
    "/",
    "/api/atlas/v2/openlineage/runs/x",
    "/openapi.json",
    "/docs",
]


@pytest.mark.parametrize("path", PROTECTED)
def test_every_data_endpoint_needs_credentials(stack: Stack, path: str) -> None:
    with httpx.Client(base_url=stack.api_url, timeout=10) as anonymous:
        body = assert_error(anonymous.get(path), 401, "authentication required")
        assert anonymous.get(path).headers["www-authenticate"].startswith("Basic")
        assert body == {**body, "success": False}
        assert_error(anonymous.get(path, auth=(USER, "wrong")), 401, "wrong credentials")
        assert_error(anonymous.get(path, auth=("nobody", PASSWORD)), 401, "wrong credentials")
        bad_token = {"Authorization": "Bearer tok-0123456789abcdeX"}
        assert_error(anonymous.get(path, headers=bad_token), 401, "wrong credentials")
        malformed = {"Authorization": "Basic !!!"}
        assert anonymous.get(path, headers=malformed).status_code == 401
        good = anonymous.get(path, headers={"Authorization": f"Bearer {TOKEN}"})
        assert good.status_code != 401
        assert anonymous.get(path, auth=("someone", "else")).status_code != 401
        assert anonymous.post("/api/v1/lineage", content=b"{}").status_code == 401


def test_health_and_metrics_need_no_credentials(stack: Stack) -> None:
    with httpx.Client(base_url=stack.api_url, timeout=10) as anonymous:
        assert anonymous.get("/api/atlas/v2/openlineage/health").json()["success"] is True
        health = anonymous.get("/api/v1/health").json()
        assert health == {"success": True, "store": "ok", "broker": "connecting"}
        assert anonymous.get("/metrics").status_code == 200


def test_binding_beyond_loopback_without_credentials_is_refused() -> None:
    result = run_cli(clean_env(LINEAGE_API_HOST="0.0.0.0", LINEAGE_API_PORT="1"), "api")
    assert result.returncode != 0
    assert "without authentication" in result.stderr and "LINEAGE_API_USERS" in result.stderr
    assert "Traceback" not in result.stderr


def test_bad_credential_settings_are_refused_without_echoing_them() -> None:
    result = run_cli(clean_env(LINEAGE_API_USERS="alice-no-password"), "api")
    assert result.returncode != 0 and "user:password" in result.stderr
    assert "alice-no-password" not in result.stderr
    result = run_cli(clean_env(LINEAGE_API_TOKENS="short"), "api")
    assert result.returncode != 0 and "16 characters" in result.stderr


# ---- HTTP ingest without a broker ----------------------------------------------------------
def test_ingest_validates_first_and_answers_503_without_a_broker(api: httpx.Client) -> None:
    url = "/api/v1/lineage"
    good, bad = LINES[0], orjson.dumps({**orjson.loads(LINES[0]), "eventTime": "someday"})
    body = assert_error(api.post(url, content=good), 503, "broker")
    assert "retry" in body["error"]
    body = assert_error(api.post(url, content=b"[" + good + b"," + bad + b"]"), 400, "1 of 2")
    assert body["details"] == [
        {
            "index": 1,
            "reason": "invalid_field",
            "detail": body["details"][0]["detail"],
            "field": "eventTime",
        }
    ]
    assert_error(api.post(url, content=b"not json"), 400, "not JSON")
    assert_error(api.post(url, content=b"[]"), 400, "empty array")
    assert_error(api.post(url, content=b"42"), 400, "JSON int")
    assert_error(api.post(url, content=b"x" * 100_001), 413, "limit")
    bomb = gzip.compress(b"[" + b" " * 200_000 + b"]")
    assert_error(api.post(url, content=bomb, headers={"Content-Encoding": "gzip"}), 413, "exceeds")
    broken = {"Content-Encoding": "gzip"}
    assert_error(api.post(url, content=b"\x1f\x8b not gzip", headers=broken), 400, "gzip")
    assert_error(api.post(url, content=good, headers={"Content-Encoding": "br"}), 415, "br")


# ---- metrics and OpenAPI -------------------------------------------------------------------
def test_metrics_count_requests_by_route_template(api: httpx.Client) -> None:
    for _ in range(3):
        api.get("/api/v1/runs/does-not-exist")
    text = api.get("/metrics").text
    line = re.search(
        r'lineage_api_requests_total\{method="GET",route="/api/v1/runs/\{runId\}",'
        r'status="404"\} (\d+)',
        text,
    )
    assert line and int(float(line.group(1))) >= 3
    assert "does-not-exist" not in text  # templates, never raw paths
    assert 'lineage_api_request_seconds_bucket{le="0.01",method="GET"' in text
    assert re.search(r'lineage_api_rejected_events_total\{reason="invalid_field"\} [1-9]', text)


def test_openapi_documents_every_endpoint_and_its_errors(api: httpx.Client) -> None:
    spec = api.get("/openapi.json").json()
    paths = spec["paths"]
    for path, method, codes in [
        ("/api/v1/runs/{runId}", "get", {"200", "400", "401", "404", "503"}),
        ("/api/v1/runs/{runId}/children", "get", {"200", "400", "401", "503"}),
        ("/api/v1/runs", "get", {"200", "400", "401", "503"}),
        ("/api/v1/jobs/{namespace}/{job}/runs", "get", {"200", "400", "401", "503"}),
        ("/api/v1/dead-letters", "get", {"200", "400", "401", "503"}),
        ("/api/v1/alerts", "get", {"200", "400", "401", "503"}),
        ("/api/v1/datasets/{namespace}/{name}", "get", {"200", "400", "401", "404", "503"}),
        ("/api/v1/datasets/{namespace}/{name}/runs", "get", {"200", "400", "401", "503"}),
        ("/api/v1/runs/{runId}/impact", "get", {"200", "400", "401", "404", "503"}),
        ("/api/v1/stream", "get", {"200", "400", "401", "503"}),
        ("/api/v1/lineage", "post", {"201", "400", "401", "413", "415", "503"}),
        ("/api/atlas/v2/openlineage/runs/{runId}", "get", {"200", "400", "401", "503"}),
    ]:
        assert codes <= set(paths[path][method]["responses"]), (path, method)
    assert {"HTTPBasic", "HTTPBearer"} <= set(spec["components"]["securitySchemes"])
    assert "example" in spec["components"]["schemas"]["RunResponse"]
    docs = api.get("/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()
