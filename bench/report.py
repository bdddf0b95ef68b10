"""One table for every benchmark: figure, value, the ceiling or baseline measured in the same
run beside it, their ratio, and the goal; also written as JSON."""

from __future__ import annotations

import json
import os
import platform
import sys
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

RESULTS = Path("bench-results")


@dataclass(frozen=True, slots=True)
class Row:
    figure: str
    value: float
    unit: str
    baseline: float | None = None  # a ceiling or baseline measured in the same run
    baseline_name: str = ""
    goal: str = ""
    met: bool | None = None  # against the goal; None when there is no goal

    @property
    def ratio(self) -> float | None:
        return self.value / self.baseline if self.baseline else None


def lineage_env(bootstrap: str | None = None, topic: str | None = None, **settings: str) -> dict:
    """This environment without any LINEAGE_* of the caller's (LINEAGE_BATCH_* kept, so batch
    sizes can be compared), plus the embedded broker and topic when given, plus ``settings``."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("LINEAGE_") or k.startswith("LINEAGE_BATCH_")
    }
    if bootstrap:
        env.update(LINEAGE_KAFKA_BOOTSTRAP=bootstrap, LINEAGE_EMBEDDED_BROKER="1")
    if topic:
        env["LINEAGE_TOPIC"] = topic
    return {**env, **settings}


def peak_rss_mb(pid: int) -> float:
    """A process's peak resident memory so far (VmHWM), in MB."""
    return _status_mb(pid, "VmHWM:")


def helpers_peak_rss_mb(pid: int) -> float:
    """Summed peak RSS of a worker's child processes (its triage helper and the resource
    tracker multiprocessing starts): peaks taken apart, so an upper bound."""
    return sum(peak_rss_mb(child) for child in children(pid))


def children(pid: int) -> list[int]:
    """The pids of ``pid``'s child processes (from /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # exited meanwhile
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def rss_mb(pid: int) -> float:
    return _status_mb(pid, "VmRSS:")


def _status_mb(pid: int, field: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field):
            return int(line.split()[1]) / 1024
    return float("nan")


def _fmt(value: float | None) -> str:
    if value is None:
        return ""
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:,.2f}"


def print_table(rows: list[Row], file=sys.stdout) -> None:
    print(
        f"\n{'figure':52} {'value':>10} {'unit':8} {'ceiling/baseline':>32} {'ratio':>6}  goal",
        file=file,
    )
    for r in rows:
        base = f"{_fmt(r.baseline)} ({r.baseline_name})" if r.baseline is not None else ""
        ratio = f"{r.ratio:.2f}" if r.ratio is not None else ""
        verdict = "" if r.met is None else (" met" if r.met else " NOT met")
        line = f"{r.figure:52} {_fmt(r.value):>10} {r.unit:8} {base:>32} {ratio:>6}"
        print(f"{line}  {r.goal}{verdict}", file=file)


def write_json(name: str, rows: list[Row], **context: object) -> Path:
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    body = {
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "cores": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        **context,
        "rows": [{**asdict(r), "ratio": r.ratio} for r in rows],
    }
    path.write_text(json.dumps(body, indent=2))
    return path
