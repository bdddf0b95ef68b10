"""The live topic's messages: what the API's Server-Sent Events stream and the ops board show.

One message per run-state batch (and per stuck/overdue sweep that raised something)::

    {"changes": [<change>, ...], "alerts": [<alert>, ...]}

A change is a run entering a state (RUNNING, COMPLETE, FAIL, ABORT, UNKNOWN). The topic has
one partition, so its offsets order every change; the stream's event ids are
``<offset>-<index>`` and a client that reconnects with ``Last-Event-ID`` resumes right after.
"""

from __future__ import annotations

from typing import Any

from .model import ticks_to_datetime
from .runstate import RunState

ERROR_CHARS = 500


def _iso(ticks: int | None) -> str | None:
    at = ticks_to_datetime(ticks)
    return at.isoformat().replace("+00:00", "Z") if at is not None else None


def live_change(state: RunState, previous: str | None) -> dict[str, Any]:
    return {
        "runId": state.run_id,
        "state": state.state,
        "previousState": previous,
        "namespace": state.namespace,
        "job": state.job,
        "parentRunId": state.parent_run_id,
        "startTime": _iso(state.start_ticks),
        "endTime": _iso(state.end_ticks),
        "lastEventTime": _iso(state.last_event_ticks),
        "eventCount": state.event_count,
        "errorMessage": (state.error_message or "")[:ERROR_CHARS] or None,
    }


def event_id(offset: int, index: int) -> str:
    return f"{offset}-{index}"


def parse_event_id(value: str | None) -> tuple[int, int] | None:
    """``"<offset>-<index>"`` -> (offset, index); anything else -> None (start at the end)."""
    if not value:
        return None
    offset, sep, index = value.strip().partition("-")
    if not sep or not offset.isdigit() or not index.isdigit():
        return None
    return int(offset), int(index)
