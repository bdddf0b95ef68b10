"""Validation: what is accepted, what is rejected, and that the reason says why."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st
from openlineage.client.event_v2 import RunState

from lineage_faust.domain.model import (
    DatasetEvent,
    ErrorMessageRunFacet,
    EventType,
    JobEvent,
    JobTypeJobFacet,
    NominalTimeRunFacet,
    ParentRunFacet,
    Rejection,
    RunEvent,
    ValidEvent,
    parse_event,
    parse_event_time,
)
from tests.support.helpers import SAMPLES
from tests.support.olclient import dataset_event, job_event, new_run_id, run_event

LIMIT = 1 << 20


def minimal(**overrides: object) -> dict:
    event: dict = {
        "eventTime": "2026-11-21T10:00:00.000Z",
        "eventType": "START",
        "producer": "https://example.com/producer",
        "schemaURL": "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent",
        "run": {"runId": "d46e465b-d358-4d32-83d4-df660ff614dd"},
        "job": {"namespace": "ns", "name": "job"},
    }
    event.update(overrides)
    return event


def parse(obj: object) -> ValidEvent | Rejection:
    return parse_event(orjson.dumps(obj), LIMIT)


def test_every_airflow_sample_is_valid_and_text_is_verbatim() -> None:
    lines = [line for line in SAMPLES.read_bytes().splitlines() if line.strip()]
    assert len(lines) == 28
    for line in lines:
        result = parse_event(line, LIMIT)
        assert isinstance(result, ValidEvent), result
        assert isinstance(result.payload, RunEvent)
        assert result.text == line.decode()


def test_events_built_with_the_openlineage_client_are_valid() -> None:
    parent = new_run_id()
    raw = run_event(RunState.FAIL, new_run_id(), parent=(parent, "dag"), error="boom")
    result = parse_event(raw, LIMIT)
    assert isinstance(result, ValidEvent)
    run, job = result.payload.run, result.payload.job
    assert result.payload.eventType is EventType.FAIL
    parent_facet = run.facet("parent", ParentRunFacet)
    assert parent_facet.run.runId == parent and parent_facet.root.run.runId == parent
    assert run.facet("errorMessage", ErrorMessageRunFacet).message == "boom"
    assert job.facet("jobType", JobTypeJobFacet).processingType == "BATCH"


def test_job_and_dataset_events_are_kept_not_rejected() -> None:
    job = parse_event(job_event(), LIMIT)
    dataset = parse_event(dataset_event(), LIMIT)
    assert isinstance(job, ValidEvent) and isinstance(job.payload, JobEvent)
    assert isinstance(dataset, ValidEvent) and isinstance(dataset.payload, DatasetEvent)
    assert not job.is_run_event and not dataset.is_run_event


def test_unknown_fields_and_facets_survive_in_the_stored_text() -> None:
    obj = minimal(custom={"x": [1, 2]})
    obj["run"]["facets"] = {"myFacet": {"_producer": "p", "value": 42}}
    result = parse(obj)
    assert isinstance(result, ValidEvent)
    assert orjson.loads(result.text) == obj


def test_event_type_is_optional_and_case_insensitive() -> None:
    absent = parse({k: v for k, v in minimal().items() if k != "eventType"})
    lower = parse(minimal(eventType="complete"))
    assert isinstance(absent, ValidEvent) and absent.payload.eventType is None
    assert isinstance(lower, ValidEvent) and lower.payload.eventType is EventType.COMPLETE


def test_malformed_optional_facet_is_dropped_not_fatal() -> None:
    obj = minimal()
    obj["run"]["facets"] = {"parent": "not-an-object", "errorMessage": {"message": 5}}
    result = parse(obj)
    assert isinstance(result, ValidEvent)
    assert result.payload.run.facet("parent", ParentRunFacet) is None
    assert result.payload.run.facet("errorMessage", ErrorMessageRunFacet) is None
    assert result.payload.run.facet("nominalTime", NominalTimeRunFacet) is None


@pytest.mark.parametrize(
    ("text", "at", "ticks_fraction"),
    [
        ("2026-11-21T10:00:00.123456789Z", datetime(2026, 11, 21, 10, 0, 0, 123456, UTC), 1234567),
        ("2026-11-21T10:00:00", datetime(2026, 11, 21, 10, 0, 0, tzinfo=UTC), 0),
        ("2026-11-21T12:00:00.5+02:00", datetime(2026, 11, 21, 10, 0, 0, 500000, UTC), 5000000),
        ("2026-11-21 10:00:00.25-0130", datetime(2026, 11, 21, 11, 30, 0, 250000, UTC), 2500000),
    ],
)
def test_event_time_nanoseconds_and_offsets(text: str, at: datetime, ticks_fraction: int) -> None:
    parsed = parse_event_time(text)
    assert parsed.at == at
    assert parsed.ticks % 10_000_000 == ticks_fraction


@pytest.mark.parametrize(
    ("raw", "reason", "field", "words"),
    [
        (b"not json", "not_json", None, "not JSON"),
        (b"[1, 2]", "not_object", None, "list"),
        (b"\xff\xfe{}", "not_utf8", None, "UTF-8"),
        (b'{"a": NaN}', "not_json", None, "not JSON"),
        (orjson.dumps({"foo": 1}), "not_openlineage", None, "no run, job or dataset"),
        (
            orjson.dumps({k: v for k, v in minimal().items() if k != "eventTime"}),
            "missing_field",
            "eventTime",
            "required",
        ),
        (orjson.dumps(minimal(eventTime="yesterday")), "invalid_field", "eventTime", "ISO 8601"),
        (orjson.dumps(minimal(eventTime=1700000000)), "invalid_field", "eventTime", "string"),
        (orjson.dumps(minimal(eventType="DONE")), "invalid_field", "eventType", "not one of"),
        (orjson.dumps(minimal(run={"runId": ""})), "invalid_field", "run.runId", "at least 1"),
        (orjson.dumps(minimal(run={"facets": {}})), "missing_field", "run.runId", "required"),
        (orjson.dumps(minimal(run="abc")), "invalid_field", "run", "valid dictionary"),
        (orjson.dumps(minimal(job={"name": "x"})), "missing_field", "job.namespace", "required"),
        (
            orjson.dumps(minimal(job={"namespace": "n", "name": 7})),
            "invalid_field",
            "job.name",
            "string",
        ),
        (
            orjson.dumps({k: v for k, v in minimal().items() if k != "run"}),
            "missing_field",
            "run",
            "required",
        ),
    ],
)
def test_rejections_name_the_problem(
    raw: bytes, reason: str, field: str | None, words: str
) -> None:
    result = parse_event(raw, LIMIT)
    assert isinstance(result, Rejection)
    assert result.reason == reason
    assert result.field == field
    assert words in result.detail
    if field:
        assert result.detail.startswith(field)


def test_size_limit_and_empty_message() -> None:
    big = orjson.dumps(minimal(pad="x" * 5000))
    rejected = parse_event(big, 4096)
    assert isinstance(rejected, Rejection) and rejected.reason == "too_large"
    assert str(len(big)) in rejected.detail
    assert isinstance(parse_event(big, len(big)), ValidEvent)
    empty = parse_event(None, LIMIT)
    assert isinstance(empty, Rejection) and empty.reason == "empty"


# ---- which of the spec's three events: schemaURL's definition name first, then shape ----------
SPEC = "https://openlineage.io/spec/2-0-2/OpenLineage.json"
KINDS = {"RunEvent": RunEvent, "JobEvent": JobEvent, "DatasetEvent": DatasetEvent}


def spec_event(kind: str) -> dict:
    event: dict = {"eventTime": "2026-11-21T10:00:00Z", "producer": "https://example.com/p"}
    if kind == "RunEvent":
        event["run"] = {"runId": "d46e465b-d358-4d32-83d4-df660ff614dd"}
    if kind in ("RunEvent", "JobEvent"):
        event["job"] = {"namespace": "ns", "name": "job"}
    else:
        event["dataset"] = {"namespace": "ns", "name": "table"}
    return event


def test_a_real_job_event_that_carries_an_event_type_is_stored_as_a_job_event() -> None:
    # as another OpenLineage backend's test suite sends it
    event = {
        **spec_event("JobEvent"),
        "schemaURL": f"{SPEC}#/definitions/JobEvent",
        "eventType": "COMPLETE",
        "inputs": [{"namespace": "db", "name": "in"}],
    }
    result = parse_event(orjson.dumps(event), LIMIT)
    assert isinstance(result, ValidEvent) and isinstance(result.payload, JobEvent)


@given(
    kind=st.sampled_from(sorted(KINDS)),
    event_type=st.sampled_from([None, "COMPLETE", "start", "OTHER"]),
    url=st.sampled_from(["definitions", "$defs", "none", "unknown", "no-fragment"]),
)
def test_event_kind_follows_schema_url_then_shape(
    kind: str, event_type: str | None, url: str
) -> None:
    event = spec_event(kind)
    if event_type is not None:
        event["eventType"] = event_type
    if url in ("definitions", "$defs"):
        event["schemaURL"] = f"{SPEC}#/{url}/{kind}"
    elif url == "unknown":
        event["schemaURL"] = f"{SPEC}#/$defs/SomethingElse"
    elif url == "no-fragment":
        event["schemaURL"] = SPEC
    result = parse_event(orjson.dumps(event), LIMIT)
    by_url = url in ("definitions", "$defs")
    if kind == "JobEvent" and event_type is not None and not by_url:
        # no schemaURL to say otherwise: eventType marks a RunEvent that lost its run
        assert isinstance(result, Rejection) and result.field == "run", result
    else:
        assert isinstance(result, ValidEvent), result
        assert isinstance(result.payload, KINDS[kind])


def test_schema_url_wins_over_shape() -> None:
    run_shaped = {**spec_event("RunEvent"), "schemaURL": f"{SPEC}#/$defs/JobEvent"}
    result = parse_event(orjson.dumps(run_shaped), LIMIT)
    assert isinstance(result, ValidEvent) and isinstance(result.payload, JobEvent)
    # a RunEvent by its schemaURL is held to the RunEvent's required fields
    no_run = {**spec_event("JobEvent"), "schemaURL": f"{SPEC}#/definitions/RunEvent"}
    result = parse_event(orjson.dumps(no_run), LIMIT)
    assert isinstance(result, Rejection) and result.reason == "missing_field"
