"""API lookup latency over real HTTP against a populated SQLite store.

    python -m bench.api_latency [--events N] [--requests R]

Fills a fresh SQLite store (as the worker would) with N realistic events and their run
statuses, starts a real `lineage-faust api` process, then times R sequential lookups (one
client, keep-alive) of random runs on each endpoint. Prints p50/p99 per endpoint.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

import httpx

from lineage_faust.broker import free_port, wait_for_port
from lineage_faust.model import ValidEvent, parse_event
from lineage_faust.runstate import RunUpdate, fold
from lineage_faust.store import StoredEvent
from lineage_faust.store.base import status_from_state
from lineage_faust.store.sqlite import SQLiteStore
from lineage_faust.synth import fresh_copies, load_lines


async def populate(db: Path, n_events: int) -> tuple[list[str], list[str], list[tuple[str, str]]]:
    store = SQLiteStore(db)
    await store.open()
    lines = load_lines()
    run_ids: list[str] = []
    parents: set[str] = set()
    jobs: set[tuple[str, str]] = set()
    now = datetime.now(UTC)
    for copy in fresh_copies(lines, max(1, n_events // len(lines)), seed=3):
        events = [
            e for e in (parse_event(line, 1 << 20) for line in copy) if isinstance(e, ValidEvent)
        ]
        await store.write_events([StoredEvent.from_valid(e) for e in events])
        by_run: dict[str, list[RunUpdate]] = {}
        for e in events:
            by_run.setdefault(e.payload.run.runId, []).append(RunUpdate.from_event(e))
        statuses = [status_from_state(fold(u), now) for u in by_run.values()]
        await store.write_run_statuses(statuses)
        run_ids.extend(by_run)
        parents.update(s.parent_run_id for s in statuses if s.parent_run_id)
        jobs.update((s.namespace, s.job) for s in statuses)
    await store.close()
    return run_ids, sorted(parents), sorted(jobs)


def percentile(values: list[float], p: float) -> float:
    return statistics.quantiles(values, n=100)[int(p) - 1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=2000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        run_ids, parents, jobs = asyncio.run(populate(Path(tmp) / "lineage.db", args.events))
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("LINEAGE_")}
        token = "bench-token-0123456789"  # auth on: its cost is part of every lookup
        env.update(
            LINEAGE_DATA_DIR=tmp,
            LINEAGE_API_PORT=str(port),
            LINEAGE_LOG_LEVEL="WARNING",
            LINEAGE_API_TOKENS=token,
        )
        rng = random.Random(0)
        endpoints = {
            "atlas events by run": lambda: f"/api/atlas/v2/openlineage/runs/{rng.choice(run_ids)}",
            "v1 run + parent + children": lambda: f"/api/v1/runs/{rng.choice(run_ids)}",
            "v1 DAG run (children)": lambda: f"/api/v1/runs/{rng.choice(parents)}",
            "v1 runs?state=FAIL&limit=50": lambda: "/api/v1/runs?state=FAIL&limit=50",
            "v1 job history (50)": lambda: "/api/v1/jobs/{}/{}/runs".format(
                *(quote(part, safe="") for part in rng.choice(jobs))
            ),
        }
        api = subprocess.Popen([sys.executable, "-m", "lineage_faust", "api"], env=env)
        try:
            wait_for_port("127.0.0.1", port, 30)
            headers = {"Authorization": f"Bearer {token}"}
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=headers) as client:
                for label, url in endpoints.items():
                    for _ in range(100):  # warm up
                        client.get(url())
                    timings = []
                    for _ in range(args.requests):
                        start = time.perf_counter()
                        response = client.get(url())
                        timings.append((time.perf_counter() - start) * 1000)
                        assert response.status_code == 200, response.text
                    print(
                        f"{label:30} p50 {percentile(timings, 50):6.2f} ms   "
                        f"p99 {percentile(timings, 99):6.2f} ms   ({len(run_ids)} runs stored)"
                    )
        finally:
            api.terminate()
            api.wait(10)


if __name__ == "__main__":
    main()
