"""Where a benchmark's workers store, and how its progress is read without the store's files.

``sqlite`` (a file per run) is always measured; ``cassandra`` when ``LINEAGE_STORE`` names a
cluster (``cassandra://host:9042/any``: each run gets a fresh keyspace, dropped after).
Progress comes from the workers' own counters (``/metrics``); the store is read once at the
end, through the store interface, to check every run's state is there.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import httpx

from bench.report import Row, print_table
from lineage_faust.store import open_store

CLK_TCK = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class StoreTarget:
    name: str  # "SQLite" / "Cassandra"
    url: str

    def env(self) -> dict[str, str]:
        return {"LINEAGE_STORE": self.url}


def cassandra_url() -> str | None:
    url = os.environ.get("LINEAGE_STORE", "")
    return url if url.startswith("cassandra://") else None


def skipped_cassandra() -> str:
    return "Cassandra: skipped (set LINEAGE_STORE=cassandra://host:9042/ks to measure it)"


@contextmanager
def store_target(kind: str, tmp: Path) -> Iterator[StoreTarget]:
    """A fresh, empty store of ``kind``; a Cassandra keyspace is dropped afterwards."""
    if kind == "sqlite":
        yield StoreTarget("SQLite", f"sqlite:///{tmp / 'lineage.db'}")
        return
    base = cassandra_url()
    assert base is not None
    keyspace = f"bench_{uuid.uuid4().hex[:12]}"
    head, _, _ = base.partition("://")[2].partition("/")
    url = f"cassandra://{head}/{keyspace}"
    try:
        yield StoreTarget("Cassandra", url)
    finally:
        _drop_keyspace(url, keyspace)


def for_each_store(measure: Callable[[StoreTarget, Path], list[Row]]) -> list[Row]:
    """``measure`` on a fresh SQLite store, then on a fresh Cassandra keyspace when
    ``LINEAGE_STORE`` names a cluster (else a line says it was skipped); the table so far is
    printed after each, so a long run shows progress."""
    rows: list[Row] = []
    for kind in ["sqlite", "cassandra"] if cassandra_url() else ["sqlite"]:
        with tempfile.TemporaryDirectory() as tmp, store_target(kind, Path(tmp)) as target:
            rows += measure(target, Path(tmp))
            print_table(rows, file=sys.stderr)
    if not cassandra_url():
        print(skipped_cassandra(), file=sys.stderr)
    return rows


def _drop_keyspace(url: str, keyspace: str) -> None:
    from lineage_faust.settings import parse_cassandra
    from lineage_faust.store.cassandra.store import CassandraStore

    CassandraStore(parse_cassandra(url, os.environ)).drop_keyspace()


def metric(text: str, name: str, labels: str = "") -> float:
    """Sum of a metric family's samples whose labels contain ``labels``."""
    total = 0.0
    for found_labels, value in re.findall(rf"^{name}(\{{[^}}]*\}})? (\S+)$", text, re.M):
        if labels in (found_labels or ""):
            total += float(value)
    return total


def scrape(ports: list[int]) -> str:
    texts = []
    for port in ports:
        with suppress(httpx.HTTPError):
            texts.append(httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text)
    return "\n".join(texts)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (``/proc/<pid>/stat``)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def find_pid(pattern: str) -> int | None:
    """The first process whose command line contains ``pattern`` (e.g. Cassandra's JVM)."""
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if pattern.encode() in cmdline.read_bytes():
                return int(cmdline.parent.name)
        except OSError:
            continue
    return None


async def terminal_runs(url: str, run_ids: list[str]) -> int:
    """How many of ``run_ids`` have a terminal status in the store (the store interface)."""
    store = open_store(url)
    await store.open()
    try:
        done = 0
        for i in range(0, len(run_ids), 500):
            found = await store.get_run_statuses(run_ids[i : i + 500])
            done += sum(1 for s in found.values() if s.state in ("COMPLETE", "FAIL", "ABORT"))
        return done
    finally:
        await store.close()


def wait_for(check, timeout_s: float, what: str, interval_s: float = 0.1) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not reached in {timeout_s:.0f} s")
        time.sleep(interval_s)


def sqlite_count(db: Path, sql: str) -> int:
    """A count from a SQLite store file, read-only (0 while the file or table is missing)."""
    import sqlite3

    if not db.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
            return conn.execute(sql).fetchone()[0]
    except sqlite3.OperationalError:
        return 0
