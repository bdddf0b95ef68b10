"""Figures over a page of a job's runs (pure: no I/O, no FastAPI)."""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Sequence

from lineage_faust.store import RunStatus

FINISHED = ("COMPLETE", "FAIL", "ABORT")


def summarise(runs: Sequence[RunStatus]) -> dict:
    """Runs newest first -> last state, count per state, success rate, median duration.

    A retried attempt (a task try that failed and was run again) is not counted: a task that
    failed once and then succeeded is one success, not a failure and a success."""
    retried = sum(r.retried for r in runs)
    runs = [r for r in runs if not r.retried]
    states = Counter(r.state for r in runs)
    finished = sum(states[s] for s in FINISHED)
    durations = [r.duration_ms for r in runs if r.state in FINISHED and r.duration_ms is not None]
    return {
        "runs": len(runs),
        "retriedTries": retried,
        "lastState": runs[0].state if runs else None,
        "states": dict(sorted(states.items())),
        "successRate": round(states["COMPLETE"] / finished, 4) if finished else None,
        "medianDurationMs": statistics.median(durations) if durations else None,
    }
