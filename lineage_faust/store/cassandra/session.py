"""The Cassandra store's connection: Apache Cassandra 4.x/5.x through the DataStax driver.

Driver use, deliberately:

* one ``Cluster``/``Session`` per process (the worker's triage helper has its own); every
  statement prepared once at open and marked idempotent (all writes are upserts/deletes by
  full primary key, safe to repeat); native protocol v4 by default (v5 checksums frames in
  Python: LINEAGE_CASSANDRA_PROTOCOL_VERSION);
* token-aware, DC-aware load balancing; ``LOCAL_QUORUM`` unless configured otherwise;
* no blocking call on the event loop: single statements bridge ``execute_async`` callbacks
  to asyncio (``call_soon_threadsafe``); bulk writes run the driver's ``execute_concurrent``
  in a thread;
* bulk writes as few statements as Cassandra allows: the rows of one partition as one
  UNLOGGED batch (one mutation), small rows of different partitions owned by the same
  replicas in UNLOGGED batches under Cassandra's warnings (10 partitions, 5 KiB); the driver
  costs 130-170 µs of CPU per statement here, so statements per event decide the cost;
* bounded in-flight requests: a full store makes ``await`` wait (backpressure);
* timeouts and unavailability are retried a few times with backoff here, then raised as
  ``StoreError`` so the worker keeps its offsets and retries the whole batch later; a value
  refused for good (``InvalidRequest`` on a write) is ``StoreRefused``, naming its rows.

The tables and why each partition is bounded: ``schema``.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import ssl
from collections.abc import Hashable, Sequence
from datetime import datetime
from typing import Any

from lineage_faust.settings import CassandraOptions
from lineage_faust.store.cassandra import schema
from lineage_faust.store.cassandra.codecs import (
    _BATCH_BYTES,
    _BATCH_ROWS,
    _BUCKET_CACHE_MAX,
    _CELL_BYTES,
    _FIRST_BACKOFF_S,
    _PARTITIONS_PER_BATCH,
    _RETRIES,
    _SMALL_ROW_BYTES,
    _Write,
)
from lineage_faust.store.cassandra.statements import _statements
from lineage_faust.store.errors import InvalidCursor, SchemaError, StoreError, StoreRefused

log = logging.getLogger(__name__)


class _OneLineErrors(logging.Filter):
    """The driver logs every failed connection attempt with a traceback; during an outage
    that buries the worker's own log. Keep the error, drop the traceback (unless DEBUG)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and not logging.getLogger().isEnabledFor(logging.DEBUG):
            error = record.exc_info[1]
            record.msg = f"{record.getMessage()} {type(error).__name__}: {error}"
            record.args = None
            record.exc_info = record.exc_text = None
        return True


for _name in ("cassandra.cluster", "cassandra.pool", "cassandra.connection", "cassandra.io"):
    logging.getLogger(_name).addFilter(_OneLineErrors())


def every_node_holds_every_row(hosts: Sequence[Any], strategy: Any) -> bool:
    """One node, or a replication factor of at least the nodes of each data center (as 3
    nodes at RF 3): rows then share their replicas without looking them up (4 µs a row,
    ~2.5 rows an event in the worker). ``strategy``: the keyspace's, from the driver."""
    if len(hosts) <= 1:
        return True
    factors = getattr(strategy, "dc_replication_factors", None)
    if factors is not None:
        per_dc = collections.Counter(h.datacenter for h in hosts)
        return all(factors.get(dc, 0) >= n for dc, n in per_dc.items())
    factor = getattr(strategy, "replication_factor", None)
    return factor is not None and factor >= len(hosts)


class CassandraSession:
    """A store's connection: the cluster, prepared statements, executing them (one, or many
    at once as few statements as Cassandra allows), and the time-bucket rows."""

    def __init__(self, options: CassandraOptions, *, retention_s: int | None = None) -> None:
        self.options = options
        self.retention_s = retention_s
        self._cluster: Any = None
        self._session: Any = None
        self._prepared: dict[str, Any] = {}
        self._in_flight = asyncio.Semaphore(options.max_in_flight)
        self._known_buckets: set[tuple[str, str, datetime]] = set()
        self._errors: tuple[type[BaseException], ...] = ()
        self._refusals: tuple[type[BaseException], ...] = ()
        self._accounting = asyncio.Lock()  # write_events' read-then-write, one call at a time

    # ---- connection and schema ----------------------------------------------------------
    def drop_keyspace(self) -> None:
        """Drop this store's keyspace and everything in it (tests and benchmarks: a fresh
        keyspace each). Blocking; on a connection of its own."""
        cluster = self._make_cluster()
        try:
            cluster.connect().execute(
                f"DROP KEYSPACE IF EXISTS {self.options.keyspace}", timeout=120
            )
        finally:
            cluster.shutdown()

    def _make_cluster(self) -> Any:
        from cassandra import ConsistencyLevel
        from cassandra.auth import PlainTextAuthProvider
        from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile
        from cassandra.policies import (
            DCAwareRoundRobinPolicy,
            ExponentialReconnectionPolicy,
            RetryPolicy,
            TokenAwarePolicy,
        )
        from cassandra.query import tuple_factory

        o = self.options
        local = DCAwareRoundRobinPolicy(local_dc=o.local_dc or "")  # "" = DC of first contact
        profile = ExecutionProfile(
            load_balancing_policy=TokenAwarePolicy(local),
            retry_policy=RetryPolicy(),
            consistency_level=ConsistencyLevel.name_to_value[o.consistency],
            serial_consistency_level=ConsistencyLevel.LOCAL_SERIAL,
            request_timeout=o.request_timeout_s,
            row_factory=tuple_factory,
        )
        ssl_context = None
        if o.tls:
            ssl_context = ssl.create_default_context(cafile=o.tls_ca_file)
            if o.tls_ca_file is None:  # encrypted, server certificate not verified
                ssl_context.check_hostname = False
                ssl_context.verify_mode = ssl.CERT_NONE
            else:  # chain verified; contact points are often IPs, so no hostname check
                ssl_context.check_hostname = False
        auth = PlainTextAuthProvider(o.username, o.password or "") if o.username else None
        return Cluster(
            contact_points=list(o.hosts),
            port=o.port,
            execution_profiles={EXEC_PROFILE_DEFAULT: profile},
            auth_provider=auth,
            ssl_context=ssl_context,
            reconnection_policy=ExponentialReconnectionPolicy(1.0, 30.0),
            connect_timeout=5,
            application_name="lineage-faust",
            protocol_version=o.protocol_version,
        )

    async def open(self) -> None:
        if self._session is not None:
            return
        from cassandra import (
            DriverException,
            InvalidRequest,
            OperationTimedOut,
            RequestExecutionException,
        )
        from cassandra.cluster import NoHostAvailable
        from cassandra.connection import ConnectionException

        self._refusals = (InvalidRequest,)  # e.g. "Rejected an oversized mutation"

        # Worth retrying: the cluster is slow, overloaded or (partly) unreachable.
        self._errors = (
            RequestExecutionException,
            OperationTimedOut,
            NoHostAvailable,
            ConnectionException,
            OSError,
        )
        connect_errors = (*self._errors, DriverException)
        cluster = self._make_cluster()
        try:
            self._session = await asyncio.to_thread(cluster.connect)
        except connect_errors as exc:
            cluster.shutdown()
            raise StoreError(f"cassandra: cannot connect to {self!r}: {exc}") from exc
        self._cluster = cluster
        try:
            await asyncio.to_thread(self._ensure_schema)
            await asyncio.to_thread(self._prepare_all)
        except connect_errors as exc:
            await self.close()
            raise StoreError(f"cassandra: {exc}") from exc
        except BaseException:
            await self.close()
            raise
        log.info(
            "cassandra store: keyspace %s, consistency %s, retention %s",
            self.options.keyspace,
            self.options.consistency,
            f"{self.retention_s}s" if self.retention_s else "none",
        )

    def _existing_tables(self) -> dict[str, Any]:
        keyspace = self._cluster.metadata.keyspaces.get(self.options.keyspace)
        return dict(keyspace.tables) if keyspace is not None else {}

    def _ensure_schema(self) -> None:
        """Create what is missing (if allowed), align TTLs, check the schema version.

        Runs on a thread (blocking driver calls), once per process start. Existing tables
        are left alone: concurrent CREATEs from many workers are what a one-shot init job
        (``lineage-faust init-store``) is for.
        """
        o, session = self.options, self._session
        existing = self._existing_tables()
        missing = [name for name in schema.TABLES if name.lower() not in existing]
        if missing:
            if not o.create_schema:
                raise SchemaError(
                    f"keyspace {o.keyspace} lacks tables {', '.join(missing)}; "
                    "run `lineage-faust init-store` (or set LINEAGE_CASSANDRA_CREATE_SCHEMA=1)"
                )
            session.execute(schema.keyspace_cql(o))
            creates = schema.table_cql(o, self.retention_s)
            for name in missing:
                log.info("cassandra: creating table %s.%s", o.keyspace, name)
                session.execute(creates[name])
            self._cluster.refresh_schema_metadata()
            existing = self._existing_tables()
        for name, columns in schema.ADDED_COLUMNS.items():
            table = existing.get(name.lower())
            for column, kind in columns:
                if table is not None and column.lower() not in table.columns:
                    if not o.create_schema:
                        raise SchemaError(
                            f"{o.keyspace}.{name} lacks column {column}; "
                            "run `lineage-faust init-store`"
                        )
                    log.info("cassandra: adding column %s.%s", name, column)
                    session.execute(f"ALTER TABLE {o.keyspace}.{name} ADD {column} {kind}")
        for name in schema.DATA_TABLES:
            table = existing.get(name.lower())
            current = table.options.get("default_time_to_live", 0) if table is not None else 0
            if int(current or 0) != (self.retention_s or 0) and o.create_schema:
                log.info("cassandra: %s TTL %s -> %s s", name, current, self.retention_s or 0)
                session.execute(schema.retention_cql(o, name, self.retention_s))
        ks = o.keyspace
        rows = list(
            session.execute(
                f"SELECT value FROM {ks}.schema_meta WHERE name = %s", ("schema_version",)
            )
        )
        found = int(rows[0][0]) if rows else None
        if found is not None and found > schema.SCHEMA_VERSION:
            raise SchemaError(
                f"keyspace {ks} has schema version {found}, newer than this code "
                f"({schema.SCHEMA_VERSION}); upgrade lineage-faust"
            )
        if found != schema.SCHEMA_VERSION:
            session.execute(
                f"INSERT INTO {ks}.schema_meta (name, value) VALUES (%s, %s)",
                ("schema_version", str(schema.SCHEMA_VERSION)),
            )

    def _prepare_all(self) -> None:
        for name, cql in _statements(self.options.keyspace).items():
            prepared = self._session.prepare(cql)
            prepared.is_idempotent = True
            self._prepared[name] = prepared

    async def close(self) -> None:
        cluster, self._cluster, self._session = self._cluster, None, None
        self._prepared = {}
        if cluster is not None:
            await asyncio.to_thread(cluster.shutdown)

    # ---- execution ----------------------------------------------------------------------
    def _submit(self, statement: Any, paging_state: bytes | None) -> asyncio.Future:
        from cassandra.cluster import ResultSet

        loop = asyncio.get_running_loop()
        future: asyncio.Future = loop.create_future()
        response = self._session.execute_async(statement, paging_state=paging_state)

        def settle(outcome: Any, failed: bool) -> None:
            if future.done():  # the awaiting task was cancelled
                return
            if failed:
                future.set_exception(outcome)
            else:
                future.set_result(outcome)

        def on_rows(rows: list | None) -> None:  # driver thread; None for writes
            outcome = (rows or [], ResultSet(response, rows).paging_state)
            loop.call_soon_threadsafe(settle, outcome, False)

        def on_error(exc: BaseException) -> None:  # driver thread
            loop.call_soon_threadsafe(settle, exc, True)

        response.add_callbacks(on_rows, on_error)
        return future

    def _bind(self, name: str, values: Sequence[Any], fetch_size: int | None = None) -> Any:
        if self._session is None:
            raise StoreError("store is not open")
        bound = self._prepared[name].bind(values)
        if fetch_size is not None:
            bound.fetch_size = fetch_size
        return bound

    async def _execute(
        self,
        name: str,
        values: Sequence[Any],
        *,
        fetch_size: int | None = None,
        paging_state: bytes | None = None,
    ) -> tuple[list[tuple], bytes | None]:
        """One statement, with bounded concurrency and a few retries with backoff."""
        return await self._run(name, self._bind(name, values, fetch_size), paging_state)

    async def _run(
        self, name: str, statement: Any, paging_state: bytes | None = None
    ) -> tuple[list[tuple], bytes | None]:
        bound = statement
        delay = _FIRST_BACKOFF_S
        async with self._in_flight:
            for attempt in range(1, _RETRIES + 1):
                try:
                    return await self._submit(bound, paging_state)
                except self._errors as exc:
                    if attempt == _RETRIES:
                        raise StoreError(f"cassandra {name}: {exc}") from exc
                    log.debug("cassandra %s failed (%s); retry in %.1fs", name, exc, delay)
                    await asyncio.sleep(delay)
                    delay *= 2
                except Exception as exc:  # refused (invalid, unauthorized): retrying won't help
                    if paging_state is not None:
                        raise InvalidCursor("pagingState was refused by the store") from exc
                    writing = not name.startswith(("select", "count"))
                    if writing and isinstance(exc, self._refusals):  # this value, for good
                        raise StoreRefused(f"cassandra refused {name}: {exc}") from exc
                    # not authorised, schema changed under us: an operator can mend it
                    raise StoreError(f"cassandra refused {name}: {exc}") from exc
        raise AssertionError("unreachable")

    # ---- writes -------------------------------------------------------------------------
    async def _write_by_partition(
        self, writes: Sequence[tuple[str, Hashable, Sequence[Any]]]
    ) -> None:
        """Writes given as (statement name, partition key, values): the rows of one partition
        go to Cassandra as one UNLOGGED batch, which is one mutation (applied atomically, no
        batchlog, and no batch size warning: that is for batches spanning partitions).
        py-spy put the worker's time on the Cassandra path mostly in per-statement driver and
        asyncio overhead; a run-status group's index rows share few partitions.

        Rows Cassandra refuses for good (an oversized mutation) are found by writing the
        rows of a refused batch one by one; every other row is written, and ``StoreRefused``
        names the refused ones (positions in ``writes``)."""
        by_partition: dict[Hashable, dict[tuple, list[int]]] = {}
        for position, (name, key, values) in enumerate(writes):
            # the same row written twice in a call: once
            by_partition.setdefault(key, {}).setdefault((name, *values), []).append(position)
        statements: list[_Write] = []
        alone: list[_Write] = []  # the only row of its partition
        for rows in by_partition.values():
            items = list(rows.items())
            for start in range(0, len(items), _BATCH_ROWS):
                chunk = items[start : start + _BATCH_ROWS]
                if len(chunk) == 1:
                    (name, *values), positions = chunk[0]
                    row = (name, *values)
                    alone.append(_Write(name, self._bind(name, values), positions, row=row))
                    continue
                batch = self._new_batch()
                for (name, *values), _ in chunk:
                    batch.add(self._bind(name, values))
                covered = [p for _, positions in chunk for p in positions]
                statements.append(_Write(f"batch of {chunk[0][0][0]}", batch, covered, chunk))
        statements += self._small_batches(alone)
        refused = await self._run_all(statements)
        if not refused:
            return
        # isolate: each row of a refused batch alone
        singles = [
            _Write(name, self._bind(name, values), positions)
            for write in refused
            for (name, *values), positions in (write.rows or [])
        ]
        refused = [w for w in refused if not w.rows] + await self._run_all(singles)
        if refused:
            positions = {p for w in refused for p in w.positions}
            raise StoreRefused(
                f"cassandra refused {refused[0].name}: {refused[0].error}", positions
            )

    async def _write_all(self, writes: Sequence[tuple[str, Hashable, Sequence[Any]]]) -> None:
        """``_write_by_partition`` for calls whose rows are not the caller's one for one (they
        carry bucket rows too): a refusal names no rows, and the caller writes its rows one
        by one to find the refused one (every write here is idempotent)."""
        try:
            await self._write_by_partition(writes)
        except StoreRefused as exc:
            raise StoreRefused(str(exc)) from exc

    @staticmethod
    def _new_batch() -> Any:
        from cassandra.query import BatchStatement, BatchType

        batch = BatchStatement(batch_type=BatchType.UNLOGGED)
        batch.is_idempotent = True  # every row is an upsert or delete by full key
        return batch

    def _small_batches(self, alone: list[_Write]) -> list[_Write]:
        """Small rows of different partitions owned by the same replicas (run statuses,
        index and bucket rows: a few hundred bytes each) go in UNLOGGED batches that stay
        under Cassandra's warnings for batches spanning partitions: at most
        ``unlogged_batch_across_partitions_warn_threshold`` (10) partitions and
        ``batch_size_warn_threshold`` (5 KiB). Sent token-aware, to one of those replicas,
        a batch is a tenth of the statements for the driver and the node to handle."""
        from cassandra.query import UNSET_VALUE

        metadata = self._cluster.metadata
        keyspace = self.options.keyspace
        everywhere = self._replicated_everywhere()
        statements: list[_Write] = []
        open_batches: dict[tuple, tuple[_Write, int]] = {}  # replicas -> (batch, its bytes)
        for write in alone:
            bound = write.statement
            size = sum(_CELL_BYTES + len(v or b"") for v in bound.values if v is not UNSET_VALUE)
            if size > _SMALL_ROW_BYTES:
                statements.append(write)
                continue
            replicas = () if everywhere else tuple(sorted(str(h.endpoint) for h in (
                metadata.get_replicas(keyspace, bound.routing_key))))  # fmt: skip
            current, used = open_batches.get(replicas, (None, 0))
            if (
                current is None
                or len(current.statement) >= _PARTITIONS_PER_BATCH
                or used + size > _BATCH_BYTES
            ):
                current = _Write(f"batch of rows like {write.name}", self._new_batch(), [], [])
                statements.append(current)
                used = 0
            current.statement.add(bound)
            current.positions.extend(write.positions)
            assert current.rows is not None
            current.rows.append((write.row, write.positions))
            open_batches[replicas] = (current, used + size)
        return statements

    def _replicated_everywhere(self) -> bool:
        metadata = self._cluster.metadata
        keyspace = metadata.keyspaces.get(self.options.keyspace)
        strategy = keyspace.replication_strategy if keyspace is not None else None
        return every_node_holds_every_row(metadata.all_hosts(), strategy)

    async def _run_all(self, statements: list[_Write]) -> list[_Write]:
        """Many writes at once through the driver's own concurrent executor, in a thread:
        no asyncio future, task or loop wake-up per statement. Failures worth retrying are
        retried (those statements only), as ``_run`` does; the statements refused for good
        are returned (their ``error`` set); any other failure raises ``StoreError``."""
        from cassandra.concurrent import execute_concurrent

        if self._session is None:
            raise StoreError("store is not open")
        pending, refused = statements, []
        delay = _FIRST_BACKOFF_S
        for attempt in range(1, _RETRIES + 1):
            if not pending:
                return refused
            results = await asyncio.to_thread(
                execute_concurrent,
                self._session,
                [(w.statement, None) for w in pending],
                concurrency=self.options.max_in_flight,
                raise_on_first_error=False,
            )
            failed = []
            for write, (ok, result) in zip(pending, results, strict=True):
                if ok:
                    continue
                if isinstance(result, self._errors):
                    failed.append(write)
                elif isinstance(result, self._refusals):  # this value, for good
                    write.error = result
                    refused.append(write)
                else:
                    raise StoreError(f"cassandra refused {write.name}: {result}") from result
            pending = failed
            if pending and attempt < _RETRIES:
                log.debug("cassandra: %d writes failed; retry in %.1fs", len(pending), delay)
                await asyncio.sleep(delay)
                delay *= 2
        if pending:
            raise StoreError(f"cassandra {pending[0].name}: {len(pending)} writes failed")
        return refused

    def _note_bucket(
        self, scope: str, name: str, bucket: datetime, writes: list, noted: list
    ) -> None:
        """Add the bucket row's write to ``writes`` unless it was written before (its key to
        ``noted``: known once the writes succeeded, see ``_remember_buckets``)."""
        key = (scope, name, bucket)
        if key not in self._known_buckets:
            writes.append(("insert_bucket", ("bucket", scope, name), key))
            noted.append(key)

    def _remember_buckets(self, noted: list[tuple[str, str, datetime]]) -> None:
        if len(self._known_buckets) + len(noted) >= _BUCKET_CACHE_MAX:
            self._known_buckets.clear()
        self._known_buckets.update(noted)
