"""Events built with the official openlineage-python client (not hand-written JSON)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from openlineage.client.event_v2 import (
    DatasetEvent,
    InputDataset,
    Job,
    JobEvent,
    OutputDataset,
    Run,
    RunEvent,
    RunState,
    StaticDataset,
)
from openlineage.client.facet_v2 import (
    error_message_run,
    job_type_job,
    nominal_time_run,
    parent_run,
)
from openlineage.client.serde import Serde

PRODUCER = "https://github.com/OpenLineage/OpenLineage/tree/1.54.0/client/python"
BASE = datetime(2026, 11, 21, 12, 0, 0, tzinfo=UTC)


def run_event(*args: object, **kwargs: object) -> bytes:
    return Serde.to_json(run_event_obj(*args, **kwargs)).encode()  # type: ignore[arg-type]


def run_event_obj(
    state: RunState,
    run_id: str,
    job: str = "etl.load",
    namespace: str = "tests",
    at: datetime = BASE,
    parent: tuple[str, str] | None = None,
    error: str | None = None,
    streaming: bool = False,
    inputs: list[InputDataset] | None = None,
    outputs: list[OutputDataset] | None = None,
) -> RunEvent:
    facets: dict = {
        "nominalTime": nominal_time_run.NominalTimeRunFacet(nominalStartTime=BASE.isoformat())
    }
    if parent:
        parent_run_id, parent_job = parent
        facets["parent"] = parent_run.ParentRunFacet(
            run=parent_run.Run(runId=parent_run_id),
            job=parent_run.Job(namespace=namespace, name=parent_job),
            root=parent_run.Root(
                run=parent_run.RootRun(runId=parent_run_id),
                job=parent_run.RootJob(namespace=namespace, name=parent_job),
            ),
        )
    if error:
        facets["errorMessage"] = error_message_run.ErrorMessageRunFacet(
            message=error, programmingLanguage="python", stackTrace=f"Traceback...\n{error}"
        )
    job_facets = {
        "jobType": job_type_job.JobTypeJobFacet(
            processingType="STREAMING" if streaming else "BATCH",
            integration="AIRFLOW",
            jobType="TASK",
        )
    }
    return RunEvent(
        eventType=state,
        eventTime=at.isoformat(),
        run=Run(runId=run_id, facets=facets),
        job=Job(namespace=namespace, name=job, facets=job_facets),
        producer=PRODUCER,
        inputs=[InputDataset(namespace="db", name="raw.orders")] if inputs is None else inputs,
        outputs=[OutputDataset(namespace="db", name="clean.orders")]
        if outputs is None
        else outputs,
    )


def job_event(name: str = "etl.load") -> bytes:
    return Serde.to_json(
        JobEvent(
            eventTime=BASE.isoformat(), producer=PRODUCER, job=Job(namespace="tests", name=name)
        )
    ).encode()


def dataset_event(name: str = "clean.orders") -> bytes:
    return Serde.to_json(
        DatasetEvent(
            eventTime=BASE.isoformat(),
            producer=PRODUCER,
            dataset=StaticDataset(namespace="db", name=name),
        )
    ).encode()


def new_run_id() -> str:
    return str(uuid.uuid4())


def later(seconds: float) -> datetime:
    return BASE + timedelta(seconds=seconds)
