"""Response models. The Atlas envelope is kept field for field so Atlas clients work as is."""

from __future__ import annotations

from pydantic import BaseModel, Field

from lineage_faust.domain.incidents import Incident, timings
from lineage_faust.domain.times import iso_ms, iso_text
from lineage_faust.store import RunStatus, StoredEvent

__all__ = ["iso_ms", "iso_text"]  # the one time format, re-exported for the routes


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
    tryNumber: int | None = Field(None, description="Which attempt this run is (Airflow: the try)")
    maxTries: int | None = Field(None, description="Attempts the producer allows, where it says")
    retried: bool = Field(False, description="A failed attempt the producer runs again")

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
            nominalStartTime=iso_text(s.nominal_start_time),
            processingType=s.processing_type,
            updatedAt=iso_ms(s.updated_at),
            tryNumber=s.try_number,
            maxTries=s.max_tries,
            retried=s.retried,
        )


RUN_EXAMPLE = {
    "runId": "019a2b7c-5d1e-7f3a-9c4b-2e8f6a1d3c5b",
    "state": "FAIL",
    "namespace": "airflow://prod",
    "job": "etl_orders.load_orders",
    "parentRunId": "019a2b7c-0000-7000-8000-000000000001",
    "rootRunId": "019a2b7c-0000-7000-8000-000000000001",
    "startTime": "2026-11-21T10:00:00.000Z",
    "endTime": "2026-11-21T10:04:12.500Z",
    "durationMs": 252500,
    "firstEventTime": "2026-11-21T10:00:00.000Z",
    "lastEventTime": "2026-11-21T10:04:12.500Z",
    "lastEventType": "FAIL",
    "eventCount": 3,
    "errorMessage": "psycopg2.OperationalError: connection refused",
    "nominalStartTime": "2026-11-21T10:00:00.000Z",
    "processingType": "BATCH",
    "updatedAt": "2026-11-21T10:04:13.020Z",
    "tryNumber": 2,
    "maxTries": 2,
    "retried": False,
}


class RunLink(BaseModel):
    """Another run this one points to (its parent DAG run), with its state when stored."""

    runId: str
    href: str
    namespace: str | None = None
    job: str | None = None
    state: str | None = None


class RunResponse(BaseModel):
    success: bool = True
    run: Run
    parent: RunLink | None = Field(
        None, description="The run's parent (a task run's DAG run), if it has one"
    )
    children: list[Run] = Field(
        description="Runs whose parent is this run (a DAG run's task runs) by start, first page"
    )
    childrenNextCursor: str | None = Field(
        None, description="More children: GET /api/v1/runs/{runId}/children?cursor=..."
    )

    model_config = {
        "json_schema_extra": {
            "example": {
                "success": True,
                "run": RUN_EXAMPLE,
                "parent": None,
                "children": [],
                "childrenNextCursor": None,
            }
        }
    }


class RunList(BaseModel):
    """A page of runs. Pass ``nextCursor`` back as ``cursor`` for the next page; a page may
    hold fewer than ``limit`` runs and still have a next one."""

    success: bool = True
    count: int
    runs: list[Run]
    nextCursor: str | None

    model_config = {
        "json_schema_extra": {
            "example": {"success": True, "count": 1, "runs": [RUN_EXAMPLE], "nextCursor": None}
        }
    }


class JobSummary(BaseModel):
    """Figures over the runs of this page (the newest ``limit`` runs on the first page)."""

    runs: int = Field(description="Runs of the page, retried attempts left out")
    retriedTries: int = Field(0, description="Failed attempts that were run again (not counted)")
    lastState: str | None = Field(description="State of the newest run on the page")
    states: dict[str, int] = Field(description="How many runs of the page are in each state")
    successRate: float | None = Field(
        description="COMPLETE / finished (COMPLETE+FAIL+ABORT) runs; null when none finished"
    )
    medianDurationMs: float | None = Field(description="Over the page's finished runs")


class JobRuns(BaseModel):
    success: bool = True
    namespace: str
    job: str
    summary: JobSummary
    count: int
    runs: list[Run]
    nextCursor: str | None


class DeadLetterOut(BaseModel):
    topic: str = Field(description="Where the rejected message came from")
    partition: int
    offset: int
    reason: str = Field(description="Stable code: not_json, missing_field, too_large, ...")
    detail: str
    field: str | None
    receivedAt: str | None
    key: str | None = Field(description="The message key (UTF-8, or base64 when binary)")
    value: str | None = Field(description="The original bytes: UTF-8, or base64 when binary")
    valueEncoding: str = Field(description="utf-8 or base64")
    valueBytes: int = Field(description="Size of the original value")
    valueTruncated: bool = Field(description="value holds only the first bytes (64 KiB)")
    valueSha256: str | None = Field(
        None, description="SHA-256 of the original value (hex), to match the dead-letter topic"
    )


class DeadLetters(BaseModel):
    success: bool = True
    count: int
    deadLetters: list[DeadLetterOut]


class IngestProblem(BaseModel):
    index: int = Field(description="Position of the event in the request (0 for one event)")
    reason: str
    detail: str
    field: str | None


class IngestError(Envelope):
    details: list[IngestProblem] | None = None


class Ingested(BaseModel):
    success: bool = True
    accepted: int = Field(description="Events acknowledged by the broker")
    topic: str


class ApiHealth(BaseModel):
    success: bool = True
    store: str = Field(description="ok")
    broker: str = Field(description="ok, connecting, or not configured (HTTP ingest only)")


class AlertOut(BaseModel):
    """One alert: the same JSON the alerts topic and webhooks carry."""

    alertId: str = Field(description="Deterministic: the same condition of a run, the same id")
    kind: str = Field(
        description="failed, retrying_failure, stuck, overdue, recovered, stale or fresh"
    )
    severity: str = Field(description="info, warning or critical")
    paged: bool = Field(
        description="Sent to webhooks (retrying failures, and failures that joined an incident "
        "that already paged, are recorded only)"
    )
    runId: str = Field(description="The run (stale/fresh: the dataset's last writer)")
    namespace: str
    job: str
    state: str
    raisedAt: str
    parentRunId: str | None
    rootRunId: str | None
    errorMessage: str | None
    stackTrace: str | None = Field(description="The first lines of the stack trace")
    startedAt: str | None
    endedAt: str | None
    tryNumber: int | None
    detail: str
    incidentId: str = Field(description="The incident this alert belongs to")
    pagedBy: str | None = Field(description="Joined an incident: the alert that paged for it")
    datasetNamespace: str | None = Field(description="stale / fresh: the dataset")
    datasetName: str | None
    blastRadius: dict | None = Field(
        None,
        description="A failure's page: what its job feeds downstream (datasets, jobs: counts; "
        "firstDatasets, firstJobs: the nearest names; truncated) and likelyCause (the nearest "
        "job upstream whose latest run failed)",
    )
    runUrl: str | None
    incidentUrl: str = Field(description="The incident on the ops board")
    lineageUrl: str = Field(description="The incident's blast radius on the board's lineage view")


class LineageEdge(BaseModel):
    origin: str
    destination: str


class LineageNode(BaseModel):
    id: str = Field(description="dataset:<namespace>:<name> or job:<namespace>:<name>")
    type: str = Field(description="DATASET or JOB")
    data: dict = Field(
        description="JOB: latestRun (runId, state, time), openIncident; DATASET: "
        "lastGoodWrite (runId, time, job), stale, atRisk (a writer in the graph failed after "
        "the last good write)"
    )
    inEdges: list[LineageEdge]
    outEdges: list[LineageEdge]


class LineageGraph(BaseModel):
    """Marquez's lineage shape (``graph``), with live states on every node."""

    success: bool = True
    graph: list[LineageNode]
    truncated: bool = Field(description="More nodes were reachable than the limit")


class BlastNode(BaseModel):
    namespace: str
    name: str
    distance: int = Field(description="Edges from the nearest failing job")
    stale: bool | None = Field(None, description="Datasets: past their freshness expectation")


class LikelyCause(BaseModel):
    namespace: str
    name: str
    runId: str
    state: str = Field(description="FAIL or ABORT")
    endedAt: str | None
    distance: int = Field(description="Edges upstream of the failing node")


class BlastRadius(BaseModel):
    """What the incident's failing jobs feed, transitively (bounded: depth 10, 500 nodes)."""

    datasets: list[BlastNode]
    jobs: list[BlastNode]
    staleDatasets: int
    truncated: bool
    likelyCause: LikelyCause | None = Field(
        None,
        description="The nearest job upstream (depth 10) whose latest run failed: what the "
        "failing jobs likely failed for",
    )


class IncidentOut(BaseModel):
    """One incident: the alert that paged for it, its root cause, and every alert in it in the
    order their runs ended."""

    success: bool = True
    incidentId: str
    page: AlertOut | None = Field(description="The alert that paged (none: nothing paged)")
    rootCause: AlertOut = Field(
        description="The failure whose run ended first: the innermost cause (it is the page "
        "unless failures of one run tree reached the worker out of order)"
    )
    count: int
    alerts: list[AlertOut]
    lifecycle: IncidentRecord | None = Field(
        None, description="Its state and every change (none: raised before lifecycles were kept)"
    )
    blastRadius: BlastRadius | None = Field(
        None, description="What its failing jobs feed downstream (none without a lifecycle)"
    )


class IncidentChange(BaseModel):
    at: str
    state: str = Field(description="open, acknowledged or resolved")
    by: str = Field(description="Who: a user, 'page' (the worker opened it) or lineage-faust")
    note: str = ""


class IncidentTimes(BaseModel):
    """Seconds from the failure (its run's end, or when a dataset went stale)."""

    detect: float | None = Field(description="To the page")
    acknowledge: float | None = Field(description="To its acknowledgement")
    resolve: float | None = Field(description="To its resolution")


class IncidentRecord(BaseModel):
    """An incident's lifecycle: open -> acknowledged -> resolved (and reopened)."""

    incidentId: str
    state: str = Field(description="open, acknowledged or resolved")
    kind: str
    severity: str
    namespace: str
    name: str = Field(description="The page's job (or dataset) name")
    pageAlertId: str
    failedAt: str
    openedAt: str
    acknowledgedAt: str | None
    acknowledgedBy: str | None
    resolvedAt: str | None
    resolvedBy: str | None
    failing: dict[str, str] = Field(
        description="What failed and has not recovered (job:ns/name or dataset:ns/name -> when)"
    )
    recovered: dict[str, str] = Field(description="What failed and recovered since -> when")
    reopened: int
    alertIds: list[str]
    changes: list[IncidentChange]
    times: IncidentTimes
    url: str

    @classmethod
    def of(cls, incident: Incident, public_url: str) -> IncidentRecord:
        return cls(
            incidentId=incident.incident_id,
            state=incident.state,
            kind=incident.kind,
            severity=incident.severity,
            namespace=incident.namespace,
            name=incident.name,
            pageAlertId=incident.page_alert_id,
            failedAt=iso_ms(incident.failed_at),
            openedAt=iso_ms(incident.opened_at),
            acknowledgedAt=iso_ms(incident.acknowledged_at),
            acknowledgedBy=incident.acknowledged_by,
            resolvedAt=iso_ms(incident.resolved_at),
            resolvedBy=incident.resolved_by,
            failing=incident.pending,
            recovered=incident.recovered,
            reopened=incident.reopened,
            alertIds=incident.alert_ids,
            changes=[IncidentChange(**c) for c in incident.changes],
            times=IncidentTimes(**timings(incident)),
            url=f"{public_url.rstrip('/')}/#incident/{incident.incident_id}",
        )


class IncidentList(BaseModel):
    success: bool = True
    count: int
    incidents: list[IncidentRecord]
    nextCursor: str | None


class IncidentChangeIn(BaseModel):
    note: str = Field("", max_length=2000, description="Why, what was done")
    by: str | None = Field(
        None,
        max_length=200,
        description="Who, where the API has no users (with HTTP Basic the user's name is used)",
    )


class Percentiles(BaseModel):
    p50: float | None
    p90: float | None


class IncidentStats(BaseModel):
    """Incidents opened in a window, and their times (seconds, from the failure)."""

    count: int
    open: int
    detect: Percentiles
    acknowledge: Percentiles
    resolve: Percentiles


class ScopedIncidentStats(IncidentStats):
    namespace: str
    name: str | None = Field(description="The job (or dataset); none: the whole namespace")


class JobIncidents(BaseModel):
    success: bool = True
    namespace: str
    job: str
    last7Days: IncidentStats
    last30Days: IncidentStats
    open: list[IncidentRecord] = Field(description="Its incidents not resolved (last 30 days)")
    truncated: bool


class IncidentSummary(BaseModel):
    success: bool = True
    days: int
    since: str
    total: IncidentStats
    byNamespace: list[ScopedIncidentStats]
    byJob: list[ScopedIncidentStats] = Field(description="Worst time to resolve first")
    truncated: bool = Field(description="More incidents in the window than were read")


class StaleDataset(BaseModel):
    namespace: str
    name: str
    ageSeconds: float = Field(description="Since its last successful write")
    maxAgeSeconds: float
    staleSince: str = Field(description="When the sweep found it stale")
    lastWrite: str
    lastWriterRunId: str
    lastWriterNamespace: str
    lastWriterJob: str


class StaleDatasetList(BaseModel):
    success: bool = True
    count: int
    datasets: list[StaleDataset]


class AlertList(BaseModel):
    success: bool = True
    count: int
    alerts: list[AlertOut]
    nextCursor: str | None


class DatasetWrite(BaseModel):
    """A run that wrote the dataset."""

    runId: str
    namespace: str = Field(description="The writing job's namespace")
    job: str
    state: str
    time: str | None = Field(description="When the run ended (or its last event)")
    rowCount: int | None
    sizeBytes: int | None


class JobLink(BaseModel):
    namespace: str
    name: str
    lastSeen: str


class DatasetResponse(BaseModel):
    success: bool = True
    namespace: str
    name: str
    lastSuccessfulWrite: DatasetWrite | None
    lastFailedWrite: DatasetWrite | None = Field(
        description="The latest run that meant to write it and failed (FAIL/ABORT)"
    )
    freshnessSeconds: float | None = Field(
        description="Age of the last successful write; null if none is known"
    )
    writers: list[JobLink]
    readers: list[JobLink]


class DatasetRunOut(BaseModel):
    runId: str
    href: str
    direction: str = Field(description="input (read) or output (written)")
    namespace: str = Field(description="The job's namespace")
    job: str
    state: str | None = Field(description="The run's state; null if its status is not stored")
    eventTime: str
    startTime: str | None
    endTime: str | None
    rowCount: int | None
    sizeBytes: int | None


class DatasetRuns(BaseModel):
    success: bool = True
    namespace: str
    name: str
    count: int
    runs: list[DatasetRunOut]
    nextCursor: str | None


class ImpactedDataset(BaseModel):
    namespace: str
    name: str
    declaredByRun: bool = Field(description="The run named it as an output itself")
    lastSuccessfulWrite: DatasetWrite | None
    readers: list[JobLink] = Field(description="Jobs seen reading it: now reading stale data")


class Impact(BaseModel):
    success: bool = True
    runId: str
    namespace: str
    job: str
    state: str
    expectedOutputs: list[ImpactedDataset] = Field(
        description="What the run was expected to write: its own declared outputs and the "
        "outputs of its job's earlier runs"
    )
    downstreamJobs: list[JobLink] = Field(description="Every job reading one of those datasets")
