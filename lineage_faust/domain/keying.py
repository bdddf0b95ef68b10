"""Message keys as the official OpenLineage Kafka transport sets them.

Run events are keyed by the root job (else the parent job, else their own job) so a DAG run
and its task runs land on one partition in order: ``run:{namespace}/{name}``. Job and
dataset events are keyed ``job:{ns}/{name}`` and ``dataset:{ns}/{name}``.
"""

from __future__ import annotations

from typing import Any


def _ref(obj: Any) -> tuple[str, str] | None:
    if isinstance(obj, dict):
        ns, name = obj.get("namespace"), obj.get("name")
        if isinstance(ns, str) and isinstance(name, str) and ns and name:
            return ns, name
    return None


def _get(obj: Any, *path: str) -> Any:
    for part in path:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(part)
    return obj


def message_key(event: Any) -> bytes | None:
    """The key for a decoded event object; None when it is not recognisable."""
    if not isinstance(event, dict):
        return None
    if "run" not in event and (ds := _ref(event.get("dataset"))):
        return f"dataset:{ds[0]}/{ds[1]}".encode()
    own = _ref(event.get("job"))
    if "run" not in event and "eventType" not in event:
        return f"job:{own[0]}/{own[1]}".encode() if own else None
    parent = _get(event, "run", "facets", "parent")
    chosen = _ref(_get(parent, "root", "job")) or _ref(_get(parent, "job")) or own
    return f"run:{chosen[0]}/{chosen[1]}".encode() if chosen else None
