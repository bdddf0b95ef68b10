"""Hostile input: the validator never crashes on anything, and a real worker fed the whole corpus
(plus 10,000 random mutations of the samples) neither crashes nor stalls, and accounts for
every message: stored once, recognised as a duplicate, or dead-lettered with its reason."""

from __future__ import annotations

import asyncio
import re
import sqlite3
from collections import Counter

import httpx
import orjson
import pytest
from aiokafka import AIOKafkaProducer
from hypothesis import given, settings
from hypothesis import strategies as st

from lineage_faust.domain.model import Rejection, ValidEvent, parse_event
from lineage_faust.domain.triage import RawMessage, triage
from lineage_faust.kafka.embedded import free_port
from tests.support.helpers import Stack, create_big_topic, run_cli, wait_until
from tests.support.hostile import mutations, structured

LIMIT = 1 << 20


def classify(corpus: list[bytes]) -> tuple[Counter[str], set]:
    """What the worker must do with each message: reasons of rejections, distinct valid ids."""
    reasons: Counter[str] = Counter()
    valid = set()
    for raw in corpus:
        result = parse_event(raw, LIMIT)
        if isinstance(result, Rejection):
            reasons[result.reason] += 1
        else:
            assert isinstance(result, ValidEvent)
            valid.add(result.event_id)
    return reasons, valid


def test_the_validator_survives_the_corpus() -> None:
    corpus = structured() + mutations(10_000)
    reasons, valid = classify(corpus)  # raises if anything escapes parse_event
    assert sum(reasons.values()) + len(valid) <= len(corpus)
    for kind in ("not_json", "not_utf8", "too_large", "invalid_field", "missing_field"):
        assert reasons[kind] > 0, (kind, reasons)
    messages = [RawMessage(v, None, "t", 0, i) for i, v in enumerate(corpus)]
    batch = triage(messages, max_bytes=LIMIT, partitions=4)
    assert batch.consumed == len(corpus)


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats(allow_nan=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=30,
)


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=2000) | json_values.map(orjson.dumps))
def test_the_validator_never_raises(raw: bytes) -> None:
    assert isinstance(parse_event(raw, LIMIT), ValidEvent | Rejection)


@settings(max_examples=300, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(["eventTime", "eventType", "run", "job", "producer", "inputs", "outputs"]),
        json_values,
    )
)
def test_any_shape_of_event_is_valid_or_rejected(event: dict) -> None:
    assert isinstance(parse_event(orjson.dumps(event), LIMIT), ValidEvent | Rejection)


async def produce_raw(bootstrap: str, topic: str, values: list[bytes]) -> None:
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", linger_ms=10, max_request_size=8 << 20
    )
    await producer.start()
    try:
        futures = [await producer.send(topic, v) for v in values]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


@pytest.mark.integration
def test_a_worker_fed_hostile_input_accounts_for_every_message(stack: Stack) -> None:
    corpus = structured() + mutations(10_000)
    reasons, valid = classify(corpus)
    port = free_port()
    stack.extra_env["LINEAGE_WORKER_PORT"] = str(port)
    if not stack.embedded:  # the corpus has a 2 MB message: more than Kafka takes by default
        asyncio.run(create_big_topic(stack.bootstrap, stack.topic))
    worker = stack.spawn("worker")
    try:
        wait_until(lambda: "Worker]: Ready" in worker.log(), 60, "worker ready")
        asyncio.run(produce_raw(stack.bootstrap, stack.topic, corpus))

        def accounting() -> dict:
            try:
                return httpx.get(f"http://127.0.0.1:{port}/health", timeout=5).json()["accounting"]
            except httpx.HTTPError:
                return {}

        acct = wait_until(
            lambda: a if (a := accounting()).get("consumed") == len(corpus) else None,
            180,
            "every message consumed",
            0.5,
        )
        assert worker.alive()

        # what an operator would run; the offsets are committed within a second or so
        def all_committed(out: str) -> bool:
            return "lag 0" in out and not re.search(r"lag [1-9]", out)

        report = wait_until(
            lambda: r if all_committed((r := run_cli(stack.env, "stats")).stdout) else None,
            30,
            "every offset committed",
            1.0,
        )
        assert report.returncode == 0, report.stdout + report.stderr
        assert f"consumed {len(corpus)} = stored {len(valid)} + deduplicated" in report.stdout
        assert ": holds" in report.stdout
        assert f"dead_letters: {sum(reasons.values())}" in report.stdout
    finally:
        worker.stop()
    assert acct["balanced"], acct
    assert acct["deadLettered"] == sum(reasons.values())
    assert acct["stored"] == len(valid)
    assert acct["deduplicated"] == len(corpus) - len(valid) - sum(reasons.values())
    with sqlite3.connect(stack.db_path) as conn:
        stored = conn.execute("SELECT count(*) FROM events_by_run").fetchone()[0]
        stored += conn.execute("SELECT count(*) FROM non_run_events").fetchone()[0]
        letters = dict(conn.execute("SELECT reason, count(*) FROM dead_letters GROUP BY 1"))
    assert stored == len(valid)
    assert letters == dict(reasons)  # every rejection kept, with its reason
    # nothing of the events' content in the worker's log (error messages, facets, JSON)
    log = worker.log()
    for content in ("intentional failure", "Traceback (most recent", '"eventTime"', "j" * 100):
        assert content not in log, content
