"""Time to recover: a worker process started on a backlog → consuming (its first event taken
and accounted for) → its first new event stored → lag zero (the group's committed offsets at
the topic's end), for a fresh start and for a restart after SIGKILL.

    python -m bench.recover [--backlog 10000]

Fresh: a new group and an empty store, ``--backlog`` events waiting. After SIGKILL: the same
worker, killed with SIGKILL once it has consumed that backlog, another ``--backlog`` events
produced, and a new process started on the same data directory (its run table is recovered
from the changelog before it consumes; events consumed but not committed before the kill come
again and are found stored). Progress comes from the worker's own counters (``/metrics``,
polled every 20 ms) and the group's committed offsets. Also against
``LINEAGE_STORE=cassandra://…`` when set.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import subprocess
import sys
import time
from pathlib import Path

from aiokafka import AIOKafkaConsumer, TopicPartition

from bench.report import Row, lineage_env, print_table, write_json
from bench.targets import (
    StoreTarget,
    for_each_store,
    metric,
    scrape,
    wait_for,
)
from bench.throughput import PARTITIONS, TOPIC, produce
from bench.workload import workload
from lineage_faust.kafka.embedded import EmbeddedBroker, free_port

GOAL_CONSUMING_S = 3.0


async def lag(bootstrap: str, group: str) -> int:
    """Messages of the events topic the group has not committed yet."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group)
    await consumer.start()
    try:
        tps = [TopicPartition(TOPIC, p) for p in range(PARTITIONS)]
        ends = await consumer.end_offsets(tps)
        behind = 0
        for tp in tps:
            behind += max(0, ends[tp] - ((await consumer.committed(tp)) or 0))
        return behind
    finally:
        await consumer.stop()


def start_and_time(env: dict, log: Path, port: int, backlog: int) -> tuple[subprocess.Popen, dict]:
    """Start a worker; seconds from the start to Ready, to consuming, to the first new event
    stored and to lag zero."""
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "lineage_faust", "worker"],
        env={**env, "LINEAGE_WORKER_PORT": str(port)},
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    marks: dict[str, float] = {}

    def progress() -> bool:
        if proc.poll() is not None:
            raise RuntimeError(log.read_text()[-2000:])
        now = time.perf_counter() - started
        if "ready" not in marks and b"Worker]: Ready" in log.read_bytes():
            marks["ready"] = now
        text = scrape([port])
        if "consuming" not in marks and metric(text, "lineage_worker_events_consumed_total") > 0:
            marks["consuming"] = now
        if "first stored" not in marks and metric(text, "lineage_worker_events_stored_total") > 0:
            marks["first stored"] = now
        stored = metric(text, "lineage_worker_events_stored_total", 'kind="run"')
        if stored >= backlog * 0.9 and asyncio.run(lag(env["LINEAGE_KAFKA_BOOTSTRAP"], group)) == 0:
            marks["lag zero"] = now
            return True
        return False

    group = env["LINEAGE_APP_ID"]
    try:
        wait_for(progress, 600, "lag zero", 0.02)
    except BaseException:
        proc.kill()
        raise
    marks.setdefault("ready", marks["lag zero"])
    return proc, marks


def measure(target: StoreTarget, backlog: int, tmp: Path, keep_logs: Path | None) -> list[Row]:
    rows: list[Row] = []
    with EmbeddedBroker() as broker:
        env = lineage_env(
            broker.bootstrap,
            TOPIC,
            **target.env(),
            LINEAGE_DATA_DIR=str(tmp / "data"),
            LINEAGE_APP_ID="bench-recover",
            LINEAGE_PARTITIONS=str(PARTITIONS),
        )
        port = free_port()
        asyncio.run(produce(broker.bootstrap, list(workload(backlog, seed=21))))
        proc, fresh = start_and_time(env, tmp / "worker-fresh.log", port, backlog)
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
        asyncio.run(produce(broker.bootstrap, list(workload(backlog, seed=22))))
        proc, killed = start_and_time(env, tmp / "worker-killed.log", port, backlog)
        proc.terminate()
        proc.wait(30)
    if keep_logs is not None:  # what the worker did while it started (--keep-logs)
        keep_logs.mkdir(parents=True, exist_ok=True)
        for log in tmp.glob("worker-*.log"):
            (keep_logs / f"{target.name.lower()}-{log.name}").write_bytes(log.read_bytes())
    for how, marks in (("fresh", fresh), ("after SIGKILL", killed)):
        name = f"recover ({target.name}, {how}, {backlog:,} backlog)"
        consuming = marks["consuming"]
        rows += [
            Row(f"{name}: start to Ready", marks["ready"], "s"),
            Row(
                f"{name}: start to consuming",
                consuming,
                "s",
                goal=f"<= {GOAL_CONSUMING_S:.0f} s",
                met=consuming <= GOAL_CONSUMING_S if target.name == "SQLite" else None,
            ),
            Row(f"{name}: start to first new event stored", marks["first stored"], "s"),
            Row(f"{name}: start to lag zero", marks["lag zero"], "s"),
        ]
    return rows


def run(backlog: int, keep_logs: Path | None = None) -> list[Row]:
    return for_each_store(lambda target, tmp: measure(target, backlog, tmp, keep_logs))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backlog", type=int, default=10_000)
    parser.add_argument("--keep-logs", type=Path, help="copy the workers' logs here")
    args = parser.parse_args()
    rows = run(args.backlog, args.keep_logs)
    print_table(rows)
    write_json("recover", rows, backlog=args.backlog)


if __name__ == "__main__":
    main()
