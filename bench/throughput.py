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
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from bench.report import (
    Row,
    children,
    helpers_peak_rss_mb,
    lineage_env,
    peak_rss_mb,
    print_table,
    write_json,
)
from bench.targets import (
    StoreTarget,
    cassandra_url,
    cpu_seconds,
    find_pid,
    metric,
    scrape,
    skipped_cassandra,
    store_target,
    terminal_runs,
    wait_for,
)
from bench.tls import TlsBroker, stunnel_binary
from bench.workload import describe, workload
from lineage_faust.domain.keying import message_key
from lineage_faust.kafka.embedded import EmbeddedBroker, free_port
from lineage_faust.kafka.security import client_options
from lineage_faust.kafka.topics import ensure_topics
from lineage_faust.settings import KafkaSecurity, parse_settings

TOPIC = "bench.events"
PARTITIONS = 8
GOAL_RATE = 5_000
CASSANDRA_GOAL_RATE = 2_500  # one worker, with Cassandra on the same machine


async def produce(
    bootstrap: str, values: list[bytes], security: KafkaSecurity | None = None
) -> float:
    options = client_options(security or KafkaSecurity())
    await ensure_topics(bootstrap, {TOPIC: PARTITIONS}, security=security)
    keys = [message_key(orjson.loads(v)) for v in values]
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=10, **options)
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


@dataclass(frozen=True)
class EndToEnd:
    stored_rate: float  # events/s until every distinct event is stored
    done_rate: float  # events/s until every run's terminal status is stored too
    worker_rss_mb: float
    helpers_rss_mb: float
    worker_cpu_us: float  # worker processes' CPU per event (µs), helpers apart
    helpers_cpu_us: float
    store_cpu_us: float | None  # the store's own process (Cassandra's JVM) on this machine


def end_to_end(
    bootstrap: str,
    workers: int,
    n_events: int,
    run_ids: list[str],
    tmp: Path,
    target: StoreTarget,
    connection: dict[str, str] | None = None,
) -> EndToEnd:
    """Real workers through the backlog into ``target``; progress from their counters.
    ``connection``: the workers' LINEAGE_KAFKA_* security settings (plaintext without)."""
    tmp.mkdir(parents=True, exist_ok=True)
    ports = [free_port() for _ in range(workers)]
    env = lineage_env(
        bootstrap,
        TOPIC,
        **target.env(),
        **(connection or {}),
        LINEAGE_PARTITIONS=str(PARTITIONS),
        LINEAGE_APP_ID=f"bench-{workers}w-{target.name.lower()}",
        LINEAGE_LOG_LEVEL="INFO",
    )
    logs = [tmp / f"worker-{i}.log" for i in range(workers)]
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "lineage_faust", "worker"],
            env={
                **env,
                "LINEAGE_DATA_DIR": str(tmp / f"data-{i}"),
                "LINEAGE_WORKER_PORT": str(port),
            },
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
        )
        for i, (log, port) in enumerate(zip(logs, ports, strict=True))
    ]
    store_pid = find_pid("CassandraDaemon") if target.name == "Cassandra" else None
    try:
        while not all(b"Worker]: Ready" in log.read_bytes() for log in logs):
            if any(p.poll() is not None for p in procs):
                raise RuntimeError(f"a worker exited: {logs[0].read_text()[-2000:]}")
            time.sleep(0.02)
        start = time.perf_counter()
        cpu_start = [cpu_seconds(p.pid) for p in procs]
        helpers_start = sum(cpu_seconds(c) for p in procs for c in children(p.pid))
        store_start = cpu_seconds(store_pid) if store_pid else 0.0
        last = 0.0

        def stored() -> bool:
            nonlocal last
            text = scrape(ports)
            count = metric(text, "lineage_worker_events_stored_total", 'kind="run"')
            if count != last:
                print(
                    f"  {workers} worker(s), {target.name}: stored {count:.0f}/{n_events}  ",
                    end="\r",
                    file=sys.stderr,
                )
                last = count
            return count >= n_events

        wait_for(stored, 1800, "every event stored", 0.25)
        stored_at = time.perf_counter() - start

        def folded() -> bool:
            text = scrape(ports)
            ended = metric(text, "lineage_worker_run_state_changes_total", 'state="COMPLETE"')
            ended += metric(text, "lineage_worker_run_state_changes_total", 'state="FAIL"')
            return ended >= len(run_ids)

        wait_for(folded, 1800, "every run's terminal state", 0.25)
        done_at = time.perf_counter() - start
        worker_cpu = sum(cpu_seconds(p.pid) for p in procs) - sum(cpu_start)
        helpers_cpu = sum(cpu_seconds(c) for p in procs for c in children(p.pid)) - helpers_start
        store_cpu = cpu_seconds(store_pid) - store_start if store_pid else None
        rss = max(peak_rss_mb(p.pid) for p in procs)
        helpers_rss = max(helpers_peak_rss_mb(p.pid) for p in procs)
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(30)
    print(file=sys.stderr)
    # the store itself says every run is there (not only the workers' counters)
    done = asyncio.run(terminal_runs(target.url, run_ids))
    if done != len(run_ids):
        raise RuntimeError(f"{target.name}: {done} of {len(run_ids)} runs have a final state")
    per_event = 1e6 / n_events
    return EndToEnd(
        n_events / stored_at,
        n_events / done_at,
        rss,
        helpers_rss,
        worker_cpu * per_event,
        helpers_cpu * per_event,
        store_cpu * per_event if store_cpu is not None else None,
    )


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


def run(
    n_events: int,
    workers: list[int],
    keep: Path | None = None,
    stores: tuple[str, ...] = ("sqlite", "cassandra"),
    tls: bool = True,
) -> list[Row]:
    values = list(workload(n_events))
    info = describe(values)
    print(
        f"throughput: {info['events']:,} events ({info['distinct_events']:,} distinct, "
        f"{info['avg_kb']:.1f} KB avg), {info['runs']:,} runs, {os.cpu_count()} cores",
        file=sys.stderr,
    )
    n_stored = int(info["distinct_events"])
    run_ids = sorted({orjson.loads(v)["run"]["runId"] for v in values})
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
        kinds = [k for k in stores if k == "sqlite" or cassandra_url()]
        for kind in kinds:
            for n in workers:
                with store_target(kind, tmp / f"{kind}-{n}w") as target:
                    rows += end_to_end_rows(
                        target,
                        n,
                        noop,
                        noop_eager,
                        end_to_end(
                            broker.bootstrap, n, n_stored, run_ids, tmp / f"{kind}-{n}w", target
                        ),
                    )
        if not cassandra_url():
            print(skipped_cassandra(), file=sys.stderr)
            rows.append(Row(skipped_cassandra(), float("nan"), ""))
    if tls and "sqlite" in stores:
        rows += tls_rows(values, n_stored, run_ids, keep, plaintext_rows=rows)
    return rows


def tls_rows(
    values: list[bytes],
    n_stored: int,
    run_ids: list[str],
    keep: Path | None,
    plaintext_rows: list[Row],
) -> list[Row]:
    """One worker on SQLite through mutual TLS (the embedded broker behind Debian's stunnel,
    the backlog produced over TLS too), beside the plaintext figure of this run."""
    if stunnel_binary() is None:
        print("TLS: skipped (Debian's stunnel4 is not installed: make tls-proxy)", file=sys.stderr)
        return []
    plaintext = next(
        (
            r.value
            for r in plaintext_rows
            if r.figure == "end to end, 1 worker, SQLite: stored + run states"
        ),
        None,
    )
    with tempfile.TemporaryDirectory() as tmp_dir, TlsBroker(Path(tmp_dir) / "tls") as broker:
        tmp = keep or Path(tmp_dir)
        connection = broker.files.client_env()
        security = parse_settings(connection).kafka_security
        produced = asyncio.run(produce(broker.bootstrap, values, security))
        with store_target("sqlite", tmp / "sqlite-tls") as target:
            result = end_to_end(
                broker.bootstrap, 1, n_stored, run_ids, tmp / "sqlite-tls", target, connection
            )
    return [
        Row("produce over mutual TLS (aiokafka, 1 producer)", produced, "events/s"),
        Row(
            "1 worker, SQLite, mutual TLS through a proxy: stored + run states",
            result.done_rate,
            "events/s",
            plaintext,
            "plaintext, same run",
        ),
        Row(
            "1 worker, SQLite, mutual TLS: worker CPU per event",
            result.worker_cpu_us,
            "µs",
        ),
    ]


def end_to_end_rows(
    target: StoreTarget, n: int, noop: float, noop_eager: float, result: EndToEnd
) -> list[Row]:
    label = f"{n} worker{'s' if n > 1 else ''}, {target.name}"
    # the throughput goals are for one worker process on the embedded stack (SQLite)
    goal: tuple = ()
    if n == 1 and target.name == "SQLite":
        met = result.done_rate >= GOAL_RATE and result.done_rate >= noop / 2
        goal = (f">= {GOAL_RATE:,}/s and >= 0.5 x no-op", met)
    elif n == 1:
        goal = (f">= {CASSANDRA_GOAL_RATE:,}/s", result.done_rate >= CASSANDRA_GOAL_RATE)
    rows = [
        Row(
            f"end to end, {label}: events stored",
            result.stored_rate,
            "events/s",
            noop,
            "no-op Faust",
        ),
        Row(
            f"end to end, {label}: stored + run states",
            result.done_rate,
            "events/s",
            noop,
            "no-op Faust",
            *goal,
        ),
        Row(
            f"end to end, {label}: stored + run states, against the eager no-op",
            result.done_rate,
            "events/s",
            noop_eager,
            "eager no-op",
        ),
        Row(f"end to end, {label}: worker CPU per event", result.worker_cpu_us, "µs"),
        Row(f"end to end, {label}: its helpers' CPU per event", result.helpers_cpu_us, "µs"),
        Row(f"end to end, {label}: worker peak RSS", result.worker_rss_mb, "MB"),
        Row(f"end to end, {label}: its helper processes' peak RSS", result.helpers_rss_mb, "MB"),
    ]
    if result.store_cpu_us is not None:
        rows.append(
            Row(f"end to end, {label}: the store's own CPU per event", result.store_cpu_us, "µs")
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--keep", type=Path, help="keep the workers' logs and store here")
    parser.add_argument(
        "--stores",
        nargs="+",
        choices=["sqlite", "cassandra"],
        default=["sqlite", "cassandra"],
        help="cassandra needs LINEAGE_STORE=cassandra://host:port/ks",
    )
    args = parser.parse_args()
    rows = run(args.events, args.workers, args.keep, tuple(args.stores))
    print_table(rows)
    write_json("throughput", rows, events=args.events)


if __name__ == "__main__":
    main()
