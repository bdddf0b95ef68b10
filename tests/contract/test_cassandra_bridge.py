"""The Cassandra store's bridge from the driver's callback threads to asyncio, its retries and
its in-flight bound — our code, driven by a stand-in for the driver's session whose futures
complete on other threads like the real ones. (The statements themselves are checked by
test_cassandra_cql.py and, with a cluster, by the contract suite.)"""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
from cassandra import InvalidRequest, OperationTimedOut, Unavailable
from cassandra.cluster import NoHostAvailable

from lineage_faust.settings import parse_cassandra
from lineage_faust.store import StoreError
from lineage_faust.store.cassandra.store import CassandraStore


class FakeResponseFuture:
    """Completes on its own thread after a delay, as the driver's event loop thread does."""

    _col_names = _col_types = None

    def __init__(self, outcome: object, paging_state: bytes | None, session: FakeSession):
        self._outcome, self._paging_state, self._session = outcome, paging_state, session

    def add_callbacks(self, callback, errback) -> None:
        def complete() -> None:
            time.sleep(0.01)
            with self._session.lock:
                self._session.running -= 1
            if isinstance(self._outcome, BaseException):
                errback(self._outcome)
            else:
                callback(self._outcome)

        threading.Thread(target=complete, daemon=True).start()


class FakeSession:
    def __init__(self, outcomes: list) -> None:
        self.outcomes = outcomes
        self.calls = 0
        self.running = 0
        self.most_running = 0
        self.lock = threading.Lock()

    def execute_async(self, statement, paging_state=None):
        self.calls += 1
        with self.lock:
            self.running += 1
            self.most_running = max(self.most_running, self.running)
        outcome = self.outcomes.pop(0) if self.outcomes else [("row",)]
        return FakeResponseFuture(outcome, b"next" if outcome == [("paged",)] else None, self)


class FakePrepared:
    def bind(self, values):
        return type("Bound", (), {"values": values, "fetch_size": None})()


def make_store(outcomes: list, max_in_flight: int = 256) -> tuple[CassandraStore, FakeSession]:
    options = parse_cassandra(f"cassandra://h/ks?max_in_flight={max_in_flight}", {})
    store = CassandraStore(options)
    session = FakeSession(outcomes)
    store._session = session
    store._prepared = {"q": FakePrepared()}
    store._errors = (Unavailable, OperationTimedOut, NoHostAvailable, OSError)
    return store, session


async def test_rows_and_paging_state_arrive_on_the_loop() -> None:
    store, _ = make_store([[("paged",)]])
    rows, state = await store._execute("q", ("run",), fetch_size=1)
    assert rows == [("paged",)] and state == b"next"


async def test_writes_return_no_rows() -> None:
    store, _ = make_store([None])
    assert await store._execute("q", ()) == ([], None)


async def test_transient_errors_are_retried_then_succeed() -> None:
    store, session = make_store([OperationTimedOut("slow"), Unavailable("down"), [("ok",)]])
    rows, _ = await store._execute("q", ())
    assert rows == [("ok",)] and session.calls == 3


async def test_persistent_outage_becomes_store_error() -> None:
    store, session = make_store([NoHostAvailable("none", {})] * 5)
    with pytest.raises(StoreError, match="cassandra q"):
        await store._execute("q", ())
    assert session.calls == 3  # bounded here; the worker retries the whole batch later


async def test_refused_statements_are_not_retried() -> None:
    store, session = make_store([InvalidRequest("bad")])
    with pytest.raises(StoreError, match="refused"):
        await store._execute("q", ())
    assert session.calls == 1


async def test_in_flight_requests_are_bounded() -> None:
    store, session = make_store([], max_in_flight=4)
    results = await asyncio.gather(*(store._execute("q", (i,)) for i in range(40)))
    assert len(results) == 40 and session.calls == 40
    assert session.most_running <= 4


async def test_not_open_is_a_store_error() -> None:
    store, _ = make_store([])
    store._session = None
    with pytest.raises(StoreError, match="not open"):
        await store._execute("q", ())
