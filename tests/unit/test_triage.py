"""Batch triage: storage, dead letters with reasons and source, updates grouped by run owner."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson

from lineage_faust.domain.identity import run_partition
from lineage_faust.domain.triage import (
    MAX_UPDATES_MESSAGE_BYTES,
    RawMessage,
    decode_updates,
    triage,
)
from tests.support.helpers import SAMPLES
from tests.support.olclient import job_event


def messages(values: list[bytes | None]) -> list[RawMessage]:
    return [
        RawMessage(v, b"key", "events", 3, 100 + i, (("trace", b"abc"),))
        for i, v in enumerate(values)
    ]


def test_batch_is_split_into_store_dead_letters_and_updates() -> None:
    samples = SAMPLES.read_bytes().splitlines()
    batch = triage(
        messages([*samples, b"oops", None, job_event()]), max_bytes=1 << 20, partitions=4
    )
    assert len(batch.run_events) == 28 and len(batch.non_run_events) == 1
    assert [r.rejection.reason for r in batch.rejected] == ["not_json", "empty"]
    assert batch.consumed == 31
    forwarded = []
    for partition, values in batch.update_messages.items():
        for value in values:
            for update in decode_updates(value):
                assert run_partition(update.run_id, 4) == partition
                forwarded.append(update.event_id)
    assert sorted(forwarded) == sorted(str(e.event_id) for e in batch.run_events)


def test_dead_letter_headers_name_reason_and_source() -> None:
    bad = orjson.dumps(
        {"eventTime": "2026-01-01T00:00:00Z", "run": {"runId": "r"}, "job": {"namespace": "n"}}
    )
    [rejected] = triage(messages([bad]), max_bytes=1 << 20, partitions=4).rejected
    headers = dict(rejected.dlq_headers())
    assert headers["lineage.dlq.reason"] == b"missing_field"
    assert headers["lineage.dlq.field"] == b"job.name"
    assert b"job.name" in headers["lineage.dlq.detail"]
    assert headers["lineage.source.topic"] == b"events"
    assert headers["lineage.source.partition"] == b"3"
    assert headers["lineage.source.offset"] == b"100"
    assert headers["trace"] == b"abc"  # the producer's own headers travel along
    letter = rejected.dead_letter(datetime.now(UTC))
    assert letter.value == bad and letter.key == b"key"


def test_big_batches_are_split_under_the_message_size_cap() -> None:
    error = "x" * 4000
    values = [
        orjson.dumps(
            {
                "eventTime": "2026-01-01T00:00:00Z",
                "eventType": "FAIL",
                "run": {
                    "runId": "same-run",
                    "facets": {
                        "errorMessage": {"message": f"{error}{i}", "programmingLanguage": "py"}
                    },
                },
                "job": {"namespace": "n", "name": "j"},
            }
        )
        for i in range(400)
    ]
    batch = triage(messages(values), max_bytes=1 << 20, partitions=4)
    [chunks] = batch.update_messages.values()
    assert len(chunks) > 1
    assert all(len(c) <= MAX_UPDATES_MESSAGE_BYTES for c in chunks)
    assert sum(len(decode_updates(c)) for c in chunks) == 400
