"""Faust's per-message bookkeeping, trimmed to what the worker uses.

Every message a worker consumes passes through two pieces of Faust it does not need in full:

- :class:`RawSchema` — every topic carries bytes we encode ourselves (orjson), so a message's
  key and value are its event's key and value. Faust's ``Schema`` gets there through the
  serializer registry and the ``raw`` codec, twice per message (about 4 % of the worker's
  event loop under a backlog, py-spy).
- :class:`LeanMonitor` — Faust's Monitor sensor counts and times every message and event,
  per topic, stream and task (about 3.5 % of the loop), for Faust's own web statistics pages,
  which the worker does not serve: its metrics are its own (``metrics.py``). What Faust itself
  reads back is kept: the time a partition's stream last took an event (its "stream idle"
  warnings), the committed and end offsets, and the less frequent hooks (commits, rebalances).
"""

from __future__ import annotations

from time import monotonic
from typing import Any

import faust
from faust.sensors import Monitor
from faust.types import AppT, EventT, Message, StreamT
from faust.types.tuples import TP


class RawSchema(faust.Schema):
    """A topic's keys and values as the broker's bytes, with no codec in between."""

    def compile(self, app: AppT, **_: Any) -> Any:
        create_event = app.create_event

        async def decode(message: Message, *, propagate: bool = False) -> EventT:
            return create_event(message.key, message.value, message.headers, message)

        return decode


class LeanMonitor(Monitor):
    """Faust's Monitor without its per-message statistics."""

    def on_message_in(self, tp: TP, offset: int, message: Message) -> None:
        pass

    def on_stream_event_in(
        self, tp: TP, offset: int, stream: StreamT, event: EventT
    ) -> dict | None:
        # read by the aiokafka driver's check for streams that stopped taking events
        self.stream_inbound_time[tp] = monotonic()
        return None

    def on_stream_event_out(
        self, tp: TP, offset: int, stream: StreamT, event: EventT, state: dict | None = None
    ) -> None:
        pass

    def on_message_out(self, tp: TP, offset: int, message: Message) -> None:
        pass

    def on_send_initiated(self, *args: Any, **kwargs: Any) -> None:
        return None

    def on_send_completed(self, *args: Any, **kwargs: Any) -> None:
        pass

    def on_table_get(self, table: Any, key: Any) -> None:
        pass

    def on_table_set(self, table: Any, key: Any, value: Any) -> None:
        pass

    def on_table_del(self, table: Any, key: Any) -> None:
        pass
