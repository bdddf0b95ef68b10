"""A dbt-shaped OpenLineage stream, as openlineage-dbt emits it with structured logs: a job
run, a run per model (parent: the job), a run per SQL statement (parent: the model; no root in
the facet, as older integrations send). One statement fails, then its model, then the job."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import orjson

PRODUCER = "https://github.com/OpenLineage/OpenLineage/tree/1.40.0/integration/dbt"
SCHEMA = "https://openlineage.io/spec/2-0-2/OpenLineage.json#/definitions/RunEvent"
NAMESPACE = "dbt://warehouse"


def _event(
    kind: str, run_id: str, job: str, at: datetime, parent: tuple[str, str] | None, error: str = ""
) -> bytes:
    facets: dict = {}
    if parent is not None:
        facets["parent"] = {
            "_producer": PRODUCER,
            "_schemaURL": "https://openlineage.io/spec/facets/1-0-1/ParentRunFacet.json",
            "run": {"runId": parent[0]},
            "job": {"namespace": NAMESPACE, "name": parent[1]},
        }
    if error:
        facets["errorMessage"] = {
            "_producer": PRODUCER,
            "_schemaURL": "https://openlineage.io/spec/facets/1-0-1/ErrorMessageRunFacet.json",
            "message": error,
            "programmingLanguage": "SQL",
        }
    return orjson.dumps(
        {
            "eventType": kind,
            "eventTime": at.isoformat().replace("+00:00", "Z"),
            "producer": PRODUCER,
            "schemaURL": SCHEMA,
            "run": {"runId": run_id, "facets": facets},
            "job": {"namespace": NAMESPACE, "name": job},
            "inputs": [],
            "outputs": [],
        }
    )


def dbt_stream(
    start: datetime | None = None, models: int = 2, *, fails: bool = True
) -> tuple[list[bytes], dict]:
    """(events, run ids by role): job → ``models`` models → a statement each; the last
    model's statement fails, so does that model, so does the job (``fails=False``: every
    run completes: the project run again after a fix)."""
    t = start or datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)
    job_run = str(uuid.uuid4())
    ids = {"job": job_run, "models": [], "statements": []}
    events = [_event("START", job_run, "shop.build", t, None)]
    for i in range(models):
        model_run, statement_run = str(uuid.uuid4()), str(uuid.uuid4())
        ids["models"].append(model_run)
        ids["statements"].append(statement_run)
        model, statement = f"shop.build.model.orders_{i}", f"shop.build.model.orders_{i}.sql"
        failing = fails and i == models - 1
        at = t + timedelta(seconds=10 * (i + 1))
        events.append(_event("START", model_run, model, at, (job_run, "shop.build")))
        events.append(_event("START", statement_run, statement, at, (model_run, model)))
        end = "FAIL" if failing else "COMPLETE"
        error = (
            'relation "raw.orders" does not exist\nLINE 1: select * from raw.orders'
            if failing
            else ""
        )
        done = at + timedelta(seconds=5)
        events.append(_event(end, statement_run, statement, done, (model_run, model), error))
        events.append(
            _event(
                end, model_run, model, done + timedelta(seconds=1), (job_run, "shop.build"), error
            )
        )
    finish = t + timedelta(seconds=10 * models + 20)
    if fails:
        events.append(_event("FAIL", job_run, "shop.build", finish, None, "1 of 2 models failed"))
    else:
        events.append(_event("COMPLETE", job_run, "shop.build", finish, None))
    return events, ids
