"""The run-state fold: order-independent, duplicate-proof, terminal states never reopened."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from lineage_faust.domain.model import ValidEvent, parse_event
from lineage_faust.domain.runstate import (
    MAX_SEEN,
    RUNNING,
    UNKNOWN,
    RunState,
    RunUpdate,
    apply_update,
    fold,
    is_expired,
)
from lineage_faust.samples import DBT_SAMPLES
from tests.support.helpers import SAMPLES

SECOND = 10_000_000  # ticks


def upd(event_type: str | None, t: int, eid: str | None = None, **kw: object) -> RunUpdate:
    return RunUpdate(
        event_id=eid or f"{event_type}-{t}",
        run_id="run-1",
        event_type=event_type,
        ticks=t * SECOND,
        namespace="ns",
        job="job",
        **kw,
    )


def comparable(state: RunState | None) -> dict:
    assert state is not None
    data = orjson.loads(orjson.dumps(state))
    data.pop("seen")  # arrival order of ids is bookkeeping, not state
    data.pop("meta_key")
    return data


def test_start_then_complete() -> None:
    state = fold([upd("START", 10), upd("COMPLETE", 25)])
    assert state.state == "COMPLETE"
    assert state.start_ticks == 10 * SECOND and state.end_ticks == 25 * SECOND
    assert state.duration_ms == 15_000
    assert state.event_count == 2


def test_late_start_or_running_never_reopens_a_finished_run() -> None:
    for late in ("START", "RUNNING", "OTHER", None):
        state = fold([upd("START", 10), upd("FAIL", 20), upd(late, 30)])
        assert state.state == "FAIL", late
        assert state.end_ticks == 20 * SECOND
        assert state.event_count == 3


def test_out_of_order_arrival_uses_event_time() -> None:
    state = fold([upd("COMPLETE", 30), upd("RUNNING", 20), upd("START", 10)])
    assert state.state == "COMPLETE"
    assert state.start_ticks == 10 * SECOND
    assert state.first_event_ticks == 10 * SECOND and state.last_event_ticks == 30 * SECOND


def test_latest_terminal_event_by_time_wins_not_last_arrival() -> None:
    assert fold([upd("COMPLETE", 30), upd("FAIL", 20)]).state == "COMPLETE"
    assert fold([upd("FAIL", 20), upd("COMPLETE", 30)]).state == "COMPLETE"


def test_other_before_start_and_untyped_events() -> None:
    assert fold([upd("OTHER", 5)]).state == UNKNOWN
    assert fold([upd("OTHER", 5), upd("START", 10)]).state == RUNNING
    assert fold([upd(None, 5)]).state == UNKNOWN


def test_duplicate_is_not_counted_and_reports_unchanged() -> None:
    state, changed = apply_update(None, upd("START", 10), now=0)
    assert changed
    again, changed = apply_update(state, upd("START", 10), now=0)
    assert not changed
    assert again is state and again.event_count == 1


def test_error_message_parent_root_and_nominal_time() -> None:
    state = fold(
        [
            upd(
                "START", 10, parent_run_id="dag-run", root_run_id="dag-run", nominal_start_time="n"
            ),
            upd("FAIL", 20, error_message="boom", parent_run_id="dag-run", root_run_id="dag-run"),
        ]
    )
    assert state.error_message == "boom"
    assert state.parent_run_id == state.root_run_id == "dag-run"
    assert state.nominal_start_time == "n"


def test_terminal_run_expires_after_retention_only() -> None:
    state = fold([upd("START", 10)], now=100.0)
    assert state.finished_at is None and not is_expired(state, 10_000.0, 60)
    state, _ = apply_update(state, upd("COMPLETE", 20), now=100.0)
    assert state.finished_at == 100.0
    assert not is_expired(state, 159.0, 60)
    assert is_expired(state, 160.0, 60)


def test_dedup_memory_is_bounded() -> None:
    state = fold([upd("RUNNING", i) for i in range(MAX_SEEN * 3)])
    assert len(state.seen) == MAX_SEEN
    assert state.event_count == MAX_SEEN * 3


def test_state_survives_serialisation() -> None:
    state = fold([upd("START", 10), upd("FAIL", 20, error_message="x")])
    assert RunState.from_dict(orjson.loads(orjson.dumps(state))) == state


def folded(path: Path) -> dict[str, RunState]:
    """Each run of a recording, its events folded."""
    by_run: dict[str, list[RunUpdate]] = {}
    for line in path.read_bytes().splitlines():
        event = parse_event(line, 1 << 20)
        assert isinstance(event, ValidEvent)
        update = RunUpdate.from_event(event)
        by_run.setdefault(update.run_id, []).append(update)
    return {run_id: state for run_id, u in by_run.items() if (state := fold(u)) is not None}


def test_samples_fold_to_the_expected_states() -> None:
    states = folded(SAMPLES)
    failed = sorted(s.job for s in states.values() if s.state == "FAIL")
    assert failed == [
        "ol_failing_retry",
        "ol_failing_retry.always_fails",
        "ol_failing_retry.always_fails",
    ]
    assert sum(s.state == "COMPLETE" for s in states.values()) == 11
    task = next(s for s in states.values() if s.job == "ol_failing_retry.always_fails")
    dag = next(s for s in states.values() if s.job == "ol_failing_retry")
    assert task.parent_run_id == dag.run_id and task.root_run_id == dag.run_id
    assert task.error_message and "always_fails" not in (dag.parent_run_id or "")
    assert (task.parent_namespace, task.parent_job) == (dag.namespace, dag.job)
    assert dag.parent_job is None


def test_the_recorded_dbt_runs_fold_to_what_dbt_did() -> None:
    """The dbt recording: the second invocation's stg_payments fails (its SQL statement
    first), the ten models downstream are skipped (ABORT); every run names its parent's job."""
    states = list(folded(DBT_SAMPLES).values())
    failed = sorted(s.job for s in states if s.state == "FAIL")
    assert [j for j in failed if ".sql." not in j] == ["dbt-run-shop", "model.shop.stg_payments"]
    assert sum(s.state == "ABORT" for s in states) == 10
    model = next(s for s in states if s.job == "model.shop.stg_payments" and s.state == "FAIL")
    assert model.error_message and "Binder Error" in model.error_message
    statement = next(s for s in states if s.parent_run_id == model.run_id)
    assert (statement.parent_namespace, statement.parent_job) == ("dbt-shop", model.job)
    assert model.parent_job == "dbt-run-shop"


EVENT_TYPES = st.sampled_from(["START", "RUNNING", "COMPLETE", "FAIL", "ABORT", "OTHER", None])
UPDATES = st.lists(
    st.builds(
        lambda et, t, err, parent: upd(
            et, t, eid=f"{et}-{t}-{err}-{parent}", error_message=err, parent_run_id=parent
        ),
        EVENT_TYPES,
        st.integers(0, 50),
        st.sampled_from([None, "e1", "e2"]),
        st.sampled_from([None, "p1"]),
    ),
    min_size=1,
    max_size=12,
    unique_by=lambda u: u.event_id,
)


@settings(max_examples=300, deadline=None)
@given(UPDATES, st.randoms(use_true_random=False), st.integers(0, 5))
def test_any_arrival_order_with_redeliveries_gives_the_same_state(updates, rnd, dups) -> None:
    shuffled = list(updates)
    rnd.shuffle(shuffled)
    redelivered = shuffled + [rnd.choice(updates) for _ in range(dups)]
    rnd.shuffle(redelivered)
    expected = fold(updates)
    got = fold(redelivered)
    assert comparable(got) == comparable(expected)
    assert got.event_count == len(updates)
    if any(u.event_type in ("COMPLETE", "FAIL", "ABORT") for u in updates):
        assert got.is_terminal


def test_replace_keeps_input_state_untouched() -> None:
    first, _ = apply_update(None, upd("START", 10), now=0)
    snapshot = replace(first, seen=list(first.seen))
    apply_update(first, upd("COMPLETE", 20), now=0)
    assert first == snapshot


def test_revived_run_still_folds_an_in_flight_event_it_has_already_counted() -> None:
    """A run rebuilt from the store counts every stored event, including ones whose updates
    are still in flight; those must still move the state, without being counted again."""
    from datetime import UTC, datetime

    from lineage_faust.domain.records import state_from_status, status_from_state

    started = fold([upd("START", 10)])
    stored = status_from_state(started, datetime.now(UTC))
    complete = upd("COMPLETE", 20)
    revived = state_from_status(stored, seen=[complete.event_id, "START-10"], event_count=2)
    state, changed = apply_update(revived, complete, now=0)
    assert changed and state.state == "COMPLETE" and state.event_count == 2
    assert state.end_ticks == 20 * SECOND
