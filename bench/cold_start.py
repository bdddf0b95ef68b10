"""Cold start through ``lineage-faust up``, as a user meets it: a backlog waits on the broker,
the whole system starts, and the backlog is worked off.

    python -m bench.cold_start [--backlog 150000]

``--backlog`` events (bench/workload.py) are produced to an embedded broker started by the
bench (``up`` is pointed at it with ``LINEAGE_KAFKA_BOOTSTRAP``: a broker that ``up`` started
itself would start empty), then ``lineage-faust up`` starts. Timed from that start: the API
answering, every event stored and every run's final state stored (the worker's counters), the
rate including start-up. Then every run is checked through the store interface, and a sample
of runs through the API. Also against ``LINEAGE_STORE=cassandra://…`` when set.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import orjson

from bench.report import Row, children, lineage_env, print_table, write_json
from bench.targets import (
    StoreTarget,
    cpu_seconds,
    for_each_store,
    metric,
    scrape,
    terminal_runs,
    wait_for,
)
from bench.throughput import GOAL_RATE, PARTITIONS, TOPIC, produce
from bench.workload import describe, workload
from lineage_faust.kafka.embedded import EmbeddedBroker, free_port

API_SAMPLE = 200  # runs read back through the API
FINAL_STATES = ("COMPLETE", "FAIL", "ABORT")


def _tree(pid: int) -> list[int]:
    found = children(pid)
    return found + [p for child in found for p in _tree(child)]


def _role(pid: int) -> str:
    """Which of up's processes ``pid`` is."""
    try:
        args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return f"gone {pid}"
    if b"lineage_faust" in args and args[-2:-1] in ([b"worker"], [b"api"]):
        return {b"worker": "the worker", b"api": "the API"}[args[-2]]
    return "the worker's triage helper" if b"spawn_main" in b" ".join(args) else f"other {pid}"


def measure(target: StoreTarget, backlog: int, tmp: Path) -> list[Row]:
    values = list(workload(backlog, seed=31))
    info = describe(values)
    n_stored = int(info["distinct_events"])
    run_ids = sorted({orjson.loads(v)["run"]["runId"] for v in values})
    with EmbeddedBroker() as broker:
        asyncio.run(produce(broker.bootstrap, values))
        del values
        api_port, worker_port = free_port(), free_port()
        env = lineage_env(
            broker.bootstrap,
            TOPIC,
            **target.env(),
            LINEAGE_DATA_DIR=str(tmp / "data"),
            LINEAGE_PARTITIONS=str(PARTITIONS),
            LINEAGE_API_PORT=str(api_port),
            LINEAGE_WORKER_PORT=str(worker_port),
        )
        log = tmp / "up.log"
        started = time.perf_counter()
        up = subprocess.Popen(
            [sys.executable, "-m", "lineage_faust", "up"],
            env=env,
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
        )
        marks: dict[str, float] = {}
        api = f"http://127.0.0.1:{api_port}"

        def progress() -> bool:
            if up.poll() is not None:
                raise RuntimeError(f"lineage-faust up exited: {log.read_text()[-2000:]}")
            now = time.perf_counter() - started
            if "api" not in marks:
                try:
                    if httpx.get(f"{api}/api/v1/health", timeout=1).status_code < 500:
                        marks["api"] = now
                except httpx.HTTPError:
                    pass
            text = scrape([worker_port])
            if "stored" not in marks:
                stored = metric(text, "lineage_worker_events_stored_total", 'kind="run"')
                print(f"  cold start: stored {stored:.0f}/{n_stored}  ", end="\r", file=sys.stderr)
                if stored >= n_stored:
                    marks["stored"] = now
            ended = sum(
                metric(text, "lineage_worker_run_state_changes_total", f'state="{s}"')
                for s in FINAL_STATES
            )
            if "stored" in marks and "api" in marks and ended >= len(run_ids):
                marks["done"] = now
                return True
            return False

        try:
            wait_for(progress, 1800, "every run's final state", 0.1)
            print(file=sys.stderr)
            cpu = {_role(pid): cpu_seconds(pid) for pid in _tree(up.pid)}
            sample = random.Random(1).sample(run_ids, min(API_SAMPLE, len(run_ids)))
            through_api = sum(
                httpx.get(f"{api}/api/v1/runs/{run_id}", timeout=10).json()["run"]["state"]
                in FINAL_STATES
                for run_id in sample
            )
        finally:
            up.send_signal(signal.SIGINT)
            try:
                up.wait(60)
            except subprocess.TimeoutExpired:
                up.kill()
    done = asyncio.run(terminal_runs(target.url, run_ids))
    if done != len(run_ids) or through_api != len(sample):
        raise RuntimeError(
            f"{target.name}: {done} of {len(run_ids)} runs final in the store, "
            f"{through_api} of {len(sample)} through the API"
        )
    name = f"cold start via `up` ({target.name}, {backlog:,} backlog)"
    rate = info["events"] / marks["done"]
    return [
        Row(f"{name}: start to API answering", marks["api"], "s"),
        *(
            Row(f"{name}: CPU of {role}", seconds, "s")
            for role, seconds in sorted(cpu.items())
            if not role.startswith(("gone", "other"))
        ),
        Row(f"{name}: start to every event stored", marks["stored"], "s"),
        Row(f"{name}: start to every run's final state", marks["done"], "s"),
        Row(
            f"{name}: rate including start-up",
            rate,
            "events/s",
            goal=f">= {GOAL_RATE:,}/s",
            met=rate >= GOAL_RATE if target.name == "SQLite" else None,
        ),
    ]


def run(backlog: int) -> list[Row]:
    return for_each_store(lambda target, tmp: measure(target, backlog, tmp))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backlog", type=int, default=150_000)
    args = parser.parse_args()
    rows = run(args.backlog)
    print_table(rows)
    write_json("cold_start", rows, backlog=args.backlog)


if __name__ == "__main__":
    main()
