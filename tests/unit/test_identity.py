"""Event identity: deterministic, content-sensitive, a real timeuuid of the event time."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import orjson
from hypothesis import given
from hypothesis import strategies as st

from lineage_faust.domain.identity import event_uuid, run_partition, sort_key, uuid_unix_ticks
from lineage_faust.domain.model import ValidEvent, parse_event
from tests.support.helpers import SAMPLES


def _event(**extra: object) -> dict:
    return {
        "eventTime": "2026-11-21T10:00:00.123Z",
        "eventType": "RUNNING",
        "run": {"runId": "run-1"},
        "job": {"namespace": "ns", "name": "job"},
        **extra,
    }


def _id(obj: dict | bytes) -> uuid.UUID:
    raw = obj if isinstance(obj, bytes) else orjson.dumps(obj)
    result = parse_event(raw, 1 << 20)
    assert isinstance(result, ValidEvent)
    return result.event_id


def test_same_event_same_id_whatever_the_formatting() -> None:
    obj = _event(facets={"b": 1, "a": 2})
    compact = orjson.dumps(obj)
    pretty = orjson.dumps(obj, option=orjson.OPT_INDENT_2)
    reordered = orjson.dumps(dict(reversed(list(obj.items()))))
    assert _id(compact) == _id(pretty) == _id(reordered) == _id(compact)


def test_different_events_in_the_same_millisecond_get_different_ids() -> None:
    ids = {_id(_event(seq=i)) for i in range(2000)}
    assert len(ids) == 2000
    # ... and all of them still carry the event's time (Atlas-compatible timeuuids).
    expected_ms = int(datetime(2026, 11, 21, 10, 0, 0, tzinfo=UTC).timestamp()) * 1000 + 123
    assert {uuid_unix_ticks(i) // 10_000 for i in ids} == {expected_ms}


def test_ids_are_version_1_timeuuids_of_the_event_time() -> None:
    for line in SAMPLES.read_bytes().splitlines():
        result = parse_event(line, 1 << 20)
        assert isinstance(result, ValidEvent)
        assert result.event_id.version == 1
        assert result.event_id.variant == uuid.RFC_4122
        assert uuid_unix_ticks(result.event_id) == result.event_time.ticks


@given(st.integers(0, (1 << 59)), st.integers(0, (1 << 64) - 1), st.integers(0, (1 << 64) - 1))
def test_sort_key_orders_by_time_first(ticks: int, h1: int, h2: int) -> None:
    earlier, later = event_uuid(ticks, h1), event_uuid(ticks + 1, h2)
    assert sort_key(earlier) < sort_key(later)


@given(st.text(min_size=1, max_size=80), st.integers(1, 64))
def test_run_partition_is_stable_and_in_range(run_id: str, partitions: int) -> None:
    p = run_partition(run_id, partitions)
    assert 0 <= p < partitions
    assert p == run_partition(run_id, partitions)
