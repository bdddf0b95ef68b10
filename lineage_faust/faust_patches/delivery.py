"""Faust's consumer loop, with each fetched message handed to its stream without a task.

faust-streaming's ``Consumer._drain_messages`` delivers every message through
``wait_first(callback(message), suspend_flow.wait())``: four tasks created, an
``asyncio.wait``, three tasks cancelled, per message. py-spy put that at 15 % of the worker's
event-loop time under a backlog, for a callback that almost never waits (it puts the
message into the stream's queue; it waits only when that queue is full, or while flow
control or the producer's buffer holds it).

Here the callback's first step runs at once, in the loop's own task (as Python 3.12's eager
tasks do). If it finishes there, which is the usual case, that is all; if it has to wait,
the rest of it becomes a task and is raced against ``suspend_flow`` exactly as Faust does.
The loop otherwise is Faust 0.15.3's, line for line (``FAUST_LOOP_SHA256`` pins that version:
a Faust upgrade that changes its loop fails ``tests/test_delivery.py`` until this copy is
brought in line). The loop now yields to the event loop every 100 messages (Faust's own
``yield_every``) instead of at every message.

A second change: a gap in a partition's offsets is read again before it is believed. Faust
counts offsets it never received as acknowledged ("a gap": compaction and transaction
markers leave real ones) and commits past them. After a rebalance in a rolling restart (one
of two workers told to stop while events arrived), the first record delivered for a
partition was now and then several offsets past the last one read, the ones between never
delivered: counted as a gap, committed, lost (``tests/integration/test_crash.py``, 4-12
events in about half the runs). Here the loop seeks back to the first missing offset once;
only if the same gap comes again is it real and counted as Faust does.
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
from collections.abc import Awaitable, Coroutine, Generator
from typing import Any, cast

from faust.transport.consumer import CONSUMER_FETCHING
from faust.transport.consumer import Consumer as FaustConsumer
from mode import Service

# sha256 of the source of faust-streaming 0.15.3's Consumer._drain_messages
FAUST_LOOP_SHA256 = "44a2500309e83c630493f6828af50166ec8d96a0b3e4fb2bab735f704ae93417"


def faust_loop_sha256() -> str:
    return hashlib.sha256(inspect.getsource(FaustConsumer._drain_messages).encode()).hexdigest()


class _Rest:
    """The rest of a coroutine whose first step already ran; awaiting it drives the
    coroutine on from the future it was waiting for."""

    __slots__ = ("_coro", "_first")

    def __init__(self, coro: Coroutine[Any, Any, Any], first: Any) -> None:
        self._coro, self._first = coro, first

    def __await__(self) -> Generator[Any, Any, Any]:
        coro, waiting_for = self._coro, self._first
        while True:
            try:
                sent = yield waiting_for
            except GeneratorExit:
                coro.close()
                raise
            except BaseException as exc:  # thrown in by the task (cancellation): pass it on
                try:
                    waiting_for = coro.throw(exc)
                except StopIteration as stop:
                    return stop.value
                continue
            try:
                waiting_for = coro.send(sent)
            except StopIteration as stop:
                return stop.value


def start_eagerly(coro: Coroutine[Any, Any, Any]) -> Awaitable[Any] | None:
    """Run ``coro`` until it first waits: None if it finished (its result is not needed
    here), else an awaitable of the rest. An exception it raises at once propagates."""
    try:
        first = coro.send(None)
    except StopIteration:
        return None
    return _Rest(coro, first)


async def drain_messages(self: FaustConsumer, fetcher: Service) -> None:  # pragma: no cover
    """``Consumer._drain_messages`` of faust-streaming 0.15.3, delivering eagerly."""
    callback = self.callback
    getmany = self.getmany
    consumer_should_stop = cast(Service, self)._stopped.is_set
    fetcher_should_stop = cast(Service, fetcher)._stopped.is_set

    get_read_offset = self._read_offset.__getitem__
    set_read_offset = self._read_offset.__setitem__
    flag_consumer_fetching = CONSUMER_FETCHING
    set_flag = self.diag.set_flag
    unset_flag = self.diag.unset_flag
    commit_every = self._commit_every
    acks_enabled_for = self.app.topics.acks_enabled_for

    yield_every = 100
    num_since_yield = 0
    sleep = asyncio.sleep
    refetched: dict[Any, int] = {}  # partition -> the offset it was last sought back to

    try:
        while not (consumer_should_stop() or fetcher_should_stop()):
            set_flag(flag_consumer_fetching)
            ait = getmany(timeout=1.0)
            await self.sleep(0)
            if not self.should_stop:
                sought_back: set[Any] = set()  # partitions this fetch's records are stale for
                async for tp, message in ait:
                    if tp in sought_back:
                        continue  # fetched before the seek back: they come again after it
                    num_since_yield += 1
                    if num_since_yield > yield_every:
                        await sleep(0)
                        num_since_yield = 0

                    offset = message.offset
                    r_offset = get_read_offset(tp)
                    if r_offset is None or offset >= r_offset:
                        gap = offset - (r_offset or 0)
                        if gap > 1 and r_offset:
                            acks_enabled = acks_enabled_for(message.topic)
                            if acks_enabled:
                                if refetched.get(tp) != r_offset + 1:
                                    self.log.warning(
                                        "%s: offsets %d to %d were never delivered: reading "
                                        "them again",
                                        tp,
                                        r_offset + 1,
                                        offset - 1,
                                    )
                                    refetched[tp] = r_offset + 1
                                    await self.seek(tp, r_offset + 1)
                                    set_read_offset(tp, r_offset)  # still the last one read
                                    sought_back.add(tp)
                                    continue
                                await self._add_gap(tp, r_offset + 1, offset)
                        if commit_every is not None and self._n_acked >= commit_every:
                            self._n_acked = 0
                            await self.commit()
                        # the one change: Faust's wait_first only if the callback must wait
                        rest = start_eagerly(callback(message))
                        if rest is not None:
                            await self.wait_first(rest, self.suspend_flow.wait())
                        set_read_offset(tp, offset)
                    else:
                        self.log.dev(
                            "DROPPED MESSAGE ROFF %r: k=%r v=%r",
                            offset,
                            message.key,
                            message.value,
                        )
                unset_flag(flag_consumer_fetching)

    except self.consumer_stopped_errors:
        if self.transport.app.should_stop:
            self.log.info("Broker stopped consumer, shutting down...")
            return
        raise
    except asyncio.CancelledError:
        if self.transport.app.should_stop:
            self.log.info("Consumer shutting down for user cancel.")
            return
        raise
    except Exception as exc:
        self.log.exception("Drain messages raised: %r", exc)
        raise
    finally:
        unset_flag(flag_consumer_fetching)
