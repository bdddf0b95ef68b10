"""End-to-end throughput of 1 and 2 worker processes, beside ceilings measured in the same run.

    python -m bench.throughput [--events N] [--workers 1 2]

1. builds N realistic events (bench/workload.py: DAG runs of 5-50 tasks, failures, duplicates),
2. produces them to a fresh topic on a fresh embedded broker (a backlog),
3. ceilings over that backlog: raw aiokafka consume; a no-op Faust agent,
4. end to end: real `lineage-faust worker` processes (one SQLite store) work through the
   backlog; timed from the last worker's "Ready" until every distinct event is a row and every
   run's terminal status is stored.

Prints a table and writes bench-results/throughput.json.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from bench.report import (
    Row,
    helpers_peak_rss_mb,
    lineage_env,
    peak_rss_mb,
    print_table,
    write_json,
)
from bench.workload import describe, workload
from lineage_faust.broker import EmbeddedBroker
from lineage_faust.keying import message_key
from lineage_faust.topics import ensure_topics

TOPIC = "bench.events"
PARTITIONS = 8
GOAL_RATE = 5_000


async def produce(bootstrap: str, values: list[bytes]) -> float:
    await ensure_topics(bootstrap, {TOPIC: PARTITIONS})
    keys = [message_key(orjson.loads(v)) for v in values]
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=10)
    await producer.start()
    start = time.perf_counter()
    try:
        for i in range(0, len(values), 5000):
            futures = [
                await producer.send(TOPIC, v, key=k)
                for v, k in zip(values[i : i + 5000], keys[i : i + 5000], strict=True)
            ]
            await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return len(values) / (time.perf_counter() - start)


async def raw_consume(bootstrap: str, n: int) -> float:
    consumer = AIOKafkaConsumer(
        TOPIC,
        bootstrap_servers=bootstrap,
        group_id="bench-raw",
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=4 << 20,
    )
    await consumer.start()
    got, start = 0, time.perf_counter()
    try:
        while got < n:
            batch = await consumer.getmany(timeout_ms=1000, max_records=5000)
            got += sum(len(r) for r in batch.values())
    finally:
        await consumer.stop()
    return n / (time.perf_counter() - start)


def count(db: Path, sql: str) -> int:
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
            return conn.execute(sql).fetchone()[0]
    except sqlite3.OperationalError:
        return 0


def end_to_end(
    bootstrap: str, workers: int, n_events: int, n_runs: int, tmp: Path
) -> tuple[float, float, float]:
    """events/s until every event is stored, and until every run status is; workers' peak RSS."""
    tmp.mkdir(parents=True, exist_ok=True)
    db = tmp / "lineage.db"
    env = lineage_env(
        bootstrap,
        TOPIC,
        LINEAGE_STORE=f"sqlite:///{db}",
        LINEAGE_PARTITIONS=str(PARTITIONS),
        LINEAGE_APP_ID=f"bench-{workers}w",
        LINEAGE_LOG_LEVEL="INFO",
    )
    logs = [tmp / f"worker-{i}.log" for i in range(workers)]
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "lineage_faust", "worker"],
            env={**env, "LINEAGE_DATA_DIR": str(tmp / f"data-{i}")},
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
        )
        for i, log in enumerate(logs)
    ]
    try:
        while not all(b"Worker]: Ready" in log.read_bytes() for log in logs):
            time.sleep(0.02)
        start = time.perf_counter()
        last = 0
        while (stored := count(db, "SELECT count(*) FROM events_by_run")) < n_events:
            if stored != last:
                print(
                    f"  {workers} worker(s): stored {stored}/{n_events}  ",
                    end="\r",
                    file=sys.stderr,
                )
                last = stored
            time.sleep(0.05)
        stored_at = time.perf_counter() - start
        sql = "SELECT count(*) FROM run_status WHERE state IN ('COMPLETE','FAIL')"
        while count(db, sql) < n_runs:
            time.sleep(0.05)
        done_at = time.perf_counter() - start
        rss = max(peak_rss_mb(p.pid) for p in procs)
        helpers_rss = max(helpers_peak_rss_mb(p.pid) for p in procs)
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(30)
    print(file=sys.stderr)
    return n_events / stored_at, n_events / done_at, rss, helpers_rss


def noop_faust(bootstrap: str, n: int, *options: str) -> float:
    out = subprocess.run(
        [sys.executable, "-m", "bench.noop_faust", bootstrap, TOPIC, str(n), *options],
        capture_output=True,
        text=True,
        timeout=600,
    )
    found = re.search(r"RATE (\d+)", out.stdout + out.stderr)  # Faust logs our stdout
    if found:
        return float(found.group(1))
    raise RuntimeError(f"no-op Faust agent gave no rate: {out.stderr[-2000:]}")


def run(n_events: int, workers: list[int], keep: Path | None = None) -> list[Row]:
    values = list(workload(n_events))
    info = describe(values)
    print(
        f"throughput: {info['events']:,} events ({info['distinct_events']:,} distinct, "
        f"{info['avg_kb']:.1f} KB avg), {info['runs']:,} runs, {os.cpu_count()} cores",
        file=sys.stderr,
    )
    n_stored, n_runs = int(info["distinct_events"]), int(info["runs"])
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as tmp_dir, EmbeddedBroker() as broker:
        tmp = keep or Path(tmp_dir)
        tmp.mkdir(parents=True, exist_ok=True)
        produced = asyncio.run(produce(broker.bootstrap, values))
        raw = asyncio.run(raw_consume(broker.bootstrap, len(values)))
        noop = noop_faust(broker.bootstrap, len(values))
        # the same no-op agent set up as the worker's Faust is (transport, schema, monitor):
        # how much of the worker's rate is that set-up rather than its own work
        noop_eager = noop_faust(broker.bootstrap, len(values), "--eager")
        rows += [
            Row("produce (aiokafka, 1 producer)", produced, "events/s"),
            Row("ceiling: raw aiokafka consume", raw, "events/s"),
            Row("ceiling: no-op Faust agent", noop, "events/s"),
            Row("no-op Faust agent set up as the worker's (eager, lean)", noop_eager, "events/s"),
        ]
        for n in workers:
            stored, done, rss, helpers_rss = end_to_end(
                broker.bootstrap, n, n_stored, n_runs, tmp / f"{n}w"
            )
            label = f"{n} worker{'s' if n > 1 else ''}"
            # the goals are for one worker process; more workers are reported beside them
            rows += [
                Row(f"end to end, {label}: events stored", stored, "events/s", noop, "no-op Faust"),
                Row(
                    f"end to end, {label}: stored + run states",
                    done,
                    "events/s",
                    noop,
                    "no-op Faust",
                    *(
                        (
                            f">= {GOAL_RATE:,}/s and >= 0.5 x no-op",
                            done >= GOAL_RATE and done >= noop / 2,
                        )
                        if n == 1
                        else ()
                    ),
                ),
                Row(
                    f"end to end, {label}: stored + run states, against the eager no-op",
                    done,
                    "events/s",
                    noop_eager,
                    "eager no-op",
                ),
                Row(f"end to end, {label}: worker peak RSS", rss, "MB"),
                Row(f"end to end, {label}: its helper processes' peak RSS", helpers_rss, "MB"),
            ]
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--keep", type=Path, help="keep the workers' logs and store here")
    args = parser.parse_args()
    rows = run(args.events, args.workers, args.keep)
    print_table(rows)
    write_json("throughput", rows, events=args.events)


if __name__ == "__main__":
    main()
