"""The SQLite store's connections, threads, schema and retention: what every role shares.

The worker writes and the API process reads the same file at the same time (WAL lets readers
proceed while a writer commits). Each Store instance owns one connection used from one
dedicated thread, so the asyncio loop never blocks on disk. Batches are written in one
transaction; every statement is parameterised.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from lineage_faust.store.errors import SchemaError, StoreError, StoreRefused
from lineage_faust.store.sqlite.codecs import (
    _PURGE_EVERY_S,
    READER_CACHE_KB,
    READERS,
    WRITER_CACHE_KB,
    _chunks,
    _execute_rows,
    _now_us,
    _seal_time_cursor,
    _values,
    pack_text,
)
from lineage_faust.store.sqlite.schema import (
    _DATA_TABLES,
    _MIGRATE_FROM_1,
    _MIGRATE_TO_5,
    _MIGRATE_TO_6,
    _SCHEMA,
    SCHEMA_VERSION,
    _statements,
)

_T = TypeVar("_T")


class SQLiteConnection:
    def __init__(
        self, path: str | Path, *, timeout_s: float = 5.0, retention_s: int | None = None
    ) -> None:
        self.path = Path(path)
        self._options = {"timeout_s": timeout_s, "retention_s": retention_s}
        self._timeout_s = timeout_s
        self._retention_us = retention_s * 1_000_000 if retention_s else None
        self._next_purge = 0.0
        # Two lanes: writes in one thread with its own connection, reads in up to READERS
        # threads with one connection each (WAL lets reads run beside a write), so the
        # worker's run-state reads do not queue behind the next batch's inserts, and the API's
        # concurrent lookups that miss the page cache wait on the disk side by side.
        self._executor: ThreadPoolExecutor | None = None
        self._conn: sqlite3.Connection | None = None
        self._read_executor: ThreadPoolExecutor | None = None
        self._reader = threading.local()  # .conn: this read thread's connection
        self._read_conns: list[sqlite3.Connection] = []  # every reader's, to close them

    # ---- plumbing ---------------------------------------------------------------------
    async def _run(self, fn: Callable[[sqlite3.Connection], _T]) -> _T:
        if self._executor is None:
            raise StoreError("store is not open")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._call, fn)

    def _call(self, fn: Callable[[sqlite3.Connection], _T]) -> _T:
        try:
            if self._conn is None:
                self._conn = self._connect()
            return fn(self._conn)
        except sqlite3.DataError as exc:  # a value SQLite can never hold (SQLITE_TOOBIG)
            raise StoreRefused(f"sqlite: {exc}") from exc
        except sqlite3.Error as exc:
            raise StoreError(f"sqlite: {exc}") from exc

    async def _read(self, fn: Callable[[sqlite3.Connection], _T]) -> _T:
        if self._read_executor is None:
            raise StoreError("store is not open")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._read_executor, self._call_read, fn)

    def _call_read(self, fn: Callable[[sqlite3.Connection], _T]) -> _T:
        try:
            conn = getattr(self._reader, "conn", None)
            if conn is None:
                # closed by close() from another thread, once the read threads have stopped
                conn = self._reader.conn = self._connect(
                    check_same_thread=False, cache_kb=READER_CACHE_KB
                )
                self._read_conns.append(conn)
            return fn(conn)
        except sqlite3.Error as exc:
            raise StoreError(f"sqlite: {exc}") from exc

    def _connect(
        self, *, check_same_thread: bool = True, cache_kb: int = WRITER_CACHE_KB
    ) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(
            self.path,
            timeout=self._timeout_s,
            isolation_level=None,
            check_same_thread=check_same_thread,
        )
        conn.execute("PRAGMA journal_mode=WAL")
        # NORMAL in WAL mode survives a process crash (only an OS crash can lose the tail).
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute(f"PRAGMA busy_timeout={int(self._timeout_s * 1000)}")
        conn.execute(f"PRAGMA cache_size=-{cache_kb}")
        return conn

    @staticmethod
    def _create_schema(conn: sqlite3.Connection) -> None:
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)")
            row = conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
            found = int(row[0]) if row else None
            if found is not None and found > SCHEMA_VERSION:
                raise SchemaError(
                    f"store schema version {found} is newer than this code ({SCHEMA_VERSION}); "
                    "upgrade lineage-faust"
                )
            if found == 1:
                for statement in _statements(_MIGRATE_FROM_1):
                    conn.execute(statement)
            if found is not None and found < 5:
                for statement in _statements(_MIGRATE_TO_5):
                    conn.execute(statement)
            if found is not None and found < 6:
                for statement in _statements(_MIGRATE_TO_6):
                    conn.execute(statement)
            for statement in _statements(_SCHEMA):
                conn.execute(statement)
            conn.execute(
                "INSERT INTO meta (key, value) VALUES ('schema_version', ?) "
                "ON CONFLICT (key) DO UPDATE SET value=excluded.value",
                (str(SCHEMA_VERSION),),
            )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    async def _listing(
        self,
        scope: str,
        sql: str,
        params: list[Any],
        limit: int,
        position: Callable[[tuple], tuple[int, str]],
    ) -> tuple[list[tuple], str | None]:
        """A page of a time-ordered listing (``sql`` ends in ``LIMIT ?``) and the cursor after
        it: ``position(row)`` is the (sort time, tie-breaking key) a page after ``row`` starts
        from (None at the end)."""
        rows = await self._read(lambda conn: conn.execute(sql, [*params, limit + 1]).fetchall())
        if len(rows) <= limit:
            return rows, None
        rows = rows[:limit]
        return rows, _seal_time_cursor(scope, *position(rows[-1]))

    async def _write_rows(self, head: str, rows: list[tuple[Any, ...]], tail: str = "") -> None:
        """One transaction for a whole batch (idempotent statements: safe to repeat)."""
        if not rows:
            return

        def write(conn: sqlite3.Connection) -> None:
            conn.execute("BEGIN IMMEDIATE")
            try:
                _execute_rows(conn, head, rows, tail)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            self._purge_if_due(conn)

        await self._run(write)

    def _expires_at(self) -> int | None:
        return None if self._retention_us is None else _now_us() + self._retention_us

    def _purge_if_due(self, conn: sqlite3.Connection) -> None:
        """Delete rows past their retention, at most once a minute (reads hide them anyway)."""
        if self._retention_us is None or time.monotonic() < self._next_purge:
            return
        self._next_purge = time.monotonic() + _PURGE_EVERY_S
        now = _now_us()
        for table in _DATA_TABLES:
            conn.execute(f"DELETE FROM {table} WHERE expiresAt <= ?", (now,))

    async def open(self) -> None:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(1, thread_name_prefix="sqlite-store")
            self._read_executor = ThreadPoolExecutor(READERS, thread_name_prefix="sqlite-read")
        await self._run(self._create_schema)

    async def close(self) -> None:
        if self._executor is None:
            return

        def _close(conn: sqlite3.Connection) -> None:
            conn.close()

        if self._conn is not None:
            await self._run(_close)
            self._conn = None
        self._executor.shutdown(wait=True)
        self._executor = None
        if self._read_executor is not None:
            self._read_executor.shutdown(wait=True)
            self._read_executor = None
        for conn in self._read_conns:  # no read thread is left to use them
            conn.close()
        self._read_conns.clear()
        self._reader = threading.local()

    # ---- writes -----------------------------------------------------------------------
    async def _insert_new(
        self, table: str, columns: str, rows: list[tuple[Any, ...]], key: str
    ) -> int:
        """Insert rows whose ``key`` (the first columns) is not there yet, in one transaction;
        the number inserted. With a retention, rewriting an existing row refreshes its expiry
        (as Cassandra's rewrites refresh the TTL). The ``event`` column's text is packed
        here unless it came packed (bytes)."""
        if not rows:
            return 0
        expires = self._expires_at()
        width = key.count(",") + 1
        text_column = columns.split(", ").index("event")

        def write(conn: sqlite3.Connection) -> int:
            packed = [
                row
                if isinstance(row[text_column], bytes)  # packed already (StoredEvent.packed)
                else (*row[:text_column], pack_text(row[text_column]), *row[text_column + 1 :])
                for row in rows
            ]
            conn.execute("BEGIN IMMEDIATE")
            try:
                inserted = _execute_rows(
                    conn,
                    f"INSERT INTO {table} ({columns})",
                    packed,
                    f"ON CONFLICT ({key}) DO NOTHING",
                )
                if expires is not None and inserted < len(rows):
                    for chunk in _chunks([row[:width] for row in rows]):
                        placeholders, params = _values(chunk)
                        conn.execute(
                            f"UPDATE {table} SET expiresAt = ? WHERE ({key}) IN "
                            f"(VALUES {placeholders})",
                            [expires, *params],
                        )
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            self._purge_if_due(conn)
            return inserted

        return await self._run(write)

    async def health(self) -> None:
        def probe(conn: sqlite3.Connection) -> None:
            row = conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
            if row is None:
                raise StoreError("schema missing: meta.schema_version not found")

        await self._run(probe)
