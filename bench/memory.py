"""Worker memory as runs accumulate: RSS after 100k and after 1M distinct runs passed through.

    python -m bench.memory [--runs 1000000]

Produces a backlog of small runs (START then COMPLETE, ~0.5 KB events: memory is about the
number of runs, not their size) to the embedded broker, and lets one real worker work through
it with finished runs kept in the live table for 5 s. The worker's resident memory is sampled
as runs finish; the table's size at the end shows that finished runs left it.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
from aiokafka import AIOKafkaProducer

from bench.report import (
    Row,
    helpers_peak_rss_mb,
    lineage_env,
    peak_rss_mb,
    print_table,
    rss_mb,
    write_json,
)
from bench.targets import sqlite_count as count
from lineage_faust.kafka.embedded import EmbeddedBroker, free_port
from lineage_faust.kafka.topics import ensure_topics

TOPIC = "bench.memory"
PARTITIONS = 8
FIRST_MARK = 100_000
RETENTION_S = 5


def small_run(i: int, at: datetime) -> list[bytes]:
    run_id = str(uuid.UUID(int=i + 1, version=4))
    base = {
        "producer": "https://github.com/apache/airflow/tree/providers-openlineage/2.20.3",
        "schemaURL": "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent",
        "job": {"namespace": "bench", "name": f"job_{i % 500}"},
        "inputs": [],
        "outputs": [],
    }
    return [
        orjson.dumps(
            {**base, "eventType": kind, "eventTime": t.isoformat(), "run": {"runId": run_id}}
        )
        for kind, t in (("START", at), ("COMPLETE", at + timedelta(seconds=1)))
    ]


async def produce(
    bootstrap: str, runs: int, topic: str = TOPIC, partitions: int = PARTITIONS
) -> None:
    """``runs`` small runs (START, COMPLETE), keyed by job as the OpenLineage transport does."""
    await ensure_topics(bootstrap, {topic: partitions})
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks=1, linger_ms=20)
    await producer.start()
    start = datetime(2026, 1, 1, tzinfo=UTC)
    try:
        for first in range(0, runs, 10_000):
            futures = []
            for i in range(first, min(runs, first + 10_000)):
                key = f"run:bench/job_{i % 500}".encode()
                for value in small_run(i, start + timedelta(seconds=i)):
                    futures.append(await producer.send(topic, value, key=key))
            await asyncio.gather(*futures)
            print(f"  producing: {first + 10_000:,}/{runs:,} runs  ", end="\r", file=sys.stderr)
    finally:
        await producer.stop()
    print(file=sys.stderr)


def metric_sum(port: int, family: str) -> float:
    """The sum of a gauge family's samples on the worker's /metrics page."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    return sum(float(v) for v in re.findall(rf"^{family}\{{[^}}]*\}} (\S+)", text, re.M))


def live_runs(port: int) -> int:
    return int(metric_sum(port, "lineage_worker_live_runs"))


def native_mb(port: int) -> float:
    """The live table's rocksdb memory (memtables, block cache, table readers)."""
    return metric_sum(port, "lineage_worker_live_table_native_bytes") / 1e6


def run(runs: int) -> list[Row]:
    with tempfile.TemporaryDirectory() as tmp_dir, EmbeddedBroker() as broker:
        tmp = Path(tmp_dir)
        asyncio.run(produce(broker.bootstrap, runs))
        port = free_port()
        env = lineage_env(
            broker.bootstrap,
            TOPIC,
            LINEAGE_DATA_DIR=str(tmp),
            LINEAGE_PARTITIONS=str(PARTITIONS),
            LINEAGE_APP_ID="bench-memory",
            LINEAGE_RUN_RETENTION=str(RETENTION_S),
            LINEAGE_SWEEP_INTERVAL="1",
            LINEAGE_WORKER_PORT=str(port),
        )
        log = tmp / "worker.log"
        worker = subprocess.Popen(
            [sys.executable, "-m", "lineage_faust", "worker"],
            env=env,
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
        )
        db = tmp / "lineage.db"
        sql = "SELECT count(*) FROM run_status WHERE state = 'COMPLETE'"
        try:
            while b"Worker]: Ready" not in log.read_bytes():
                time.sleep(0.05)
            start = time.perf_counter()
            at_mark = None
            next_line = FIRST_MARK
            while (done := count(db, sql)) < runs:
                if at_mark is None and done >= FIRST_MARK:
                    at_mark = (done, rss_mb(worker.pid), peak_rss_mb(worker.pid), native_mb(port))
                rate = done / max(1e-9, time.perf_counter() - start)
                print(
                    f"  {done:,}/{runs:,} runs finished ({rate:,.0f} runs/s), "
                    f"worker RSS {rss_mb(worker.pid):,.0f} MB, of it rocksdb "
                    f"{native_mb(port):,.0f} MB  ",
                    end="\n" if done >= next_line else "\r",  # a line per 100k: the curve
                    file=sys.stderr,
                )
                next_line += FIRST_MARK * (done >= next_line)
                time.sleep(1)
            time.sleep(RETENTION_S + 3)  # the last runs leave the table at the next sweeps
            end = (done, rss_mb(worker.pid), peak_rss_mb(worker.pid), native_mb(port))
            helpers = helpers_peak_rss_mb(worker.pid)
            in_table = live_runs(port)
        finally:
            worker.terminate()
            worker.wait(30)
        print(file=sys.stderr)
    if at_mark is None:  # fewer runs than the first mark
        at_mark = end
    return [
        Row(f"worker RSS after {at_mark[0]:,} runs", at_mark[1], "MB"),
        Row(f"worker peak RSS after {at_mark[0]:,} runs", at_mark[2], "MB"),
        Row(f"worker RSS after {end[0]:,} runs", end[1], "MB", at_mark[1], "RSS at first mark"),
        Row(
            f"worker peak RSS after {end[0]:,} runs",
            end[2],
            "MB",
            at_mark[2],
            "peak at first mark",
            "within +-20 %",
            abs(end[2] / at_mark[2] - 1) <= 0.2,
        ),
        Row(f"of it, the live table's rocksdb after {at_mark[0]:,} runs", at_mark[3], "MB"),
        Row(f"of it, the live table's rocksdb after {end[0]:,} runs", end[3], "MB"),
        Row(f"worker's helper processes' peak RSS after {end[0]:,} runs", helpers, "MB"),
        Row("runs left in the live table at the end", in_table, "runs"),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1_000_000)
    args = parser.parse_args()
    rows = run(args.runs)
    print_table(rows)
    write_json("memory", rows, runs=args.runs)


if __name__ == "__main__":
    main()
