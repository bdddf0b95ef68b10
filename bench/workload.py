"""A realistic benchmark workload built from the recorded Airflow events.

DAG runs of 5 to 50 task runs each; every run emits START and a terminal event (a task fails
with probability ``fail_rate``, its DAG run then fails too); about ``duplicate_rate`` of the
events are sent twice, a little later (an at-least-once producer). Several DAG runs are in
flight at once, so their events interleave as they would from a busy Airflow.

The events are the samples' bytes with run ids, job names and event times substituted (no
re-serialisation), 3.5 to 8.3 KB each, every parent/root link consistent.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import orjson

from lineage_faust.samples import load_lines

CONCURRENT_DAG_RUNS = 20
DAGS = 200  # distinct DAG names: job histories fill up as the workload runs


@dataclass(frozen=True, slots=True)
class Template:
    raw: bytes
    run_id: bytes
    parent_id: bytes | None
    dag: bytes  # quoted JSON strings, replaced as whole strings only
    task: bytes | None
    event_time: bytes

    @classmethod
    def of(cls, line: bytes) -> Template:
        event = orjson.loads(line)
        parent = event["run"]["facets"].get("parent")
        name = event["job"]["name"]
        dag = name.partition(".")[0] if parent else name
        return cls(
            line,
            event["run"]["runId"].encode(),
            parent["run"]["runId"].encode() if parent else None,
            orjson.dumps(dag),
            orjson.dumps(name) if parent else None,
            orjson.dumps(event["eventTime"]),
        )

    def render(
        self, run_id: str, parent_id: str | None, dag: str, task: str, at: datetime
    ) -> bytes:
        out = self.raw.replace(self.run_id, run_id.encode())
        if self.parent_id is not None and parent_id is not None:
            out = out.replace(self.parent_id, parent_id.encode())
        if self.task is not None:
            out = out.replace(self.task, orjson.dumps(f"{dag}.{task}"))
        out = out.replace(self.dag, orjson.dumps(dag))
        return out.replace(self.event_time, orjson.dumps(at.isoformat()))


def _templates() -> dict[str, Template]:
    by_shape: dict[str, Template] = {}
    for line in load_lines():
        event = orjson.loads(line)
        is_task = "parent" in event["run"]["facets"]
        shape = f"{'task' if is_task else 'dag'}.{event['eventType']}"
        by_shape.setdefault(shape, Template.of(line))
    return by_shape


def dag_run(
    templates: dict[str, Template], rng: random.Random, start: datetime, fail_rate: float
) -> list[bytes]:
    """One DAG run's events in order: its START, each task's START and end, its end."""
    dag = f"bench_dag_{rng.randrange(DAGS)}"
    dag_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
    events = [templates["dag.START"].render(dag_id, None, dag, "", start)]
    at, failed = start, False
    for i in range(rng.randint(5, 50)):
        task_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        at += timedelta(milliseconds=rng.randint(50, 500))
        events.append(templates["task.START"].render(task_id, dag_id, dag, f"task_{i}", at))
        at += timedelta(seconds=rng.uniform(1, 30))
        end = "task.FAIL" if rng.random() < fail_rate else "task.COMPLETE"
        failed |= end == "task.FAIL"
        events.append(templates[end].render(task_id, dag_id, dag, f"task_{i}", at))
    end = "dag.FAIL" if failed else "dag.COMPLETE"
    events.append(templates[end].render(dag_id, None, dag, "", at + timedelta(seconds=1)))
    return events


def workload(
    n_events: int, *, seed: int = 1, fail_rate: float = 0.03, duplicate_rate: float = 0.01
) -> Iterator[bytes]:
    """About ``n_events`` events (whole DAG runs), interleaved, with some duplicates."""
    rng = random.Random(seed)
    templates = _templates()
    clock = datetime(2026, 1, 1, tzinfo=UTC)
    in_flight: list[list[bytes]] = []
    redeliver: list[tuple[int, bytes]] = []  # (due at this sequence number, event)
    made = sent = 0
    while made < n_events or in_flight:
        while made < n_events and len(in_flight) < CONCURRENT_DAG_RUNS:
            clock += timedelta(seconds=rng.uniform(0, 5))
            run = dag_run(templates, rng, clock, fail_rate)
            made += len(run)
            in_flight.append(run[::-1])  # popped from the end: in order
        run = in_flight[rng.randrange(len(in_flight))]
        event = run.pop()
        if not run:
            in_flight.remove(run)
        yield event
        sent += 1
        if rng.random() < duplicate_rate:
            redeliver.append((sent + rng.randint(1, 200), event))
        while redeliver and redeliver[0][0] <= sent:
            yield redeliver.pop(0)[1]
    for _, event in redeliver:
        yield event


def describe(values: list[bytes]) -> dict[str, float]:
    """Counts the benchmarks report beside their figures."""
    run_ids = {orjson.loads(v)["run"]["runId"] for v in values}
    return {
        "events": len(values),
        "distinct_events": len(set(values)),
        "runs": len(run_ids),
        "avg_kb": sum(map(len, values)) / len(values) / 1024,
    }
