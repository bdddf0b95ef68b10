"""API lookup latency over real HTTP against a populated SQLite store, at 1 and 4 clients.

    python -m bench.api_latency [--events N] [--requests R] [--clients 1 4]

Fills a fresh SQLite store (as the worker would) with N events of the benchmark workload
(bench/workload.py) and their run statuses, starts a real `lineage-faust api` process (auth
on), then for each client count times R lookups of random runs per endpoint, each client on
its own keep-alive connection and thread. The baseline beside each figure is the API's
health endpoint at the same concurrency (the HTTP and framework floor).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

import httpx

from bench.report import Row, lineage_env, peak_rss_mb, print_table, write_json
from bench.workload import workload
from lineage_faust.domain.model import ValidEvent, parse_event
from lineage_faust.domain.records import status_from_state
from lineage_faust.domain.runstate import RunUpdate, fold
from lineage_faust.kafka.embedded import free_port, wait_for_port
from lineage_faust.store import StoredEvent
from lineage_faust.store.sqlite.store import SQLiteStore

GOAL_P99_MS = {1: 10.0, 4: 25.0}
CHUNK = 20_000  # events parsed and written at a time (whole DAG runs mostly; the rest folds on)


async def populate(db: Path, n_events: int) -> tuple[list[str], list[str], list[tuple[str, str]]]:
    store = SQLiteStore(db)
    await store.open()
    updates: dict[str, list[RunUpdate]] = {}
    events: list[ValidEvent] = []
    now = datetime.now(UTC)
    done = 0
    start = time.perf_counter()
    for value in workload(n_events, seed=3):
        parsed = parse_event(value, 1 << 20)
        assert isinstance(parsed, ValidEvent)
        events.append(parsed)
        updates.setdefault(parsed.payload.run.runId, []).append(RunUpdate.from_event(parsed))
        if len(events) >= CHUNK:
            await store.write_events([StoredEvent.from_valid(e) for e in events])
            done += len(events)
            events = []
            rate = done / (time.perf_counter() - start)
            print(f"  filling the store: {done:,}/{n_events:,} ({rate:,.0f}/s)  ", end="\r",
                  file=sys.stderr)  # fmt: skip
    await store.write_events([StoredEvent.from_valid(e) for e in events])
    statuses = [status_from_state(fold(u), now) for u in updates.values()]
    for i in range(0, len(statuses), CHUNK):
        await store.write_run_statuses(statuses[i : i + CHUNK])
    await store.close()
    print(file=sys.stderr)
    parents = sorted({s.parent_run_id for s in statuses if s.parent_run_id})
    jobs = sorted({(s.namespace, s.job) for s in statuses})
    return list(updates), parents, jobs


def _store_mb(directory: Path) -> float:
    return sum(f.stat().st_size for f in directory.glob("lineage.db*")) / 1e6


def percentile(values: list[float], p: float) -> float:
    return statistics.quantiles(values, n=100)[int(p) - 1]


def beside_health(
    name: str, timings: list[float], floor: list[float], goal: float | None
) -> list[Row]:
    """p50 and p99 of a lookup, each beside the health endpoint's in the same run; the p99
    against ``goal`` (ms) when there is one."""
    p99 = percentile(timings, 99)
    return [
        Row(f"{name}: p50", percentile(timings, 50), "ms", percentile(floor, 50), "health p50"),
        Row(
            f"{name}: p99",
            p99,
            "ms",
            percentile(floor, 99),
            "health p99",
            f"p99 <= {goal:.0f} ms" if goal else "",
            (p99 <= goal) if goal else None,
        ),
    ]


def timed(
    base_url: str, headers: dict, url: Callable[[], str], n: int, clients: int
) -> list[float]:
    """Latencies (ms) of n requests spread over ``clients`` concurrent keep-alive clients."""
    timings: list[float] = []
    lock = threading.Lock()

    def client_loop(count: int) -> None:
        mine = []
        with httpx.Client(base_url=base_url, headers=headers) as client:
            for _ in range(20):  # warm up
                client.get(url())
            for _ in range(count):
                target = url()
                start = time.perf_counter()
                response = client.get(target)
                mine.append((time.perf_counter() - start) * 1000)
                assert response.status_code == 200, response.text
        with lock:
            timings.extend(mine)

    threads = [threading.Thread(target=client_loop, args=(n // clients,)) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return timings


def run(n_events: int, requests: int, clients: list[int]) -> list[Row]:
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as tmp:
        run_ids, parents, jobs = asyncio.run(populate(Path(tmp) / "lineage.db", n_events))
        # beside the page cache this machine keeps, this decides how many lookups read the disk
        rows.append(Row("API store file size", _store_mb(Path(tmp)), "MB"))
        port = free_port()
        token = "bench-token-0123456789"  # auth on: its cost is part of every lookup
        env = lineage_env(
            LINEAGE_DATA_DIR=tmp,
            LINEAGE_API_PORT=str(port),
            LINEAGE_LOG_LEVEL="WARNING",
            LINEAGE_API_TOKENS=token,
        )
        rng = random.Random(0)
        lookups = {
            "atlas events by run": lambda: f"/api/atlas/v2/openlineage/runs/{rng.choice(run_ids)}",
            "v1 run (+ parent, children)": lambda: f"/api/v1/runs/{rng.choice(run_ids)}",
        }
        others = {
            "v1 DAG run (+ children)": lambda: f"/api/v1/runs/{rng.choice(parents)}",
            "v1 runs?state=FAIL&limit=50": lambda: "/api/v1/runs?state=FAIL&limit=50",
            "v1 job history (50)": lambda: "/api/v1/jobs/{}/{}/runs".format(
                *(quote(part, safe="") for part in rng.choice(jobs))
            ),
        }
        api = subprocess.Popen([sys.executable, "-m", "lineage_faust", "api"], env=env)
        try:
            wait_for_port("127.0.0.1", port, 30)
            base_url = f"http://127.0.0.1:{port}"
            headers = {"Authorization": f"Bearer {token}"}
            for n_clients in clients:
                floor = timed(base_url, headers, lambda: "/api/v1/health", requests, n_clients)
                floor_p99 = percentile(floor, 99)
                rows.append(Row(f"API health, {n_clients} client(s): p99", floor_p99, "ms"))
                for label, url in {**lookups, **(others if n_clients == 1 else {})}.items():
                    t = timed(base_url, headers, url, requests, n_clients)
                    goal = GOAL_P99_MS.get(n_clients) if label in lookups else None
                    rows += beside_health(f"API {label}, {n_clients} client(s)", t, floor, goal)
            rows.append(Row("API peak RSS", peak_rss_mb(api.pid), "MB"))
        finally:
            api.terminate()
            api.wait(10)
    print(f"  ({len(run_ids):,} runs stored)", file=sys.stderr)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 4])
    args = parser.parse_args()
    rows = run(args.events, args.requests, args.clients)
    print_table(rows)
    write_json("api_latency", rows, events=args.events)


if __name__ == "__main__":
    main()
