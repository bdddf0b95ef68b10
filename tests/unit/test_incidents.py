"""An incident's lifecycle as pure rules: open, join, recover, resolve by itself or by hand,
reopen within the quiet period; where a new failure goes; time to detect and resolve."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest

from lineage_faust.domain import incidents as lc
from lineage_faust.domain.alerting import Alert, Kind, alert_id

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def failure(run: str, job: str, ended: datetime, *, paged: bool = True) -> Alert:
    return Alert(
        alert_id=alert_id(run, "failed"),
        kind=Kind.FAILED.value,
        severity="critical",
        paged=paged,
        run_id=run,
        namespace="airflow",
        job=job,
        state="FAIL",
        raised_at=ended + timedelta(seconds=2),
        ended_at=ended,
    )


def test_a_dag_run_failure_resolves_once_every_failed_job_succeeded_after_it() -> None:
    dag, task = failure("dag-run", "etl", T0), failure("task-try-2", "etl.load", T0)
    incident = lc.open_incident(dag, "inc")
    lc.join(incident, dataclasses.replace(task, paged=False, paged_by=dag.alert_id))
    assert incident.pending == {
        "job:airflow/etl": lc.iso_ms(T0),
        "job:airflow/etl.load": lc.iso_ms(T0),
    }
    assert lc.timings(incident) == {"detect": 2.0, "acknowledge": None, "resolve": None}
    later = T0 + timedelta(minutes=10)
    # a success from before the failure (arriving late) recovers nothing
    assert not lc.recover(incident, "job:airflow/etl.load", T0 - timedelta(hours=1), later)
    assert not lc.recover(incident, "job:airflow/other", later, later)
    # the cleared task succeeds: one of two recovered
    assert not lc.recover(incident, "job:airflow/etl.load", T0 + timedelta(minutes=5), later)
    assert incident.state == lc.OPEN
    # the DAG run completes: resolved by itself, once
    assert lc.recover(incident, "job:airflow/etl", T0 + timedelta(minutes=6), later)
    assert incident.state == lc.RESOLVED and incident.resolved_by == lc.AUTO
    assert incident.changes[-1]["note"] == "recovered: airflow/etl.load, airflow/etl"
    assert lc.timings(incident)["resolve"] == 600.0
    assert not lc.recover(incident, "job:airflow/etl", T0 + timedelta(minutes=7), later)
    notice = lc.resolve_notice(incident, later)
    assert notice.kind == "resolved" and notice.paged and notice.incident_id == "inc"
    assert notice.alert_id == lc.resolve_notice_id("inc", 1)


def test_acknowledge_and_resolve_by_hand_follow_the_states() -> None:
    incident = lc.open_incident(failure("r", "j", T0), "inc")
    lc.acknowledge(incident, "ana", T0 + timedelta(minutes=3), "on it")
    with pytest.raises(lc.TransitionRefused, match="is acknowledged"):
        lc.acknowledge(incident, "bo", T0 + timedelta(minutes=4))
    lc.resolve(incident, "ana", T0 + timedelta(minutes=20), "fixed the credentials")
    with pytest.raises(lc.TransitionRefused, match="resolved already"):
        lc.resolve(incident, "bo", T0 + timedelta(minutes=21))
    with pytest.raises(lc.TransitionRefused):
        lc.acknowledge(incident, "bo", T0 + timedelta(minutes=21))
    assert [(c["state"], c["by"]) for c in incident.changes] == [
        ("open", "page"),
        ("acknowledged", "ana"),
        ("resolved", "ana"),
    ]
    assert lc.timings(incident) == {"detect": 2.0, "acknowledge": 180.0, "resolve": 1200.0}
    assert lc.Incident.from_dict(incident.to_dict()) == incident


def test_a_failure_after_its_recovery_reopens_and_an_old_one_does_not() -> None:
    incident = lc.open_incident(failure("r1", "j", T0), "inc")
    lc.recover(incident, "job:airflow/j", T0 + timedelta(minutes=1), T0 + timedelta(minutes=1))
    assert incident.state == lc.RESOLVED
    late = failure("r0", "j", T0 - timedelta(minutes=5))  # failed before the recovery
    lc.reopen(incident, late)
    assert incident.state == lc.RESOLVED and late.alert_id in incident.alert_ids
    again = failure("r2", "j", T0 + timedelta(minutes=3))
    lc.reopen(incident, again)
    assert incident.state == lc.OPEN and incident.reopened == 1
    assert incident.pending == {"job:airflow/j": lc.iso_ms(T0 + timedelta(minutes=3))}
    assert incident.resolved_at is None
    lc.recover(incident, "job:airflow/j", T0 + timedelta(minutes=9), T0 + timedelta(minutes=9))
    assert lc.resolutions(incident) == 2
    assert lc.resolve_notice(incident, T0).alert_id == lc.resolve_notice_id("inc", 2)


def test_where_a_new_failure_goes() -> None:
    now = T0 + timedelta(hours=1)
    new = failure("r9", "j", now - timedelta(seconds=5))
    assert lc.place_failure(new, "tree", None, None, 900, now) == lc.Placement("tree", "tree")
    open_tree = lc.open_incident(failure("r1", "j", T0), "tree")
    assert lc.place_failure(new, "tree", open_tree, None, 900, now).claim == "tree"
    # its job fails in another open incident: joins it, unpaged
    other = lc.open_incident(failure("r2", "j", T0), "other")
    assert lc.place_failure(new, "tree", None, other, 900, now) == lc.Placement(
        "other", None, other.page_alert_id
    )
    # resolved within the quiet period: reopens (one claim per reopening)
    lc.resolve(other, "ana", now - timedelta(minutes=10))
    reopening = lc.place_failure(new, "tree", None, other, 900, now)
    assert reopening == lc.Placement("other", lc.reopen_claim("other", 1))
    # resolved long ago: a new incident (its tree's, or one of its own if that tree's is
    # the resolved one)
    assert lc.place_failure(new, "tree", None, other, 60, now) == lc.Placement("tree", "tree")
    lc.resolve(open_tree, "ana", now - timedelta(minutes=30))
    fresh = lc.fresh_incident_id(new.alert_id)
    assert lc.place_failure(new, "tree", open_tree, None, 60, now) == lc.Placement(fresh, fresh)


def test_summaries_give_counts_and_percentiles() -> None:
    found = []
    for minutes in (1, 2, 3, 4, 100):
        incident = lc.open_incident(failure(f"r{minutes}", "j", T0), f"inc-{minutes}")
        lc.resolve(incident, "ana", T0 + timedelta(minutes=minutes))
        found.append(incident)
    found.append(lc.open_incident(failure("r-open", "j", T0), "inc-open"))
    summary = lc.summarize(found)
    assert summary["count"] == 6 and summary["open"] == 1
    assert summary["resolve"] == {"p50": 180.0, "p90": 6000.0}
    assert summary["detect"] == {"p50": 2.0, "p90": 2.0}
    assert summary["acknowledge"] == {"p50": None, "p90": None}
