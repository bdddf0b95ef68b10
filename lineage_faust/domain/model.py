"""OpenLineage event models (spec 2-0-2) and the one entry point that turns raw bytes into a
validated event or a rejection with a human-readable reason.

Lenient where producers are sloppy (unknown fields and facets are ignored here and kept in the
stored original text; a malformed optional facet is dropped, not fatal; ``eventType`` may be
absent or lower-case; ``eventTime`` may carry nanoseconds or no offset). Strict where the data
would be useless: ``eventTime``, ``run.runId``, ``job.namespace`` and ``job.name`` must be there
and be of the right type.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any, TypeVar

import orjson
from pydantic import BaseModel, ConfigDict, Field, PlainValidator, ValidationError, WrapValidator

from lineage_faust.domain.identity import content_hash, event_uuid


class EventType(StrEnum):
    START = "START"
    RUNNING = "RUNNING"
    COMPLETE = "COMPLETE"
    ABORT = "ABORT"
    FAIL = "FAIL"
    OTHER = "OTHER"


TERMINAL_EVENT_TYPES = frozenset({EventType.COMPLETE, EventType.FAIL, EventType.ABORT})

_MIN_TIME = datetime(1970, 1, 1, tzinfo=UTC)
_MAX_TIME = datetime(4000, 1, 1, tzinfo=UTC)
_EPOCH = _MIN_TIME


@dataclass(frozen=True, slots=True)
class EventTime:
    """An event time: an aware UTC datetime (µs) plus 100-ns ticks since 1970 for identity."""

    at: datetime
    ticks: int  # 100-ns intervals since 1970-01-01T00:00:00Z


def ticks_to_datetime(ticks: int | None) -> datetime | None:
    if ticks is None:
        return None
    # half the cost of fromtimestamp + replace; called several times per run state change
    return _EPOCH + timedelta(microseconds=ticks // 10)


def datetime_to_ticks(value: datetime | None) -> int | None:
    if value is None:
        return None
    delta = value - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 10_000_000 + delta.microseconds * 10


def _hundred_ns_digit(value: str) -> int:
    """The 7th fraction digit (100 ns), which datetime cannot hold but the timeuuid can."""
    dot = value.find(".", 10)
    if dot < 0:
        dot = value.find(",", 10)
    if dot < 0 or len(value) <= dot + 7 or not value[dot + 1 : dot + 8].isdigit():
        return 0
    return ord(value[dot + 7]) - 48


def parse_event_time(value: Any) -> EventTime:
    """ISO 8601 with optional fraction (any digits, nanoseconds included) and offset.

    No offset means UTC, as OpenLineage producers that omit it mean.
    """
    if not isinstance(value, str):
        raise ValueError("must be an ISO 8601 string")
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise ValueError(f"{value[:40]!r} is not an ISO 8601 date-time") from None
    at = parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    if not _MIN_TIME <= at < _MAX_TIME:
        raise ValueError(f"{value[:40]!r} is outside 1970..4000")
    delta = at - _EPOCH
    micros = (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
    return EventTime(at=at, ticks=micros * 10 + _hundred_ns_digit(value))


def _event_type(value: Any) -> EventType | None:
    if value is None:
        return None
    if isinstance(value, str):
        try:
            return EventType(value.upper())
        except ValueError:
            pass
    allowed = ", ".join(t.value for t in EventType)
    raise ValueError(f"{str(value)[:40]!r} is not one of {allowed}")


def _drop_if_malformed(value: Any, handler: Any) -> Any:
    """Optional facets: a malformed one is ignored (the original text keeps it)."""
    try:
        return handler(value)
    except ValidationError:
        return None


NonEmptyStr = Annotated[str, Field(min_length=1, max_length=1024)]
EventTimeField = Annotated[EventTime, PlainValidator(parse_event_time)]
EventTypeField = Annotated[EventType | None, PlainValidator(_event_type)]


class _Lenient(BaseModel):
    # Unknown fields are ignored by the model; they survive in the stored original text.
    model_config = ConfigDict(extra="ignore", frozen=True)


class RunRef(_Lenient):
    runId: NonEmptyStr


class JobRef(_Lenient):
    namespace: NonEmptyStr
    name: NonEmptyStr


class RootRef(_Lenient):
    run: RunRef
    job: JobRef | None = None


class ParentRunFacet(_Lenient):
    run: RunRef
    job: JobRef | None = None
    root: Annotated[RootRef | None, WrapValidator(_drop_if_malformed)] = None


class ErrorMessageRunFacet(_Lenient):
    message: str | None = None
    programmingLanguage: str | None = None
    stackTrace: str | None = None


class NominalTimeRunFacet(_Lenient):
    nominalStartTime: str | None = None
    nominalEndTime: str | None = None


# try numbers and retry counts are small; anything else is dropped (as a malformed facet is)
SmallCount = Annotated[int, Field(ge=0, le=1_000_000)]


class AirflowTaskInstance(_Lenient):
    try_number: SmallCount | None = None


class AirflowTask(_Lenient):
    retries: SmallCount | None = None


class AirflowRunFacet(_Lenient):
    """The parts of Airflow's ``airflow`` run facet that decide whether a failed try retries."""

    taskInstance: Annotated[AirflowTaskInstance | None, WrapValidator(_drop_if_malformed)] = None
    task: Annotated[AirflowTask | None, WrapValidator(_drop_if_malformed)] = None


class DatasetStatisticsFacet(_Lenient):
    """outputStatistics / inputStatistics / dataQualityMetrics: the counts ops look at."""

    rowCount: int | None = None
    size: int | None = None


class JobTypeJobFacet(_Lenient):
    processingType: str | None = None
    integration: str | None = None
    jobType: str | None = None


M = TypeVar("M", bound=BaseModel)


def facet(facets: Any, name: str, model: type[M]) -> M | None:
    """One facet, validated on demand; a missing or malformed facet reads as None.

    Facets are not validated with the event: most are never read here (they are kept in the
    stored text), and validating them all would triple the cost of every event.
    """
    if not isinstance(facets, dict):
        return None
    raw = facets.get(name)
    if raw is None:
        return None
    try:
        return model.model_validate(raw)
    except ValidationError:
        return None


class Run(_Lenient):
    runId: NonEmptyStr
    facets: Any = None  # read with facet(): parent, errorMessage, nominalTime, ...

    def facet(self, name: str, model: type[M]) -> M | None:
        return facet(self.facets, name, model)


class Job(_Lenient):
    namespace: NonEmptyStr
    name: NonEmptyStr
    facets: Any = None  # read with facet(): jobType, ...

    def facet(self, name: str, model: type[M]) -> M | None:
        return facet(self.facets, name, model)


class _BaseEvent(_Lenient):
    """What every OpenLineage event carries (``producer`` is the Atlas ``source``)."""

    eventTime: EventTimeField
    producer: str = ""
    schemaURL: str | None = None


class RunEvent(_BaseEvent):
    eventType: EventTypeField = None
    run: Run
    job: Job
    inputs: Any = None  # read with lineage_faust.domain.datasets (a malformed entry is skipped)
    outputs: Any = None


class JobEvent(_BaseEvent):
    job: Job
    inputs: Any = None
    outputs: Any = None


class DatasetRef(_Lenient):
    namespace: NonEmptyStr
    name: NonEmptyStr
    facets: Any = None
    inputFacets: Any = None
    outputFacets: Any = None


class DatasetEvent(_BaseEvent):
    dataset: DatasetRef


# --------------------------------------------------------------------------- parse results


@dataclass(frozen=True, slots=True)
class ValidEvent:
    """A validated event, ready to store. ``text`` is the original JSON, verbatim."""

    event_id: uuid.UUID
    event_time: EventTime
    producer: str
    text: str
    payload: RunEvent | JobEvent | DatasetEvent

    @property
    def is_run_event(self) -> bool:
        return isinstance(self.payload, RunEvent)


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why a message is not a usable event. ``reason`` is a stable code, ``detail`` prose."""

    reason: str
    detail: str
    field: str | None = None


def _describe(error: ValidationError) -> Rejection:
    first = error.errors(include_url=False, include_input=False)[0]
    loc = ".".join(str(p) for p in first["loc"]) or None
    msg = first["msg"].removeprefix("Value error, ")
    kind = "missing_field" if first["type"] == "missing" else "invalid_field"
    more = error.error_count() - 1
    suffix = f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""
    return Rejection(kind, f"{loc}: {msg}{suffix}" if loc else f"{msg}{suffix}", loc)


_KINDS: dict[str, type[RunEvent | JobEvent | DatasetEvent]] = {
    "RunEvent": RunEvent,
    "JobEvent": JobEvent,
    "DatasetEvent": DatasetEvent,
}


def event_kind(obj: dict[str, Any]) -> type[RunEvent | JobEvent | DatasetEvent] | None:
    """Which of the spec's three events ``obj`` is: by the definition its ``schemaURL``
    names (``…/OpenLineage.json#/definitions/JobEvent`` or ``…#/$defs/JobEvent``), else by
    shape. Real JobEvents carry ``eventType`` too, so it alone never makes a RunEvent."""
    url = obj.get("schemaURL")
    if isinstance(url, str):
        name = url.rpartition("#")[2].rstrip("/").rpartition("/")[2]
        if name in _KINDS:
            return _KINDS[name]
    if "run" in obj:
        return RunEvent
    if "dataset" in obj:
        return DatasetEvent
    if "job" in obj:
        # with no schemaURL to say otherwise, eventType marks a RunEvent that lost its run:
        # rejected as one (missing run), not stored as a job
        return RunEvent if "eventType" in obj else JobEvent
    return RunEvent if "eventType" in obj else None


def parse_event(raw: bytes | None, max_bytes: int) -> ValidEvent | Rejection:
    """Raw message bytes -> a validated event, or a rejection saying exactly what is wrong.

    One JSON parse, one validation, one canonical dump for the identity hash.
    """
    if raw is None:
        return Rejection("empty", "message has no value (tombstone or null)")
    if len(raw) > max_bytes:
        return Rejection("too_large", f"message is {len(raw)} bytes, the limit is {max_bytes}")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return Rejection("not_utf8", f"not UTF-8: invalid byte at position {exc.start}")
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        return Rejection("not_json", f"not JSON: {exc}")
    if not isinstance(obj, dict):
        return Rejection("not_object", f"JSON {type(obj).__name__} where an object was expected")
    model = event_kind(obj)
    if model is None:
        return Rejection(
            "not_openlineage", "not an OpenLineage event: it has no run, job or dataset", None
        )
    try:
        payload = model.model_validate(obj)
    except ValidationError as exc:
        return _describe(exc)
    canonical = orjson.dumps(obj, option=orjson.OPT_SORT_KEYS)
    assert isinstance(payload, _BaseEvent)
    return ValidEvent(
        event_id=event_uuid(payload.eventTime.ticks, content_hash(canonical)),
        event_time=payload.eventTime,
        producer=payload.producer,
        text=text,
        payload=payload,  # type: ignore[arg-type]
    )
