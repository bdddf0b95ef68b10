"""Stores: small interfaces by role (``interfaces``), two implementations, chosen by
``LINEAGE_STORE``."""

from __future__ import annotations

import os
from collections.abc import Mapping

from lineage_faust.domain.records import DeadLetter, NonRunEvent, RunStatus, StoredEvent
from lineage_faust.settings import ConfigError, Settings, parse_cassandra, redact_url
from lineage_faust.store.errors import InvalidCursor, SchemaError, StoreError, StoreRefused
from lineage_faust.store.interfaces import (
    MAX_PAGE_SIZE,
    AlertOutbox,
    DatasetFreshness,
    EventSink,
    IncidentLedger,
    Queries,
    RunStatuses,
    Store,
    StoreLifecycle,
)
from lineage_faust.store.queries import EventPage, RunPage, RunQuery


def open_store(
    url: str, *, retention_s: int | None = None, env: Mapping[str, str] | None = None
) -> Store:
    """Build (not yet open) the store named by a ``LINEAGE_STORE`` URL.

    ``env`` supplies ``LINEAGE_CASSANDRA_*`` options (default: the process environment).
    """
    if url.startswith("sqlite:///"):
        from lineage_faust.store.sqlite.store import SQLiteStore

        return SQLiteStore(url.removeprefix("sqlite:///"), retention_s=retention_s)
    if url.startswith("cassandra://"):
        from lineage_faust.store.cassandra.store import CassandraStore

        options = parse_cassandra(url, os.environ if env is None else env)
        return CassandraStore(options, retention_s=retention_s)
    raise ConfigError(
        f"LINEAGE_STORE={redact_url(url)}: unknown store (sqlite:/// or cassandra://)"
    )


def store_for(settings: Settings) -> Store:
    """The store this process is configured for (``LINEAGE_STORE``, ``LINEAGE_RETENTION``)."""
    return open_store(settings.store_url, retention_s=settings.retention_s)


__all__ = [
    "MAX_PAGE_SIZE",
    "AlertOutbox",
    "DatasetFreshness",
    "DeadLetter",
    "EventPage",
    "EventSink",
    "IncidentLedger",
    "InvalidCursor",
    "NonRunEvent",
    "Queries",
    "RunPage",
    "RunQuery",
    "RunStatus",
    "RunStatuses",
    "SchemaError",
    "Store",
    "StoreError",
    "StoreLifecycle",
    "StoreRefused",
    "StoredEvent",
    "open_store",
    "store_for",
]
