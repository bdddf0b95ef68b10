"""Run statuses built by hand for listing tests (stores and API)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from lineage_faust.store import RunQuery, RunStatus

T0 = datetime(2026, 10, 31, 21, 0, 0, tzinfo=UTC)  # runs below cross hours, a day and a month


def run_status(
    run_id: str,
    state: str,
    *,
    namespace: str,
    job: str,
    start: datetime,
    end: datetime | None = None,
) -> RunStatus:
    last = end or start
    duration = int((end - start).total_seconds() * 1000) if end else None
    return RunStatus(
        run_id=run_id,
        state=state,
        namespace=namespace,
        job=job,
        parent_run_id=None,
        root_run_id=None,
        first_event_time=start,
        last_event_time=last,
        start_time=start,
        end_time=end,
        duration_ms=duration,
        event_count=2 if end else 1,
        last_event_type=state if end else "START",
        error_message="boom" if state == "FAIL" else None,
        nominal_start_time=None,
        processing_type=None,
        updated_at=last.replace(microsecond=0),
    )


def sixty_runs(namespace: str) -> list[RunStatus]:
    """60 runs of two jobs, started 17 minutes apart (over ~17 hours and a month boundary)."""
    runs = []
    for i in range(60):
        start = T0 + timedelta(minutes=17 * i)
        state = ("FAIL", "COMPLETE", "RUNNING")[i % 3]
        end = start + timedelta(minutes=5 + i) if state != "RUNNING" else None
        job = f"job-{i % 2}"
        runs.append(
            run_status(
                f"{namespace}-run-{i:02d}",
                state,
                namespace=namespace,
                job=job,
                start=start,
                end=end,
            )
        )
    return runs


def expected(runs: list[RunStatus], query: RunQuery) -> list[str]:
    chosen = [r for r in runs if query.matches(r)]
    chosen.sort(key=lambda r: r.run_id)
    chosen.sort(key=query.ordering_time, reverse=True)
    return [r.run_id for r in chosen]
