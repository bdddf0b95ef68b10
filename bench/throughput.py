"""End-to-end throughput of one worker process, beside a ceiling measured in the same run.

    python -m bench.throughput [--events N]

1. builds N realistic events (copies of the Airflow samples with fresh run ids),
2. produces them to a fresh topic on a fresh embedded broker (a backlog),
3. ceiling: raw aiokafka consume of that backlog,
4. end to end: a real `lineage-faust worker` process works through the backlog; timed from
   the worker's "Ready" to the last event row and the last run status in SQLite.

Prints a table and writes bench-results/throughput.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
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

from lineage_faust.broker import EmbeddedBroker
from lineage_faust.keying import message_key
from lineage_faust.synth import fresh_copies, load_lines
from lineage_faust.topics import ensure_topics

TOPIC = "bench.events"
PARTITIONS = 8


async def produce(bootstrap: str, values: list[bytes]) -> float:
    await ensure_topics(bootstrap, {TOPIC: PARTITIONS})
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=10)
    await producer.start()
    start = time.perf_counter()
    try:
        for i in range(0, len(values), 5000):
            chunk = values[i : i + 5000]
            futures = [
                await producer.send(TOPIC, v, key=message_key(orjson.loads(v))) for v in chunk
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


def end_to_end(bootstrap: str, n_events: int, n_runs: int, tmp: Path) -> tuple[float, float]:
    # LINEAGE_BATCH_* pass through so batch sizes can be compared
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("LINEAGE_") or k.startswith("LINEAGE_BATCH_")
    }
    env.update(
        LINEAGE_KAFKA_BOOTSTRAP=bootstrap,
        LINEAGE_EMBEDDED_BROKER="1",
        LINEAGE_TOPIC=TOPIC,
        LINEAGE_DATA_DIR=str(tmp),
        LINEAGE_PARTITIONS=str(PARTITIONS),
        LINEAGE_APP_ID="bench",
    )
    log = (tmp / "worker.log").open("wb")
    worker = subprocess.Popen(
        [sys.executable, "-m", "lineage_faust", "worker"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    db = tmp / "lineage.db"
    try:
        while b"Worker]: Ready" not in (tmp / "worker.log").read_bytes():
            time.sleep(0.02)
        start = time.perf_counter()
        last = 0
        while (stored := count(db, "SELECT count(*) FROM events_by_run")) < n_events:
            if stored != last:
                print(f"  stored {stored}/{n_events}", end="\r", file=sys.stderr)
                last = stored
            time.sleep(0.05)
        stored_at = time.perf_counter() - start
        sql = "SELECT count(*) FROM run_status WHERE state IN ('COMPLETE','FAIL')"
        while count(db, sql) < n_runs:
            time.sleep(0.05)
        done_at = time.perf_counter() - start
    finally:
        worker.terminate()
        worker.wait(30)
        log.close()
    return n_events / stored_at, n_events / done_at


def noop_faust(bootstrap: str, n: int) -> float:
    out = subprocess.run(
        [sys.executable, "-m", "bench.noop_faust", bootstrap, TOPIC, str(n)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    found = re.search(r"RATE (\d+)", out.stdout + out.stderr)  # Faust logs our stdout
    if found:
        return float(found.group(1))
    raise RuntimeError(f"no-op Faust agent gave no rate: {out.stderr[-2000:]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=50_000)
    args = parser.parse_args()
    lines = load_lines()
    copies = max(1, args.events // len(lines))
    values = [v for copy in fresh_copies(lines, copies, seed=1) for v in copy]
    n_runs = len({orjson.loads(v)["run"]["runId"] for v in values})
    avg = sum(map(len, values)) / len(values)
    print(
        f"{len(values)} events ({avg / 1024:.1f} KB avg), {n_runs} runs, {os.cpu_count()} cores",
        file=sys.stderr,
    )
    with tempfile.TemporaryDirectory() as tmp, EmbeddedBroker() as broker:
        produce_rate = asyncio.run(produce(broker.bootstrap, values))
        ceiling = asyncio.run(raw_consume(broker.bootstrap, len(values)))
        noop = noop_faust(broker.bootstrap, len(values))
        stored_rate, done_rate = end_to_end(broker.bootstrap, len(values), n_runs, Path(tmp))
    rows = [
        ("produce (aiokafka, 1 producer)", produce_rate, None),
        ("ceiling: raw aiokafka consume", ceiling, None),
        ("ceiling: no-op Faust agent (take_events)", noop, None),
        ("end to end: events stored (1 worker)", stored_rate, noop),
        ("end to end: stored + run states (1 worker)", done_rate, noop),
    ]
    print(f"\n{'figure':46} {'events/s':>10} {'ratio to no-op Faust':>21}")
    for name, value, base in rows:
        ratio = f"{value / base:.2f}" if base else ""
        print(f"{name:46} {value:10,.0f} {ratio:>21}")
    out = Path("bench-results")
    out.mkdir(exist_ok=True)
    (out / "throughput.json").write_text(
        json.dumps(
            {
                "events": len(values),
                "runs": n_runs,
                "avg_bytes": avg,
                "figures": {name: value for name, value, _ in rows},
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
