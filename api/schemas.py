"""Response models. The Atlas envelope is kept field for field so Atlas clients work as is."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from lineage_faust.store import RunStatus, StoredEvent


def iso_ms(value: datetime | None) -> str | None:
    """Atlas/Cassandra style: millisecond precision, UTC, trailing Z."""
    if value is None:
        return None
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


class AtlasEvent(BaseModel):
    eventId: str
    source: str
    jobName: str
    runId: str
    eventTime: str | None
    event: str = Field(description="The original OpenLineage JSON text, verbatim")
    status: str | None = Field(description="The event's eventType (absent stays null)")

    @classmethod
    def of(cls, e: StoredEvent) -> AtlasEvent:
        return cls(
            eventId=str(e.event_id),
            source=e.source,
            jobName=e.job_name,
            runId=e.run_id,
            eventTime=iso_ms(e.event_time),
            event=e.event,
            status=e.status,
        )


class Envelope(BaseModel):
    """Atlas's response envelope, used by every Atlas endpoint and every error."""

    success: bool
    message: str | None = None
    error: str | None = None
    runId: str | None = None
    eventCount: int | None = None
    events: list[AtlasEvent] | None = None
    pageSize: int | None = None
    nextPagingState: str | None = None


class Run(BaseModel):
    runId: str
    state: str = Field(description="RUNNING, COMPLETE, FAIL, ABORT, or UNKNOWN (only OTHER events)")
    namespace: str
    job: str
    parentRunId: str | None
    rootRunId: str | None
    startTime: str | None
    endTime: str | None
    durationMs: int | None
    firstEventTime: str | None
    lastEventTime: str | None
    lastEventType: str | None
    eventCount: int
    errorMessage: str | None
    nominalStartTime: str | None
    processingType: str | None
    updatedAt: str | None

    @classmethod
    def of(cls, s: RunStatus) -> Run:
        return cls(
            runId=s.run_id,
            state=s.state,
            namespace=s.namespace,
            job=s.job,
            parentRunId=s.parent_run_id,
            rootRunId=s.root_run_id,
            startTime=iso_ms(s.start_time),
            endTime=iso_ms(s.end_time),
            durationMs=s.duration_ms,
            firstEventTime=iso_ms(s.first_event_time),
            lastEventTime=iso_ms(s.last_event_time),
            lastEventType=s.last_event_type,
            eventCount=s.event_count,
            errorMessage=s.error_message,
            nominalStartTime=s.nominal_start_time,
            processingType=s.processing_type,
            updatedAt=iso_ms(s.updated_at),
        )


class RunResponse(BaseModel):
    success: bool = True
    run: Run
