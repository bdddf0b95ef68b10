"""Triage of ingest batches in a helper process, off the worker's event loop.

The worker's event loop is its bottleneck: Faust's fetching and acknowledging, the run-state
fold and every send share one thread (and one GIL), while the machine has CPU to spare.
Triage (JSON parse, validation, event ids, run updates, packing the text for the store) is
pure and was about a fifth of that thread's time, so it runs in a process of its own.

The result comes back through a file, not the executor's pipe: the pipe hands a 10 MB result
over in 64 KB reads, each of which gives up the GIL and waits to get it back from the busy
event loop (measured: 1.2 s per 1,600-event batch, against 0.25 s of triage). The file is
read in one call. Spill files live in ``<data dir>/triage/<pid>`` and are deleted once read;
those of a worker that was killed are deleted when the next one starts.

Small batches (an idle stream) are triaged in the loop: a round trip to the helper would cost
more than the work. If the helper dies (killed, out of memory), the batch is triaged in the
loop and a new helper is started for the next one, so a dying helper never stalls the stream.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import multiprocessing
import os
import pickle
import shutil
import signal
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

from lineage_faust.domain.triage import Batch, RawMessage, triage
from lineage_faust.store import Store
from lineage_faust.worker.store_writes import write_batch

log = logging.getLogger(__name__)

# below this many messages a batch is triaged in the loop (round trip ≈ the work)
INLINE_BELOW = 32


# In the helper process: its own handle on the worker's store (Store.for_helper), if any,
# and the event loop its writes run in (opened on the first batch).
_store: Store | None = None
_store_loop: asyncio.AbstractEventLoop | None = None


def _triage_messages(messages: list[RawMessage], options: dict[str, Any], spill_dir: str) -> str:
    """Runs in the helper process: triage (and the writes, if it may), and the pickled batch's
    file name."""
    batch = triage(messages, **options)
    if _store is not None:
        _write_here(batch, messages)
    fd, path = tempfile.mkstemp(dir=spill_dir, suffix=".batch")
    with os.fdopen(fd, "wb") as file:
        file.write(pickle.dumps(batch, protocol=pickle.HIGHEST_PROTOCOL))
    return path


def _write_here(batch: Batch, messages: list[RawMessage]) -> None:
    """Store the batch from the helper; if that fails, leave it to the worker, which writes
    it itself and retries until it can (what the helper got in first is not written twice:
    every write is idempotent)."""
    global _store_loop
    assert _store is not None
    try:
        if _store_loop is None:
            loop = asyncio.new_event_loop()
            loop.run_until_complete(_store.open())
            _store_loop = loop
        written = _store_loop.run_until_complete(write_batch(_store, batch, messages))
    except Exception as exc:
        log.warning("the triage helper could not store a batch, the worker will: %s", exc)
        return
    batch.keep_only_what_the_worker_needs(written)


def _read_spilled(path: str) -> Batch:
    try:
        with open(path, "rb") as file:
            data = file.read()
    finally:
        os.unlink(path)
    batch = pickle.loads(data)
    assert isinstance(batch, Batch)
    return batch


def _discard_spilled(future: Future[str]) -> None:
    if not future.cancelled() and future.exception() is None:
        Path(future.result()).unlink(missing_ok=True)


def _start_helper(level: str, worker_pid: int, store: Store | None) -> None:
    global _store
    _store = store
    # Ctrl-C reaches the whole process group: the worker decides when its helper stops
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    threading.Thread(target=_exit_with, args=(worker_pid,), daemon=True).start()
    gc.freeze()  # as the worker does: full collections skip what start-up built


def _exit_with(worker_pid: int) -> None:
    """A helper whose worker was killed would wait for work forever (it holds its own end
    of the work queue, so it never sees the queue close): leave when the worker is gone."""
    while os.getppid() == worker_pid:
        time.sleep(0.5)
    os._exit(0)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class TriagePool:
    """``await pool.triage(messages)``: the batch triaged in a helper process (or, with
    ``processes=0`` or a small batch, in the calling thread). ``close()`` stops the helper."""

    def __init__(
        self,
        processes: int,
        *,
        max_bytes: int,
        partitions: int,
        pack_text: Callable[[str], bytes] | None = None,
        spill_root: Path | None = None,
        log_level: str = "INFO",
        store: Store | None = None,
    ) -> None:
        """``store``: where the helper writes each batch it triaged (Store.for_helper), or
        None to leave the writes to the worker."""
        self.processes = processes
        self.store = store
        # triage's keyword arguments; pack_text is the store's (Store.pack_text)
        self.options: dict[str, Any] = {
            "max_bytes": max_bytes,
            "partitions": partitions,
            "pack_text": pack_text,
        }
        self.spill_root = spill_root or Path(tempfile.gettempdir()) / "lineage-faust-triage"
        self.log_level = log_level
        # told the reason of every batch triaged in the loop instead ("helper_died",
        # "handback_failed"): the worker counts them in /metrics
        self.on_fallback: Callable[[str], None] = lambda reason: None
        self._executor: ProcessPoolExecutor | None = None
        self._spill_dir: Path | None = None

    def start(self) -> None:
        """Start the helper now (it takes about a second to import), not on the first batch."""
        if not self.processes or self._executor is not None:
            return
        if self._spill_dir is None:
            self._spill_dir = self._make_spill_dir()
        self._executor = ProcessPoolExecutor(
            self.processes,
            # not fork: the worker has threads (Faust's consumer, the store's) by now
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_start_helper,
            initargs=(self.log_level, os.getpid(), self.store),
        )
        # the executor starts its process on the first task: start it now
        self._executor.submit(int)

    def _make_spill_dir(self) -> Path:
        self.spill_root.mkdir(parents=True, exist_ok=True)
        for old in self.spill_root.iterdir():  # left by workers that were killed
            if old.name.isdigit() and not _alive(int(old.name)):
                shutil.rmtree(old, ignore_errors=True)
        path = self.spill_root / str(os.getpid())
        shutil.rmtree(path, ignore_errors=True)
        path.mkdir()
        return path

    def inline(self, messages: list[RawMessage]) -> Batch:
        return triage(messages, **self.options)

    async def triage(self, messages: list[RawMessage]) -> Batch:
        if not self.processes or len(messages) < INLINE_BELOW:
            return self.inline(messages)
        self.start()
        assert self._executor is not None and self._spill_dir is not None
        try:
            spill_dir = str(self._spill_dir)
            future = self._executor.submit(_triage_messages, messages, self.options, spill_dir)
            path = await asyncio.wrap_future(future)
            return _read_spilled(path)
        except asyncio.CancelledError:  # stopping or rebalancing: nobody will read the file
            future.add_done_callback(_discard_spilled)
            raise
        except BrokenProcessPool:
            log.error(
                "the triage helper process died; this batch of %d is triaged in the worker, "
                "a new helper takes the next",
                len(messages),
            )
            self._shutdown(wait=False)
            self.on_fallback("helper_died")
        except Exception:  # the spill file could not be written or read (disk full, removed)
            log.exception(
                "triage in the helper failed; this batch of %d is triaged in the worker",
                len(messages),
            )
            self.on_fallback("handback_failed")
        return self.inline(messages)

    def _shutdown(self, *, wait: bool) -> None:
        executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=wait, cancel_futures=True)

    def close(self) -> None:
        self._shutdown(wait=True)
        if self._spill_dir is not None:
            shutil.rmtree(self._spill_dir, ignore_errors=True)
            self._spill_dir = None
