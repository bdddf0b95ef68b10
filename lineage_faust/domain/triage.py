"""Sorting one consumed batch into what to store, what to dead-letter and which run updates to
forward, grouped by the internal partition that owns each run. Pure: no Kafka, no store."""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import NamedTuple

import orjson

from lineage_faust.domain.datasets import DatasetIO, dataset_io
from lineage_faust.domain.dead_letters import STORED_VALUE_BYTES, digest, fit
from lineage_faust.domain.identity import run_partition
from lineage_faust.domain.model import Rejection, ValidEvent, parse_event
from lineage_faust.domain.records import DeadLetter, NonRunEvent, StoredEvent
from lineage_faust.domain.runstate import RunUpdate

log = logging.getLogger(__name__)

# Keep each internal run-updates message well under Kafka's default 1 MB message limit.
MAX_UPDATES_MESSAGE_BYTES = 512 * 1024


class RawMessage(NamedTuple):
    """A consumed message as triage sees it (a tuple: made for every event in the event loop,
    and pickled to the triage helper)."""

    value: bytes | None
    key: bytes | None
    topic: str
    partition: int
    offset: int
    headers: tuple[tuple[str, bytes], ...] = ()
    timestamp: float | None = None  # the broker's record time, seconds since 1970


@dataclass(frozen=True, slots=True)
class Rejected:
    message: RawMessage
    rejection: Rejection

    def dlq_headers(self) -> list[tuple[str, bytes]]:
        """Headers naming the reason and the source; the original headers are kept too."""
        return self._our_headers() + self._their_headers()

    def dlq_message(self, max_bytes: int) -> dict:
        """The dead letter for the dead-letter topic, cut to ``max_bytes`` if need be
        (``dead_letters.fit``)."""
        m = self.message
        value, headers = fit(m.key, m.value, self._our_headers(), self._their_headers(), max_bytes)
        return {"key": m.key, "value": value, "headers": headers}

    def _their_headers(self) -> list[tuple[str, bytes]]:
        return [(k, v) for k, v in self.message.headers if not k.startswith("lineage.")]

    def _our_headers(self) -> list[tuple[str, bytes]]:
        r, m = self.rejection, self.message
        ours = [
            ("lineage.dlq.reason", r.reason.encode()),
            ("lineage.dlq.detail", r.detail.encode("utf-8", "replace")),
            ("lineage.source.topic", m.topic.encode()),
            ("lineage.source.partition", str(m.partition).encode()),
            ("lineage.source.offset", str(m.offset).encode()),
        ]
        if r.field:
            ours.append(("lineage.dlq.field", r.field.encode("utf-8", "replace")))
        return ours

    def dead_letter(self, now: datetime) -> DeadLetter:
        m, r = self.message, self.rejection
        # The record's own time, when the broker gave one, so a redelivered message maps to
        # the same row (Cassandra keys dead letters by day and time).
        received = datetime.fromtimestamp(m.timestamp, UTC) if m.timestamp else now
        value = m.value[:STORED_VALUE_BYTES] if m.value is not None else None
        size = len(m.value) if m.value is not None else None
        return DeadLetter(
            m.topic,
            m.partition,
            m.offset,
            r.reason,
            r.detail,
            r.field,
            received,
            m.key[:STORED_VALUE_BYTES] if m.key is not None else None,
            value,
            value_bytes=size,
            value_sha256=digest(m.value),
        )


@dataclass(frozen=True, slots=True)
class Written:
    """A batch's rows in the store: how many, and how many of them were new."""

    run_events: int
    non_run_events: int
    new_run_events: int
    new_non_run_events: int
    seconds: float  # how long the writes took


@dataclass(slots=True)
class Batch:
    run_events: list[StoredEvent] = field(default_factory=list)
    non_run_events: list[NonRunEvent] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)
    dataset_io: list[DatasetIO] = field(default_factory=list)
    # internal partition -> encoded messages, each a JSON list of run updates
    update_messages: dict[int, list[bytes]] = field(default_factory=dict)
    # set when the triage helper stored the batch (sink.py): its rows stayed there, so the
    # lists of events and dataset links are empty; rejected ones are kept for the DLQ topic
    written: Written | None = None
    # the position in the consumed messages of each run event / non-run event (to dead-letter
    # the original message of an event the store refuses)
    run_sources: list[int] = field(default_factory=list)
    non_run_sources: list[int] = field(default_factory=list)

    @property
    def consumed(self) -> int:
        """Messages triaged (before the helper stored the batch and kept its rows)."""
        return len(self.run_events) + len(self.non_run_events) + len(self.rejected)

    def keep_only_what_the_worker_needs(self, written: Written) -> None:
        """The batch was stored where it was triaged: only the rejected messages and the
        run updates still have to go anywhere."""
        self.written = written
        self.run_events, self.non_run_events, self.dataset_io = [], [], []
        self.run_sources, self.non_run_sources = [], []

    def refuse(
        self, run_events: set[int], non_run_events: set[int], messages: list[RawMessage], why: str
    ) -> None:
        """Events the store refused for good (by position in ``run_events`` /
        ``non_run_events``) become dead letters of their original messages."""
        for kept, sources, refused in (
            (self.run_events, self.run_sources, run_events),
            (self.non_run_events, self.non_run_sources, non_run_events),
        ):
            for position in sorted(refused):
                rejection = Rejection("store_refused", why)
                self.rejected.append(Rejected(messages[sources[position]], rejection))
            kept[:] = [e for i, e in enumerate(kept) if i not in refused]
            sources[:] = [m for i, m in enumerate(sources) if i not in refused]

    def dead_letters(self) -> list[DeadLetter]:
        if not self.rejected:
            return []
        now = datetime.now(UTC)
        return [r.dead_letter(now) for r in self.rejected]


def _parse(message: RawMessage, max_bytes: int) -> ValidEvent | Rejection:
    try:
        return parse_event(message.value, max_bytes)
    except Exception as exc:  # a bug must not stall the stream or lose the message
        log.exception(
            "unexpected error validating %s[%d]@%d",
            message.topic,
            message.partition,
            message.offset,
        )
        return Rejection("internal_error", f"validation crashed: {type(exc).__name__}: {exc}")


def _encode_updates(items: list[bytes]) -> list[bytes]:
    """Pack encoded updates into as few messages as fit under the size cap."""
    messages: list[bytes] = []
    chunk: list[bytes] = []
    size = 2
    for item in items:
        if chunk and size + len(item) + 1 > MAX_UPDATES_MESSAGE_BYTES:
            messages.append(b"[" + b",".join(chunk) + b"]")
            chunk, size = [], 2
        chunk.append(item)
        size += len(item) + 1
    if chunk:
        messages.append(b"[" + b",".join(chunk) + b"]")
    return messages


def _prepare(
    event: ValidEvent, pack_text: Callable[[str], bytes] | None
) -> tuple[StoredEvent, str, bytes] | NonRunEvent:
    """What to store and forward for one valid event (the run update encoded once)."""
    if not event.is_run_event:
        return NonRunEvent.from_valid(event, pack_text)
    update = RunUpdate.from_event(event)
    # orjson encodes dataclasses natively (fast)
    return StoredEvent.from_valid(event, pack_text), update.run_id, orjson.dumps(update)


def triage(
    messages: list[RawMessage],
    *,
    max_bytes: int,
    partitions: int,
    pack_text: Callable[[str], bytes] | None = None,
) -> Batch:
    """``pack_text``: the store's (Store.pack_text), applied to each stored event's text."""
    batch = Batch()
    by_partition: defaultdict[int, list[bytes]] = defaultdict(list)
    for position, message in enumerate(messages):
        result = _parse(message, max_bytes)
        if isinstance(result, ValidEvent):
            try:
                ios = dataset_io(result)
                result = _prepare(result, pack_text)
                batch.dataset_io.extend(ios)
            except Exception as exc:  # a bug: dead-letter the message, never stall on it
                log.exception(
                    "unexpected error preparing %s[%d]@%d",
                    message.topic,
                    message.partition,
                    message.offset,
                )
                result = Rejection("internal_error", f"{type(exc).__name__}: {exc}"[:500])
        if isinstance(result, Rejection):
            batch.rejected.append(Rejected(message, result))
        elif isinstance(result, NonRunEvent):
            batch.non_run_events.append(result)
            batch.non_run_sources.append(position)
        else:
            stored, run_id, update = result
            batch.run_events.append(stored)
            batch.run_sources.append(position)
            by_partition[run_partition(run_id, partitions)].append(update)
    batch.update_messages = {p: _encode_updates(u) for p, u in by_partition.items()}
    return batch


def decode_updates(value: bytes) -> list[RunUpdate]:
    return [RunUpdate(**item) for item in orjson.loads(value)]
