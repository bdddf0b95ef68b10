"""Datasets for operators, end to end: events built with the openlineage-python client (a writer
job and a reader job of one table; the writer fails in its second run) plus the Airflow samples,
through a real broker and worker into SQLite, asked over HTTP with auth on."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from openlineage.client.event_v2 import InputDataset, OutputDataset, RunState
from openlineage.client.facet_v2 import output_statistics_output_dataset

from lineage_faust.domain.datasets import dataset_io
from lineage_faust.domain.model import ValidEvent, parse_event
from tests.support.helpers import SAMPLES, Stack, wait_until
from tests.support.olclient import later, new_run_id, run_event

USER, PASSWORD = "ops", "datasets-password"
DB = "postgres://db:5432"
ORDERS = "shop.public.orders"


def orders_out(rows: int | None = None) -> OutputDataset:
    facets = {}
    if rows is not None:
        stats = output_statistics_output_dataset.OutputStatisticsOutputDatasetFacet
        facets["outputStatistics"] = stats(rowCount=rows, size=rows * 100)
    return OutputDataset(namespace=DB, name=ORDERS, outputFacets=facets)


def orders_in() -> InputDataset:
    return InputDataset(namespace=DB, name=ORDERS)


RAW = InputDataset(namespace="s3://landing", name="orders/2026-11-21.csv")
WRITER, READER = "load_orders", "daily_report"


def scenario() -> tuple[list[bytes], dict[str, str]]:
    good, bad, report = new_run_id(), new_run_id(), new_run_id()
    events = [
        run_event(RunState.START, good, WRITER, at=later(0), inputs=[RAW], outputs=[orders_out()]),
        run_event(
            RunState.COMPLETE, good, WRITER, at=later(60), inputs=[RAW], outputs=[orders_out(1200)]
        ),
        run_event(RunState.START, report, READER, at=later(120), inputs=[orders_in()], outputs=[]),
        run_event(
            RunState.COMPLETE, report, READER, at=later(150), inputs=[orders_in()], outputs=[]
        ),
        # the next day the writer fails: it had declared its output at START
        run_event(
            RunState.START, bad, WRITER, at=later(86_400), inputs=[RAW], outputs=[orders_out()]
        ),
        run_event(
            RunState.FAIL, bad, WRITER, at=later(86_460), inputs=[RAW], outputs=[], error="boom"
        ),
    ]
    return events, {"good": good, "bad": bad, "report": report}


def test_dataset_io_is_read_from_events_and_jobs() -> None:
    events, _ = scenario()
    parsed = [parse_event(e, 1 << 20) for e in events]
    assert all(isinstance(p, ValidEvent) for p in parsed)
    found = [io for p in parsed for io in dataset_io(p)]  # type: ignore[arg-type]
    written = [io for io in found if io.direction == "output"]
    assert [(io.namespace, io.name) for io in written] == [(DB, ORDERS)] * 3
    assert (written[1].row_count, written[1].size_bytes) == (1200, 120_000)
    assert {(io.name, io.direction) for io in found if io.job == READER} == {(ORDERS, "input")}


@pytest.fixture
def running(stack: Stack, tmp_path: Path) -> Iterator[tuple[Stack, dict[str, str]]]:
    stack.extra_env.update(LINEAGE_API_USERS=f"{USER}:{PASSWORD}")
    worker = stack.spawn("worker")
    wait_until(lambda: "Worker]: Ready" in worker.log(), 60, "worker ready")
    stack.start_api()
    events, runs = scenario()
    path = tmp_path / "datasets.jsonl"
    path.write_bytes(b"\n".join(events))
    assert stack.send(path, SAMPLES).returncode == 0
    yield stack, runs


@pytest.mark.integration
def test_last_good_write_failed_attempt_readers_and_impact(
    running: tuple[Stack, dict[str, str]],
) -> None:
    stack, runs = running
    url = f"/api/v1/datasets/{quote(DB, safe='')}/{quote(ORDERS, safe='')}"
    with httpx.Client(base_url=stack.api_url, auth=(USER, PASSWORD), timeout=10) as api:

        def finished(run_id: str) -> bool:
            response = api.get(f"/api/v1/runs/{run_id}")
            return response.status_code == 200 and response.json()["run"]["state"] != "RUNNING"

        # run states land in any order (partitions, pipelined batches): wait for all three
        wait_until(lambda: all(finished(r) for r in runs.values()), 60, "the three runs")

        def known(body: dict) -> bool:
            return bool(
                body.get("lastFailedWrite") and body.get("lastSuccessfulWrite") and body["readers"]
            )

        body = wait_until(
            lambda: b if known(b := api.get(url).json()) else None, 60, "the writes and reader"
        )
        good = body["lastSuccessfulWrite"]
        assert (good["runId"], good["job"], good["state"]) == (runs["good"], WRITER, "COMPLETE")
        assert good["rowCount"] == 1200 and good["time"].startswith("2026-11-21T12:01:00")
        assert body["lastFailedWrite"]["runId"] == runs["bad"]
        assert body["lastFailedWrite"]["state"] == "FAIL"
        assert [w["name"] for w in body["writers"]] == [WRITER]
        assert [r["name"] for r in body["readers"]] == [READER]
        assert body["freshnessSeconds"] > 0

        walked, cursor = [], None
        while True:
            params = {"limit": 1, **({"cursor": cursor} if cursor else {})}
            page = api.get(f"{url}/runs", params=params).json()
            walked += [(r["runId"], r["direction"], r["state"]) for r in page["runs"]]
            if not (cursor := page["nextCursor"]):
                break
        assert walked == [  # newest first, each page of one, no repeats
            (runs["bad"], "output", "FAIL"),
            (runs["report"], "input", "COMPLETE"),
            (runs["good"], "output", "COMPLETE"),
        ]

        impact = api.get(f"/api/v1/runs/{runs['bad']}/impact").json()
        assert impact["state"] == "FAIL" and impact["job"] == WRITER
        (expected,) = impact["expectedOutputs"]
        assert (expected["namespace"], expected["name"]) == (DB, ORDERS)
        assert expected["declaredByRun"] is True
        assert expected["lastSuccessfulWrite"]["runId"] == runs["good"]
        assert [r["name"] for r in expected["readers"]] == [READER]
        assert [j["name"] for j in impact["downstreamJobs"]] == [READER]

        # the Airflow samples name no datasets: a failed DAG run impacts nothing known
        def failed_dag_runs() -> list[dict]:
            params = {"state": "FAIL", "namespace": "airflow_ol_corpus"}
            found = api.get("/api/v1/runs", params=params).json()["runs"]
            return [r for r in found if r["parentRunId"] is None]

        dag_fail = wait_until(failed_dag_runs, 60, "the samples' failed DAG run")[0]
        nothing = api.get(f"/api/v1/runs/{dag_fail['runId']}/impact").json()
        assert nothing["expectedOutputs"] == [] and nothing["downstreamJobs"] == []
        assert api.get("/api/v1/runs/no-such-run/impact").status_code == 404
        assert api.get("/api/v1/datasets/db/never.seen").status_code == 404
    assert httpx.get(f"{stack.api_url}{url}", timeout=10).status_code == 401
