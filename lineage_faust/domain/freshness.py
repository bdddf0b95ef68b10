"""Dataset freshness: which datasets must be written how often, and the alerts a lapse raises.
Pure: the worker's sweep (``worker/freshness.py``) brings the last writes and the open lapses.

An expectation is keyed by ``namespace/name`` or by a glob over it
(``"postgres://db:5432/shop.public.*"``): ``{"maxAgeSeconds": N}``. A dataset whose last
successful write (an output of a COMPLETE run) is older than N seconds is *stale*: one ``stale``
alert per lapse (a lapse is identified by the write it outlived, so a restart or a second
sweep raises the same alert), and one ``fresh`` alert when a newer write ends it.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from lineage_faust.domain.alerting import ALERT_NAMESPACE, SEVERITY, Alert, Kind


@dataclass(frozen=True, slots=True)
class Expectation:
    pattern: str  # "namespace/name", or a glob over it
    max_age_s: float

    @property
    def is_glob(self) -> bool:
        return any(c in self.pattern for c in "*?[")

    def matches(self, key: str) -> bool:
        return key == self.pattern if not self.is_glob else fnmatch.fnmatchcase(key, self.pattern)


def parse_expectations(raw: Mapping[str, Any]) -> tuple[Expectation, ...]:
    """``{"namespace/name" or glob: {"maxAgeSeconds": N}}``; ValueError names a bad entry."""
    found = []
    for pattern, values in raw.items():
        if "/" not in pattern:
            raise ValueError(f"{pattern!r}: expected 'namespace/name' (or a glob over it)")
        if not isinstance(values, Mapping) or set(values) != {"maxAgeSeconds"}:
            raise ValueError(f'{pattern!r}: expected {{"maxAgeSeconds": N}}')
        age = values["maxAgeSeconds"]
        if isinstance(age, bool) or not isinstance(age, int | float) or age <= 0:
            raise ValueError(f"{pattern!r}: maxAgeSeconds must be a positive number")
        found.append(Expectation(pattern, float(age)))
    return tuple(found)


def expectation_for(key: str, expectations: Iterable[Expectation]) -> Expectation | None:
    """The expectation for ``namespace/name``: its exact entry, else the longest glob matching."""
    matching = [e for e in expectations if e.matches(key)]
    if not matching:
        return None
    return max(matching, key=lambda e: (not e.is_glob, len(e.pattern)))


@dataclass(frozen=True, slots=True)
class LastWrite:
    """A dataset's last successful write: when, and by which run of which job."""

    namespace: str
    name: str
    at: datetime
    run_id: str
    job_namespace: str
    job: str

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True, slots=True)
class Lapse:
    """An open lapse: the dataset's last write, older than its expectation allows."""

    write: LastWrite
    max_age_s: float
    since: datetime  # when the sweep found it stale


def is_stale(write: LastWrite, expectation: Expectation, now: datetime) -> bool:
    return (now - write.at).total_seconds() > expectation.max_age_s


def _lapse_alert_id(write: LastWrite, kind: Kind) -> str:
    at = write.at.astimezone(UTC).isoformat()
    return str(uuid.uuid5(ALERT_NAMESPACE, f"dataset\n{write.key}\n{at}/{kind}"))


def _dataset_alert(write: LastWrite, kind: Kind, now: datetime, detail: str) -> Alert:
    return Alert(
        alert_id=_lapse_alert_id(write, kind),
        kind=kind.value,
        severity=SEVERITY[kind],
        paged=True,
        run_id=write.run_id,
        namespace=write.job_namespace,
        job=write.job,
        state="COMPLETE",
        raised_at=now,
        ended_at=write.at,
        detail=detail,
        incident_id=_lapse_alert_id(write, Kind.STALE),  # a lapse is one incident
        dataset_namespace=write.namespace,
        dataset_name=write.name,
    )


def stale_alert(write: LastWrite, expectation: Expectation, now: datetime) -> Alert:
    age = (now - write.at).total_seconds()
    detail = (
        f"dataset {write.key} last written {age:.0f} s ago by {write.job_namespace}/{write.job}"
        f" (expected every {expectation.max_age_s:g} s)"
    )
    return _dataset_alert(write, Kind.STALE, now, detail)


def fresh_alert(lapse: Lapse, new_write: LastWrite, now: datetime) -> Alert:
    """The end of ``lapse`` (one per lapse: identified by the write it outlived), naming the
    run that wrote the dataset again."""
    late = (new_write.at - lapse.write.at).total_seconds()
    detail = (
        f"dataset {new_write.key} written again by {new_write.job_namespace}/{new_write.job}, "
        f"{late:.0f} s after the write before it (expected every {lapse.max_age_s:g} s)"
    )
    alert = _dataset_alert(lapse.write, Kind.FRESH, now, detail)
    return dataclasses.replace(
        alert,
        run_id=new_write.run_id,
        namespace=new_write.job_namespace,
        job=new_write.job,
        ended_at=new_write.at,
    )


def lapse_to_dict(lapse: Lapse) -> dict[str, Any]:
    w = lapse.write
    return {
        "namespace": w.namespace,
        "name": w.name,
        "lastWrite": w.at.isoformat(),
        "runId": w.run_id,
        "jobNamespace": w.job_namespace,
        "job": w.job,
        "maxAgeSeconds": lapse.max_age_s,
        "since": lapse.since.isoformat(),
    }


def lapse_from_dict(data: Mapping[str, Any]) -> Lapse:
    write = LastWrite(
        namespace=data["namespace"],
        name=data["name"],
        at=datetime.fromisoformat(data["lastWrite"]),
        run_id=data["runId"],
        job_namespace=data["jobNamespace"],
        job=data["job"],
    )
    return Lapse(write, float(data["maxAgeSeconds"]), datetime.fromisoformat(data["since"]))
