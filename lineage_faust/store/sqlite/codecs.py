"""How the SQLite store keeps values: times as microseconds, event text packed with zstd,
rows written in few statement shapes, time-ordered cursors."""

from __future__ import annotations

import sqlite3
import threading
import time
import uuid
import zlib
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import zstandard

from lineage_faust.domain.records import RunStatus, StoredEvent, status_from_row
from lineage_faust.store.cursors import open_cursor, seal_cursor
from lineage_faust.store.errors import InvalidCursor

_PURGE_EVERY_S = 60.0
# Read threads, each its own connection and page cache: with one, the API benchmark's 4
# clients queued behind each other's disk reads (Atlas lookup p99 33-67 ms at 1M events
# when the page cache did not hold the store; 14-20 ms with 4). Their caches together are the
# size the single reader's was (32 MB): the OS page cache is shared, these are not.
READERS = 4
READER_CACHE_KB = 8_000
WRITER_CACHE_KB = 32_000
_LIVE = "(expiresAt IS NULL OR expiresAt > ?)"

_EVENT_COLUMNS = "eventId, runId, jobName, source, eventTime, status, event"


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _us(value: datetime | None) -> int | None:
    if value is None:
        return None
    delta = value - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _dt(value: int | None) -> datetime | None:
    if value is None:
        return None
    seconds, micros = divmod(value, 1_000_000)
    return datetime.fromtimestamp(seconds, UTC).replace(microsecond=micros)


# zstd contexts are not safe to share between threads (API reads run in a thread pool)
_codecs = threading.local()
ZSTD_LEVEL = 3
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


def pack_text(text: str) -> bytes:
    """Event text as stored: zstd-compressed UTF-8 (a BLOB in the ``event`` TEXT column).

    Airflow events shrink about 3.8 times (5.5 KB to 1.4 KB): the benchmark's store of 1M
    events is 2.5 GB instead of 6.1 GB and a row fits in one page instead of two, so fewer
    lookups read the disk when the store outgrows the page cache. zstd (level 3) costs about
    19 µs of CPU per event and reading one back about 6 µs; zlib (level 1, used before, still
    read) cost 57 and 16 µs for a slightly worse ratio. Events arrive packed by triage
    (``SQLiteStore.pack_text``, in the worker's triage helper process): packed in the writer
    thread, zlib's release and re-acquisition of the GIL for every event made each one wait
    for the busy event loop — measured 314 µs of wall time per event for 62 µs of CPU.
    """
    compressor = getattr(_codecs, "compressor", None)
    if compressor is None:
        compressor = _codecs.compressor = zstandard.ZstdCompressor(level=ZSTD_LEVEL)
    return compressor.compress(text.encode())


def _unpack_text(value: str | bytes) -> str:
    """The original JSON, verbatim. Rows keep the form they were written in: zstd, zlib
    (earlier versions) or plain TEXT (before compression)."""
    if isinstance(value, str):
        return value
    if value.startswith(ZSTD_MAGIC):
        decompressor = getattr(_codecs, "decompressor", None)
        if decompressor is None:
            decompressor = _codecs.decompressor = zstandard.ZstdDecompressor()
        return decompressor.decompress(value).decode()
    return zlib.decompress(value).decode()


def _event_row(row: tuple) -> StoredEvent:
    event_id, run_id, job_name, source, event_time, status, event = row
    return StoredEvent(
        uuid.UUID(event_id), run_id, job_name, source, _dt(event_time), status, _unpack_text(event)
    )


def _status_row(row: Sequence[Any]) -> RunStatus:
    return status_from_row(row, _dt)


def _now_us() -> int:
    return time.time_ns() // 1000


def _open_time_cursor(scope: str, cursor: str | None) -> tuple[int, str] | None:
    """A listing's position: (the sort time of the last row, its tie-breaking key)."""
    if not cursor:
        return None
    raw = open_cursor(scope, cursor)
    if len(raw) < 8:
        raise InvalidCursor("pagingState was not issued for this query")
    return int.from_bytes(raw[:8], "big", signed=True), raw[8:].decode()


def _seal_time_cursor(scope: str, at: int, key: str) -> str:
    return seal_cursor(scope, at.to_bytes(8, "big", signed=True) + key.encode())


# SQLite >= 3.32 binds up to 32,766 parameters per statement; 1,024 rows keep the SQL short.
_MAX_PARAMS = 32_000
_Row = tuple[Any, ...]
_MAX_ROWS = 1_024


def _chunks(rows: Sequence[_Row]) -> list[Sequence[_Row]]:
    """The rows in statements of power-of-two sizes: full ones, then the remainder's binary
    digits (1,000 rows: 512, 256, 128, 64, 32, 8), so a statement has at most 11 shapes.
    sqlite3 keeps each distinct statement's compiled program per connection (128 of them),
    about 2 KB per row of a multi-row INSERT: with each batch size its own statement, one
    connection grew by 100+ MB as sizes accumulated (README, Performance)."""
    if not rows:
        return []
    per = max(1, min(_MAX_ROWS, _MAX_PARAMS // max(1, len(rows[0]))))
    per = 1 << (per.bit_length() - 1)
    chunks: list[Sequence[_Row]] = []
    start = 0
    while start < len(rows):
        size = min(per, 1 << ((len(rows) - start).bit_length() - 1))
        chunks.append(rows[start : start + size])
        start += size
    return chunks


def _padded(values: Sequence[Any], limit: int = 512) -> list[list[Any]]:
    """``values`` in lists for ``IN (…)`` of power-of-two lengths, the last value repeated to
    fill one up (harmless in IN): few statement shapes, as with _chunks."""
    lists: list[list[Any]] = []
    for start in range(0, len(values), limit):
        part = list(values[start : start + limit])
        size = 1 << (len(part) - 1).bit_length()
        lists.append(part + [part[-1]] * (size - len(part)))
    return lists


def _values(chunk: Sequence[tuple[Any, ...]]) -> tuple[str, list[Any]]:
    """``(?, …), (?, …), …`` for the chunk's rows, and their parameters flattened."""
    one = f"({', '.join('?' * len(chunk[0]))})"
    return ", ".join([one] * len(chunk)), [value for row in chunk for value in row]


def _execute_rows(
    conn: sqlite3.Connection, head: str, rows: Sequence[tuple[Any, ...]], tail: str = ""
) -> int:
    """``{head} VALUES (…), (…), … {tail}`` over all rows: how many rows it changed.

    Many rows per statement, not ``executemany``'s one: sqlite3 releases the GIL around every
    statement it steps, and while the event loop's thread is busy each re-acquisition can wait
    out the 5 ms switch interval. Measured with a busy main thread, 5 KB events: 5,300 µs per
    row with ``executemany``, 50 to 70 µs in statements of 200 to 1,000 rows (42 µs with no
    contention).
    """
    before = conn.total_changes
    for chunk in _chunks(rows):
        placeholders, params = _values(chunk)
        conn.execute(f"{head} VALUES {placeholders} {tail}", params)
    return conn.total_changes - before
