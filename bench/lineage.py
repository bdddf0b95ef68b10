"""Lineage queries over real HTTP on a graph of 10,000 datasets and 2,000 jobs (SQLite).

    python -m bench.lineage [--jobs 2000] [--requests 200]

Fills a fresh SQLite store's dataset tables (as the worker does from runs' inputs and
outputs): each job writes 5 datasets and reads 3 written by earlier jobs (the first 50 read
from 200 sources); a run per job (50 of them failed, each with its open incident), then starts
a real `lineage-faust api` and times, one client, keep-alive: the graph around a random dataset
(both ways, depth 5), downstream of a random job (depth 5), a blast-radius-sized walk
(downstream, depth 10, 500 nodes) and an incident (`GET /api/v1/incidents/{id}`: its blast
radius, depth 10, and likely cause), each beside the API's health endpoint in the same run
(the HTTP and framework floor).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import subprocess
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote

from bench.api_latency import beside_health, percentile, timed
from bench.report import Row, lineage_env, print_table, write_json
from lineage_faust.domain import incidents
from lineage_faust.domain.alerting import Alert, alert_id
from lineage_faust.domain.datasets import INPUT, OUTPUT, DatasetIO
from lineage_faust.domain.records import RunStatus
from lineage_faust.kafka.embedded import free_port, wait_for_port
from lineage_faust.store.sqlite.store import SQLiteStore

NS, JOB_NS = "bench://warehouse", "bench-dbt"
GOAL_P99_MS = 50.0  # at depth 5
SOURCES, WRITES, READS = 200, 5, 3


def graph_rows(jobs: int, seed: int = 5) -> list[DatasetIO]:
    rng = random.Random(seed)
    at = datetime.now(UTC) - timedelta(hours=1)
    rows = []
    for j in range(jobs):
        job, run = f"model_{j}", f"run-{j:05d}"
        if j < 50:
            reads = [f"source_{rng.randrange(SOURCES)}" for _ in range(READS)]
        else:
            reads = [f"table_{rng.randrange(WRITES * j)}" for _ in range(READS)]
        for name in set(reads):
            rows.append(DatasetIO(NS, name, INPUT, run, JOB_NS, job, at))
        for k in range(WRITES):
            rows.append(DatasetIO(NS, f"table_{WRITES * j + k}", OUTPUT, run, JOB_NS, job, at))
    return rows


INCIDENTS = 50  # open incidents, each a failed run of one of the first half of the jobs


def failed_run(job: int, at: datetime) -> Alert:
    run = f"run-{job:05d}"
    return Alert(
        alert_id=alert_id(run, "failed"),
        kind="failed",
        severity="critical",
        paged=True,
        run_id=run,
        namespace=JOB_NS,
        job=f"model_{job}",
        state="FAIL",
        raised_at=at,
        error_message="relation does not exist",
        started_at=at - timedelta(minutes=1),
        ended_at=at,
    )


async def populate(db: Path, jobs: int) -> tuple[int, list[str]]:
    """The graph's dataset tables, every job's run (COMPLETE, or FAIL for the incidents' jobs)
    and the open incidents; (datasets, incident ids)."""
    store = SQLiteStore(db)
    await store.open()
    rows = graph_rows(jobs)
    for i in range(0, len(rows), 5000):
        await store.write_dataset_io(rows[i : i + 5000])
    at = datetime.now(UTC) - timedelta(minutes=30)
    failing = random.Random(9).sample(range(jobs // 2), INCIDENTS)
    failed = set(failing)

    def status(job: int) -> RunStatus:
        state = "FAIL" if job in failed else "COMPLETE"
        started = at - timedelta(minutes=1)
        return RunStatus(
            f"run-{job:05d}", state, JOB_NS, f"model_{job}", None, None, started, at,
            started, at, 60_000, 2, state, None, None, None, at,
        )  # fmt: skip

    statuses = [status(j) for j in range(jobs)]
    await store.write_run_statuses(statuses)
    pages = [failed_run(j, at) for j in failing]
    await store.record_alerts(pages)
    for page in pages:
        await store.save_incident(incidents.open_incident(page, page.alert_id))
    await store.close()
    return len({(r.namespace, r.name) for r in rows}), [p.alert_id for p in pages]


def run(jobs: int, requests: int) -> list[Row]:
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as tmp:
        datasets, opened = asyncio.run(populate(Path(tmp) / "lineage.db", jobs))
        rows.append(Row("lineage graph: datasets", datasets, ""))
        rows.append(Row("lineage graph: jobs", jobs, ""))
        port = free_port()
        env = lineage_env(
            LINEAGE_DATA_DIR=tmp, LINEAGE_API_PORT=str(port), LINEAGE_LOG_LEVEL="WARNING"
        )
        rng = random.Random(0)

        def node(kind: str, name: str) -> str:
            namespace = NS if kind == "dataset" else JOB_NS
            return quote(f"{kind}:{namespace}:{name}", safe="")

        lookups = {
            "around a dataset, both ways, depth 5": lambda: (
                f"/api/v1/lineage?nodeId={node('dataset', f'table_{rng.randrange(WRITES * jobs)}')}"
                "&depth=5&direction=both"
            ),
            "downstream of a job, depth 5": lambda: (
                f"/api/v1/lineage?nodeId={node('job', f'model_{rng.randrange(jobs)}')}"
                "&depth=5&direction=downstream"
            ),
            "blast radius walk (downstream, depth 10, 500 nodes)": lambda: (
                f"/api/v1/lineage?nodeId={node('job', f'model_{rng.randrange(jobs // 2)}')}"
                "&depth=10&direction=downstream&limit=500"
            ),
            "an incident with its blast radius and likely cause": lambda: (
                f"/api/v1/incidents/{rng.choice(opened)}"
            ),
        }
        api = subprocess.Popen([sys.executable, "-m", "lineage_faust", "api"], env=env)
        try:
            wait_for_port("127.0.0.1", port, 30)
            base = f"http://127.0.0.1:{port}"
            floor = timed(base, {}, lambda: "/api/v1/health", requests, 1)
            floor_p99 = percentile(floor, 99)
            rows.append(Row("API health, 1 client: p99", floor_p99, "ms"))
            for label, url in lookups.items():
                t = timed(base, {}, url, requests, 1)
                goal = GOAL_P99_MS if "depth 5" in label else None
                rows += beside_health(f"lineage {label}", t, floor, goal)
        finally:
            api.terminate()
            api.wait(10)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args()
    rows = run(args.jobs, args.requests)
    print_table(rows)
    write_json("lineage", rows)


if __name__ == "__main__":
    main()
