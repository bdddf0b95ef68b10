"""Stores: one interface (``base.Store``), chosen by ``LINEAGE_STORE``."""

from __future__ import annotations

import os
from collections.abc import Mapping

from ..config import ConfigError, Settings, parse_cassandra, redact_url
from .base import (
    MAX_PAGE_SIZE,
    DeadLetter,
    EventPage,
    InvalidCursor,
    NonRunEvent,
    RunPage,
    RunQuery,
    RunStatus,
    SchemaError,
    Store,
    StoredEvent,
    StoreError,
    StoreRefused,
)


def open_store(
    url: str, *, retention_s: int | None = None, env: Mapping[str, str] | None = None
) -> Store:
    """Build (not yet open) the store named by a ``LINEAGE_STORE`` URL.

    ``env`` supplies ``LINEAGE_CASSANDRA_*`` options (default: the process environment).
    """
    if url.startswith("sqlite:///"):
        from .sqlite import SQLiteStore

        return SQLiteStore(url.removeprefix("sqlite:///"), retention_s=retention_s)
    if url.startswith("cassandra://"):
        from .cassandra import CassandraStore

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
    "DeadLetter",
    "EventPage",
    "InvalidCursor",
    "NonRunEvent",
    "RunPage",
    "RunQuery",
    "RunStatus",
    "SchemaError",
    "Store",
    "StoreError",
    "StoreRefused",
    "StoredEvent",
    "open_store",
    "store_for",
]
