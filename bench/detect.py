"""Time to detect: a failure produced → its page received by a webhook, in four cases.

    python -m bench.detect [--cases quiet background storm hung] [--rate 1000] [--failures 60]

Starts a broker (the embedded one, or the Apache Kafka named by ``LINEAGE_BENCH_KAFKA``), a
real worker with a webhook pointing at a receiver inside the bench, and the API (as
``lineage-faust up`` does: it follows the live topic, on the same cores). Background traffic
(bench/workload.py) is produced while, every ``FAILURE_EVERY_S``, a run of its own (no
parent: a root, so each one pages) is started and failed; the delay is from just before the
FAIL event is handed to the producer to the webhook's POST arriving. The cases:

* quiet: no background;
* background: ``--rate`` events/s, 3 % of task runs failing (paged as the default policy says);
* storm: the same rate, a fifth of task runs failing and every failure paging (~100 pages/s);
* hung: as background, with a second webhook that accepts connections and never answers.

Storm and hung are printed beside the background case of the same run (their baseline), with
the most the worker trailed by, sampled from its ``/metrics`` every half second: events not yet
consumed, and run updates not yet folded. Also against ``LINEAGE_STORE=cassandra://…`` when
set.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx
import orjson
from aiokafka import AIOKafkaProducer

from bench.receiver import HungReceiver, Receiver
from bench.report import Row, lineage_env, print_table, write_json
from bench.targets import StoreTarget, for_each_store, metric
from bench.workload import workload
from lineage_faust.domain.keying import message_key
from lineage_faust.kafka.embedded import EmbeddedBroker, free_port, wait_for_port
from lineage_faust.kafka.topics import ensure_topics

TOPIC = "bench.detect"
PARTITIONS = 8
GOAL_P99_MS = {"embedded broker": 200.0, "Apache Kafka": 300.0}  # at 1,000 events/s
FAILURE_EVERY_S = 0.25


@dataclass(frozen=True)
class Case:
    name: str
    seed: int  # of the background: the cases share a store, each has runs of its own
    background: bool = True
    fail_rate: float = 0.03  # of the background's task runs
    env: dict[str, str] = field(default_factory=dict)
    hung_webhook: bool = False


CASES = {
    "quiet": Case("no background", 0, background=False),
    "background": Case("background", 11),
    "storm": Case(
        "storm, every background failure pages",
        12,
        fail_rate=0.2,
        env={"LINEAGE_ALERT_POLICY": "every", "LINEAGE_ALERT_GROUPING": "none"},
    ),
    "hung": Case("background, a second webhook hangs", 13, hung_webhook=True),
}


@dataclass
class Outcome:
    delays_ms: list[float]  # of the pages that arrived
    pages_per_s: float
    missing: int = 0  # failures whose page had not arrived a minute after the last one
    max_events_lag: int = 0  # events not yet consumed, most seen
    max_updates_lag: int = 0  # run updates not yet folded, most seen
    # where a page's time went, mean ms by stage (the worker's /metrics histograms)
    stages: dict[str, float] = field(default_factory=dict)


def failing_run(kind: str, run_id: str) -> bytes:
    return orjson.dumps(
        {
            "eventType": kind,
            "eventTime": datetime.now(UTC).isoformat(),
            "producer": "https://example.com/bench-detect",
            "schemaURL": "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent",
            "run": {"runId": run_id},
            "job": {"namespace": "bench-detect", "name": f"job-{run_id[:8]}"},
        }
    )


class LagSampler:
    """The worker's consumer lag (its /metrics), summed per topic, sampled every half second;
    keeps the most seen for the events topic and the run-updates topic."""

    def __init__(self, url: str, events_topic: str, updates_topic: str) -> None:
        self.url, self.events, self.updates = url, events_topic, updates_topic
        self.max_events = self.max_updates = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> LagSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)

    def _sample(self) -> None:
        with httpx.Client(timeout=2.0) as client:
            while not self._stop.wait(0.5):
                try:
                    text = client.get(self.url).text
                except httpx.HTTPError:
                    continue
                lag: dict[str, float] = {}
                for line in text.splitlines():
                    if line.startswith("lineage_worker_consumer_lag{"):
                        topic = line.split('topic="', 1)[1].split('"', 1)[0]
                        lag[topic] = lag.get(topic, 0.0) + float(line.rsplit(" ", 1)[1])
                self.max_events = max(self.max_events, int(lag.get(self.events, 0)))
                self.max_updates = max(self.max_updates, int(lag.get(self.updates, 0)))


async def drive(
    bootstrap: str, case: Case, rate: int, failures: int, receiver: Receiver
) -> Outcome:
    seconds = failures * FAILURE_EVERY_S + 1
    background = (
        list(workload(int(rate * seconds), seed=case.seed, fail_rate=case.fail_rate))
        if case.background
        else []
    )
    keys = [message_key(orjson.loads(v)) for v in background]
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=2)
    await producer.start()
    sent_at: dict[str, float] = {}
    with receiver.lock:
        pages_before = len(receiver.accepted)
    try:
        start = time.perf_counter()
        sent, fails = 0, 0
        while fails < failures:
            now = time.perf_counter() - start
            due = min(len(background), int(now * rate))
            for i in range(sent, due):
                await producer.send(TOPIC, background[i], key=keys[i])
            sent = due
            if now >= fails * FAILURE_EVERY_S:
                run_id = str(uuid.uuid4())
                await producer.send_and_wait(TOPIC, failing_run("START", run_id), key=b"x")
                sent_at[run_id] = time.perf_counter()
                await producer.send(TOPIC, failing_run("FAIL", run_id), key=b"x")
                fails += 1
            await asyncio.sleep(0.005)
        await producer.flush()
        elapsed = time.perf_counter() - start
    finally:
        await producer.stop()
    deadline = time.perf_counter() + 60
    while time.perf_counter() < deadline:
        with receiver.lock:
            if all(r in receiver.arrived for r in sent_at):
                break
        await asyncio.sleep(0.1)
    with receiver.lock:
        missing = sum(r not in receiver.arrived for r in sent_at)
        delays = sorted(
            (receiver.arrived[r] - t) * 1000 for r, t in sent_at.items() if r in receiver.arrived
        )
        pages = len(receiver.accepted) - pages_before
    if not delays:
        raise RuntimeError(f"none of {len(sent_at)} failures paged")
    return Outcome(delays, pages / elapsed, missing)


def measure(target: StoreTarget, case: Case, rate: int, failures: int, tmp: Path) -> Outcome:
    tmp.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as stack:
        receiver = stack.enter_context(Receiver())
        hooks = [receiver.url]
        if case.hung_webhook:
            hooks.append(stack.enter_context(HungReceiver()).url)
        bootstrap = stack.enter_context(broker())
        app_id = f"bench-detect-{uuid.uuid4().hex[:8]}"
        asyncio.run(ensure_topics(bootstrap, {TOPIC: PARTITIONS}))
        worker_port, api_port = free_port(), free_port()
        env = lineage_env(
            None,
            TOPIC,
            **broker_env(bootstrap),
            **target.env(),
            **case.env,
            LINEAGE_DATA_DIR=str(tmp),
            LINEAGE_APP_ID=app_id,
            LINEAGE_PARTITIONS=str(PARTITIONS),
            LINEAGE_WEBHOOKS=",".join(hooks),
            LINEAGE_WORKER_PORT=str(worker_port),
        )
        log = tmp / "worker.log"
        procs = [
            subprocess.Popen(
                [sys.executable, "-m", "lineage_faust", name],
                env={**env, "LINEAGE_API_PORT": str(api_port)},
                stdout=(tmp / f"{name}.log").open("wb"),
                stderr=subprocess.STDOUT,
            )
            for name in ("worker", "api")
        ]
        try:
            while b"Worker]: Ready" not in log.read_bytes():
                if procs[0].poll() is not None:
                    raise RuntimeError(log.read_text()[-2000:])
                time.sleep(0.05)
            wait_for_port("127.0.0.1", api_port, 30)
            time.sleep(1.0)  # past the first fetches of a new group
            asyncio.run(drive(bootstrap, CASES["quiet"], 0, 1, receiver))  # a warm-up page
            metrics = f"http://127.0.0.1:{worker_port}/metrics"
            with LagSampler(metrics, TOPIC, f"{app_id}-run-updates") as lag:
                outcome = asyncio.run(drive(bootstrap, case, rate, failures, receiver))
            outcome.max_events_lag, outcome.max_updates_lag = lag.max_events, lag.max_updates
            outcome.stages = stage_means(httpx.get(metrics, timeout=5).text)
            return outcome
        finally:
            for proc in procs:
                proc.terminate()
            for proc in procs:
                proc.wait(30)


@contextlib.contextmanager
def broker() -> Iterator[str]:
    """The Apache Kafka named by LINEAGE_BENCH_KAFKA, or an embedded broker of this run's own."""
    external = os.environ.get("LINEAGE_BENCH_KAFKA")
    if external:
        yield external
        return
    with EmbeddedBroker() as embedded:
        yield embedded.bootstrap


def broker_env(bootstrap: str) -> dict[str, str]:
    env = {"LINEAGE_KAFKA_BOOTSTRAP": bootstrap}
    if not os.environ.get("LINEAGE_BENCH_KAFKA"):
        env["LINEAGE_EMBEDDED_BROKER"] = "1"
    return env


STAGES = (
    ("ingest", "lineage_worker_page_path_seconds", 'stage="ingest"'),
    ("hop", "lineage_worker_page_path_seconds", 'stage="hop"'),
    ("fold", "lineage_worker_page_path_seconds", 'stage="fold"'),
    ("deliver", "lineage_worker_webhook_delivery_seconds", 'webhook="1"'),
)


def stage_means(text: str) -> dict[str, float]:
    """Mean ms of each stage of a page's way through the worker, from its histograms: ingest
    (an event's Kafka timestamp → its run updates forwarded), hop (forwarded → folded), fold
    (→ page queued), deliver (queued → the first webhook's 2xx)."""
    means = {}
    for stage, name, labels in STAGES:
        total, count = metric(text, f"{name}_sum", labels), metric(text, f"{name}_count", labels)
        if count:
            means[stage] = 1000 * total / count
    return means


def percentile(ms: list[float], q: float) -> float:
    return ms[min(len(ms) - 1, int(q * len(ms)))]


def rows_of(store: str, outcomes: dict[str, Outcome], rate: int, goal_ms: float) -> list[Row]:
    rows: list[Row] = []
    base = outcomes.get("background")
    base_p99 = percentile(base.delays_ms, 0.99) if base else None
    for key, outcome in outcomes.items():
        case, ms = CASES[key], outcome.delays_ms
        name = f"detect ({store}, {case.name}" + (f", {rate:,} ev/s)" if case.background else ")")
        p99 = percentile(ms, 0.99) if not outcome.missing else float("inf")
        goal, met, baseline = "", None, None
        if key == "background":
            goal, met = f"p99 <= {goal_ms:.0f} ms", p99 <= goal_ms
        elif key == "storm":
            goal, met, baseline = "p99 <= 1,000 ms", p99 <= 1000.0, base_p99
        elif key == "hung":
            baseline = base_p99
            goal = "p99 <= 1.2 x background"
            met = p99 <= 1.2 * base_p99 if base_p99 else None
        rows += [
            Row(f"{name}: FAIL to webhook, p50", statistics.median(ms), "ms"),
            Row(f"{name}: FAIL to webhook, p99", p99, "ms", baseline, "background p99", goal, met),
            Row(f"{name}: FAIL to webhook, max", ms[-1], "ms"),
        ]
        if outcome.missing:
            rows.append(Row(f"{name}: never paged within a minute", outcome.missing, "pages"))
        if outcome.stages:
            path = ", ".join(f"{k} {v:.0f}" for k, v in outcome.stages.items())
            rows.append(
                Row(f"{name}: mean ms by stage ({path})", sum(outcome.stages.values()), "ms")
            )
        if case.background:
            rows += [
                Row(f"{name}: pages received", outcome.pages_per_s, "/s"),
                Row(f"{name}: most events not yet consumed", outcome.max_events_lag, "msgs"),
                Row(f"{name}: most run updates not yet folded", outcome.max_updates_lag, "msgs"),
            ]
    return rows


def run(cases: list[str], failures: int, rate: int = 1000) -> list[Row]:
    def each_store(target: StoreTarget, tmp: Path) -> list[Row]:
        outcomes = {key: measure(target, CASES[key], rate, failures, tmp / key) for key in cases}
        kafka = "Apache Kafka" if os.environ.get("LINEAGE_BENCH_KAFKA") else "embedded broker"
        return rows_of(f"{kafka} + {target.name}", outcomes, rate, GOAL_P99_MS[kafka])

    rows = for_each_store(each_store)
    if not os.environ.get("LINEAGE_BENCH_KAFKA"):
        print(
            "Apache Kafka: skipped (set LINEAGE_BENCH_KAFKA=host:9092 to measure it)",
            file=sys.stderr,
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", nargs="+", choices=list(CASES), default=list(CASES))
    parser.add_argument("--rate", type=int, default=1000)
    parser.add_argument("--failures", type=int, default=120)
    args = parser.parse_args()
    rows = run(args.cases, args.failures, args.rate)
    print_table(rows)
    write_json("detect", rows, cases=args.cases, rate=args.rate, failures=args.failures)


if __name__ == "__main__":
    main()
