"""The alert rules, as pure functions (no broker, no store), and their configuration."""

from __future__ import annotations

import dataclasses

import pytest

from lineage_faust.domain.alerting import (
    AlertRules,
    Kind,
    Limits,
    Policy,
    alert_id,
    on_change,
    on_sweep,
    typical_duration_ms,
    will_retry,
)
from lineage_faust.domain.model import ValidEvent, parse_event
from lineage_faust.domain.runstate import RunState, RunUpdate, fold
from lineage_faust.settings import ConfigError, Delivery, parse_settings
from tests.support.helpers import SAMPLES

NOW = 1_800_000_000.0
TICKS_PER_S = 10_000_000


def sample_states() -> dict[str, RunState]:
    by_run: dict[str, list[RunUpdate]] = {}
    for line in SAMPLES.read_bytes().splitlines():
        event = parse_event(line, 1 << 20)
        assert isinstance(event, ValidEvent)
        by_run.setdefault(event.payload.run.runId, []).append(RunUpdate.from_event(event))
    return {run_id: fold(updates) for run_id, updates in by_run.items()}  # type: ignore[misc]


@pytest.mark.parametrize(
    ("policy", "paged"),
    [
        (Policy.FINAL, {"dag": True, "final try": True, "retried try": False}),
        (Policy.EVERY, {"dag": True, "final try": True, "retried try": True}),
        (Policy.DAG, {"dag": True, "final try": False, "retried try": False}),
    ],
)
def test_failures_of_the_samples_under_each_policy(policy: Policy, paged: dict) -> None:
    found = {}
    for state in sample_states().values():
        for alert in on_change(state, AlertRules(policy=policy), NOW):
            if state.parent_run_id is None:
                name = "dag"
            else:
                name = "retried try" if alert.kind == Kind.RETRYING else "final try"
            found[name] = alert.paged
            assert alert.alert_id == alert_id(state.run_id, alert.kind)
    assert found == paged


def test_a_failed_try_that_airflow_retries() -> None:
    states = [s for s in sample_states().values() if s.state == "FAIL" and s.parent_run_id]
    tries = sorted((s.try_number, will_retry(s)) for s in states)
    assert tries == [(1, True), (2, False)]
    retried = next(s for s in states if s.try_number == 1)
    (alert,) = on_change(retried, AlertRules(), NOW)
    assert alert.kind == "retrying_failure" and alert.severity == "info" and not alert.paged
    assert alert.detail == "try 1 of 2 failed; Airflow retries it"
    assert alert.stack_trace and alert.stack_trace.startswith("Traceback")
    assert on_change(dataclasses.replace(retried, alerted=[alert.kind]), AlertRules(), NOW) == []


def running(**changes: object) -> RunState:
    base = RunState(
        run_id="r1",
        state="RUNNING",
        namespace="ns",
        job="etl",
        start_ticks=int((NOW - 600) * TICKS_PER_S),
        updated_at=NOW - 10,
    )
    return dataclasses.replace(base, **changes)


def test_stuck_after_the_idle_threshold_once() -> None:
    rules = AlertRules(defaults=Limits(idle_s=60))
    assert on_sweep(running(), rules, NOW, None) == []
    (stuck,) = on_sweep(running(updated_at=NOW - 61), rules, NOW, None)
    assert stuck.kind == "stuck" and stuck.paged and "no event for 61 s" in stuck.detail
    assert on_sweep(running(updated_at=NOW - 61, alerted=["stuck"]), rules, NOW, None) == []


def test_overdue_against_the_jobs_typical_duration() -> None:
    rules = AlertRules(defaults=Limits(overdue_factor=3))
    assert on_sweep(running(), rules, NOW, typical_ms=300_000) == []  # 600 s < 3 x 300 s
    (overdue,) = on_sweep(running(), rules, NOW, typical_ms=100_000)  # 600 s > 3 x 100 s
    assert overdue.kind == "overdue" and "typical 100 s" in overdue.detail
    assert on_sweep(running(), rules, NOW, typical_ms=None) == []  # no history yet
    recovered = on_change(running(state="COMPLETE", alerted=["overdue"]), rules, NOW)
    assert [(a.kind, a.paged) for a in recovered] == [("recovered", False)]
    assert on_change(running(state="COMPLETE"), rules, NOW) == []


def test_overdue_counts_from_when_the_worker_saw_the_run_start_if_later() -> None:
    """Catching up on old events: a run that started (by its events) a day ago but that the
    worker has only known for 10 s is not overdue; one it has known for 600 s is."""
    rules = AlertRules(defaults=Limits(overdue_factor=3))
    day_old = int((NOW - 86_400) * TICKS_PER_S)
    replayed = running(start_ticks=day_old, first_seen_at=NOW - 10)
    assert on_sweep(replayed, rules, NOW, typical_ms=100_000) == []
    (overdue,) = on_sweep(
        running(start_ticks=day_old, first_seen_at=NOW - 600), rules, NOW, typical_ms=100_000
    )
    assert "running 600 s" in overdue.detail
    # seen before its events say it started (clock skew): the events' start counts
    early = running(first_seen_at=NOW - 3_600)  # events: started 600 s ago
    assert "running 600 s" in on_sweep(early, rules, NOW, typical_ms=100_000)[0].detail


def test_streaming_jobs_and_overrides() -> None:
    rules = AlertRules(
        defaults=Limits(idle_s=60),
        overrides={"ns": Limits(idle_s=5), "ns/etl": Limits(enabled=False)},
    )
    old = running(updated_at=NOW - 3600)
    assert on_sweep(dataclasses.replace(old, processing_type="STREAMING"), rules, NOW, 1) == []
    assert on_sweep(old, rules, NOW, 1) == []  # the job's override switches checks off
    (stuck,) = on_sweep(dataclasses.replace(old, job="other", updated_at=NOW - 6), rules, NOW, None)
    assert stuck.kind == "stuck"  # the namespace's 5 s


def test_typical_duration_needs_enough_samples() -> None:
    assert typical_duration_ms([10, 20], 3) is None
    assert typical_duration_ms([10, 20, 90], 3) == 20


def test_alert_settings_are_checked_at_start() -> None:
    s = parse_settings(
        {
            "LINEAGE_ALERT_POLICY": "dag",
            "LINEAGE_ALERT_IDLE": "15m",
            "LINEAGE_ALERT_OVERRIDES": '{"prod/etl": {"idle_s": 60, "overdue_factor": 2}}',
            "LINEAGE_WEBHOOKS": "https://hooks.example.com/T000/secret",
        }
    )
    assert s.alert_rules.policy is Policy.DAG and s.alert_rules.defaults.idle_s == 900
    assert s.alert_rules.limits("prod", "etl") == Limits(idle_s=60, overdue_factor=2)
    assert "secret" not in repr(s)
    assert s.alerts_topic == "lineage-faust-alerts"  # the deployment's own
    assert s.delivery == Delivery(queue=10_000, concurrency=4, timeout_s=10.0, max_age_s=3600.0)
    tuned = parse_settings(
        {
            "LINEAGE_APP_ID": "staging",
            "LINEAGE_WEBHOOK_QUEUE": "50",
            "LINEAGE_WEBHOOK_CONCURRENCY": "8",
            "LINEAGE_WEBHOOK_TIMEOUT": "2.5",
            "LINEAGE_PAGE_MAX_AGE": "15m",
        }
    )
    assert tuned.alerts_topic == "staging-alerts"
    assert tuned.delivery == Delivery(queue=50, concurrency=8, timeout_s=2.5, max_age_s=900.0)
    assert parse_settings({"LINEAGE_PAGE_MAX_AGE": "none"}).delivery.max_age_s == float("inf")
    assert parse_settings({}).alert_rules.quiet_s == 900
    assert parse_settings({"LINEAGE_INCIDENT_QUIET": "1h"}).alert_rules.quiet_s == 3600
    assert parse_settings({"LINEAGE_INCIDENT_QUIET": "0"}).alert_rules.quiet_s == 0
    for env, words in [
        ({"LINEAGE_ALERT_POLICY": "loud"}, "one of every, final, dag"),
        ({"LINEAGE_ALERT_OVERRIDES": "{nope"}, "LINEAGE_ALERT_OVERRIDES"),
        ({"LINEAGE_ALERT_OVERRIDES": '{"ns": {"idle": 1}}'}, "unknown keys"),
        ({"LINEAGE_WEBHOOKS": "ftp://x/secret-token"}, r"entry 1 is not an http\(s\) URL"),
        ({"LINEAGE_WEBHOOK_FORMAT": "xml"}, "one of json, slack, pagerduty"),
        (
            {"LINEAGE_WEBHOOKS": "https://a/ok,pagerduty+https://pd/v2/enqueue?secret-token=1"},
            r"entry 2 \(pagerduty\) needs the integration's routing key",
        ),
        ({"LINEAGE_INCIDENT_QUIET": "a while"}, "LINEAGE_INCIDENT_QUIET='a while'"),
        ({"LINEAGE_WEBHOOK_QUEUE": "0"}, "LINEAGE_WEBHOOK_QUEUE=0 must be at least 1"),
        ({"LINEAGE_WEBHOOK_CONCURRENCY": "many"}, "LINEAGE_WEBHOOK_CONCURRENCY"),
        ({"LINEAGE_PAGE_MAX_AGE": "soon"}, "LINEAGE_PAGE_MAX_AGE='soon' is not a duration"),
    ]:
        with pytest.raises(ConfigError, match=words) as caught:
            parse_settings(env)
        assert "secret-token" not in str(caught.value)


def test_slack_messages_name_the_dataset_and_link_the_incident() -> None:
    from datetime import UTC, datetime, timedelta

    from lineage_faust.domain.freshness import LastWrite, parse_expectations, stale_alert
    from lineage_faust.worker.webhooks import slack_payload

    at = datetime(2026, 11, 1, tzinfo=UTC)
    write = LastWrite("pg://db", "shop.orders", at, "run-9", "etl", "load")
    [expectation] = parse_expectations({"pg://db/shop.*": {"maxAgeSeconds": 60}})
    alert = stale_alert(write, expectation, at + timedelta(hours=1)).to_dict("https://ops")
    text = slack_payload(alert)["blocks"][0]["text"]["text"]
    assert "stale: pg://db/shop.orders" in text and "last written 3600 s ago" in text
    assert f"<https://ops/#incident/{alert['incidentId']}|the incident>" in text
    assert "<https://ops/api/v1/runs/run-9|open the run>" in text


def test_a_slack_page_names_its_blast_radius() -> None:
    from lineage_faust.worker.webhooks import blast_line

    radius = {"datasets": 3, "jobs": 2, "firstDatasets": ["db/a", "db/b"], "firstJobs": ["x/j"]}
    assert blast_line(radius) == "downstream: 3 datasets, 2 jobs (db/a, db/b, x/j)"
    cut = {"datasets": 200, "jobs": 0, "truncated": True}
    assert blast_line(cut) == "downstream: 200+ datasets, 0+ jobs"
    caused = {
        "datasets": 1,
        "jobs": 0,
        "likelyCause": {"namespace": "dbt", "name": "stg", "state": "FAIL", "runId": "r-1"},
    }
    assert blast_line(caused) == (
        "downstream: 1 datasets, 0 jobs; likely cause upstream: dbt/stg (FAIL, run r-1)"
    )
