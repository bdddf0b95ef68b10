"""Triage in a real helper process: the same batch as in the loop, nothing left behind, and a
helper that dies neither loses the batch nor stalls the next one."""

from __future__ import annotations

import os
import pickle
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lineage_faust.domain.triage import Batch, RawMessage, triage
from lineage_faust.settings import parse_settings
from lineage_faust.store.sqlite.codecs import pack_text
from lineage_faust.store.sqlite.store import SQLiteStore
from lineage_faust.worker.triage_pool import INLINE_BELOW, TriagePool
from tests.support.helpers import SAMPLES
from tests.support.olclient import job_event, new_run_id, run_event


def messages() -> list[RawMessage]:
    values = [*SAMPLES.read_bytes().splitlines(), b"oops", None, job_event()]
    values = values * (INLINE_BELOW // len(values) + 1)  # big enough for the helper
    return [
        RawMessage(v, b"key", "events", 1, 10 + i, (("trace", b"abc"),), 1_700_000_000.0)
        for i, v in enumerate(values)
    ]


def same(a: Batch, b: Batch) -> None:
    assert a.run_events == b.run_events
    assert [e.packed for e in a.run_events] == [e.packed for e in b.run_events]
    assert a.non_run_events == b.non_run_events
    assert [e.packed for e in a.non_run_events] == [e.packed for e in b.non_run_events]
    assert a.rejected == b.rejected
    assert a.dataset_io == b.dataset_io
    assert a.update_messages == b.update_messages


@pytest.fixture
def pool(tmp_path: Path):
    pool = TriagePool(
        1, max_bytes=1 << 20, partitions=4, pack_text=pack_text, spill_root=tmp_path / "spill"
    )
    yield pool
    pool.close()


async def test_helper_triages_exactly_as_the_loop_would(pool: TriagePool, tmp_path: Path) -> None:
    batch = messages()
    assert len(batch) >= INLINE_BELOW
    told: list[str] = []
    pool.on_fallback = told.append
    got = await pool.triage(batch)
    same(got, triage(batch, max_bytes=1 << 20, partitions=4, pack_text=pack_text))
    stored = [*got.run_events, *got.non_run_events]
    assert got.run_events and all(e.packed == pack_text(e.event) for e in stored)
    assert len(got.rejected) == len(batch) // 31 * 2 and got.non_run_events
    assert told == []  # the helper did it
    [spill] = (tmp_path / "spill").iterdir()
    assert spill.name == str(os.getpid()) and list(spill.iterdir()) == []  # read and deleted
    pool.close()
    assert not spill.exists()


async def test_small_batches_stay_in_the_loop(pool: TriagePool) -> None:
    small = messages()[:3]
    got = await pool.triage(small)
    same(got, triage(small, max_bytes=1 << 20, partitions=4, pack_text=pack_text))
    assert pool._executor is None  # no helper was needed


async def test_a_killed_helper_loses_nothing_and_is_replaced(pool: TriagePool) -> None:
    batch = messages()
    expected = triage(batch, max_bytes=1 << 20, partitions=4, pack_text=pack_text)
    same(await pool.triage(batch), expected)
    assert pool._executor is not None
    [helper] = pool._executor._processes  # type: ignore[attr-defined]
    told: list[str] = []
    pool.on_fallback = told.append
    os.kill(helper, signal.SIGKILL)
    same(await pool.triage(batch), expected)  # triaged in the loop instead
    assert told == ["helper_died"]
    same(await pool.triage(batch), expected)  # and a new helper takes the next
    assert pool._executor is not None and helper not in pool._executor._processes  # type: ignore[attr-defined]
    assert told == ["helper_died"]


async def test_a_batch_whose_spill_file_fails_is_triaged_in_the_loop(pool: TriagePool) -> None:
    batch = messages()
    expected = triage(batch, max_bytes=1 << 20, partitions=4, pack_text=pack_text)
    pool.start()
    assert pool._spill_dir is not None
    shutil.rmtree(pool._spill_dir)  # as good as a full disk: the helper cannot write its file
    told: list[str] = []
    pool.on_fallback = told.append
    same(await pool.triage(batch), expected)
    assert told == ["handback_failed"]  # the helper was not replaced
    pool._spill_dir.mkdir()
    same(await pool.triage(batch), expected)  # the helper is still there for the next one
    assert told == ["handback_failed"]


def storing_pool(tmp_path: Path, store: SQLiteStore) -> TriagePool:
    """A one-helper pool whose helper writes each batch to ``store`` (Store.for_helper)."""
    return TriagePool(
        1,
        max_bytes=1 << 20,
        partitions=4,
        pack_text=pack_text,
        spill_root=tmp_path / "spill",
        store=store.for_helper(),
    )


async def test_a_helper_given_the_store_writes_the_batch_there(tmp_path: Path) -> None:
    """The rows are stored by the helper and stay there: the worker gets back only what it
    still sends (dead letters, run updates) and how many rows were new."""
    batch = [
        *messages(),
        RawMessage(run_event("COMPLETE", new_run_id()), None, "events", 2, 0),
    ]  # with datasets
    expected = triage(batch, max_bytes=1 << 20, partitions=4, pack_text=pack_text)
    store = SQLiteStore(tmp_path / "lineage.db", retention_s=3600)
    await store.open()
    pool = storing_pool(tmp_path, store)
    told: list[str] = []
    pool.on_fallback = told.append
    try:
        got = await pool.triage(batch)
        distinct = {(e.run_id, e.event_id) for e in expected.run_events}
        assert 1 < len(distinct) < len(expected.run_events)  # the batch repeats its events
        assert got.written is not None and told == []
        assert got.written.run_events == len(expected.run_events)
        assert got.written.new_run_events == len(distinct)
        assert got.written.non_run_events == len(expected.non_run_events)
        assert got.run_events == got.non_run_events == got.dataset_io == []
        assert got.rejected == expected.rejected
        assert got.update_messages == expected.update_messages
        # what the helper wrote, read through the worker's own store
        run_id, event_id = next(iter(distinct))
        stored = await store.get_event(run_id, event_id)
        original = next(e for e in expected.run_events if e.event_id == event_id)
        assert stored is not None and stored.event == original.event
        letters = await store.get_dead_letters(100)
        assert {d.offset for d in letters} == {r.message.offset for r in expected.rejected}
        reader = next(io.run_id for io in expected.dataset_io if io.run_id)
        assert {
            (io.namespace, io.name, io.direction) for io in await store.run_datasets(reader)
        } == {
            (io.namespace, io.name, io.direction)
            for io in expected.dataset_io
            if io.run_id == reader
        }
        again = await pool.triage(batch)  # redelivered: nothing new
        assert again.written is not None and again.written.new_run_events == 0
        assert again.written.new_non_run_events == 0
    finally:
        pool.close()
        await store.close()


async def test_a_helper_that_cannot_write_leaves_the_batch_to_the_worker(
    tmp_path: Path,
) -> None:
    batch = messages()
    expected = triage(batch, max_bytes=1 << 20, partitions=4, pack_text=pack_text)
    (tmp_path / "not-a-directory").write_text("")
    unusable = SQLiteStore(tmp_path / "not-a-directory" / "lineage.db")
    pool = storing_pool(tmp_path, unusable)
    try:
        got = await pool.triage(batch)
        assert got.written is None
        same(got, expected)  # every row is still there for the worker to write
    finally:
        pool.close()


def test_a_sqlite_store_pickles_unopened() -> None:
    store = SQLiteStore("/somewhere/lineage.db", timeout_s=2.0, retention_s=60)
    copy = pickle.loads(pickle.dumps(store.for_helper()))
    assert copy.path == store.path and copy._options == store._options
    assert copy._executor is None and copy._conn is None


def test_a_helper_leaves_when_its_worker_is_killed(tmp_path: Path) -> None:
    """A worker killed with SIGKILL cannot stop its helper: the helper must notice."""
    script = (
        "import sys\nfrom pathlib import Path\n"
        "from lineage_faust.worker.triage_pool import TriagePool\n"
        "pool = TriagePool(1, max_bytes=1 << 20, partitions=4, spill_root=Path(sys.argv[1]))\n"
        "pool.start()\n"
        "pool._executor.submit(int).result()\n"
        "print(*pool._executor._processes, flush=True)\n"
        "sys.stdin.read()\n"
    )
    worker = subprocess.Popen(
        [sys.executable, "-c", script, str(tmp_path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert worker.stdout is not None
        helper = int(worker.stdout.readline())
        assert alive(helper)
        worker.kill()
        worker.wait()
        deadline = time.monotonic() + 10
        while alive(helper) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not alive(helper)
    finally:
        worker.kill()


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie has exited; it only waits for its parent to read its status
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    except OSError:
        return False


def test_spill_files_of_killed_workers_are_removed_on_start(tmp_path: Path) -> None:
    root = tmp_path / "spill"
    (root / "999999999").mkdir(parents=True)  # no such process
    (root / "999999999" / "x.batch").write_bytes(b"left behind")
    (root / "1").mkdir()  # init: alive, not ours to touch
    pool = TriagePool(1, max_bytes=1 << 20, partitions=4, spill_root=root)
    try:
        pool.start()
        assert sorted(p.name for p in root.iterdir()) == sorted(["1", str(os.getpid())])
    finally:
        pool.close()


def test_helper_count_is_configurable() -> None:
    assert parse_settings({}).triage_processes == 1
    assert parse_settings({"LINEAGE_TRIAGE_PROCESSES": "0"}).triage_processes == 0
