"""Stores: one interface (``base.Store``), chosen by ``LINEAGE_STORE``."""

from __future__ import annotations

from ..config import ConfigError, redact_url
from .base import (
    MAX_PAGE_SIZE,
    DeadLetter,
    EventPage,
    InvalidCursor,
    NonRunEvent,
    RunStatus,
    Store,
    StoredEvent,
    StoreError,
)


def open_store(url: str) -> Store:
    """Build (not yet open) the store named by a ``LINEAGE_STORE`` URL."""
    if url.startswith("sqlite:///"):
        from .sqlite import SQLiteStore

        return SQLiteStore(url.removeprefix("sqlite:///"))
    if url.startswith("cassandra://"):
        raise ConfigError(
            f"LINEAGE_STORE={redact_url(url)}: the Cassandra store is not part of this release "
            "yet; use sqlite:///path"
        )
    raise ConfigError(
        f"LINEAGE_STORE={redact_url(url)}: unknown store (sqlite:/// or cassandra://)"
    )


__all__ = [
    "MAX_PAGE_SIZE",
    "DeadLetter",
    "EventPage",
    "InvalidCursor",
    "NonRunEvent",
    "RunStatus",
    "Store",
    "StoreError",
    "StoredEvent",
    "open_store",
]
