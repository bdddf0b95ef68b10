"""What a store raises: retry later, retrying will not help, or a cursor not of this query."""

from __future__ import annotations


class StoreError(RuntimeError):
    """The store could not do what was asked (connection, lock, timeout): retry later."""


class StoreRefused(RuntimeError):
    """The store refused this value (too large, invalid for its schema): writing it again
    can never succeed. The caller isolates the value and accounts for it another way.

    A store that writes a call's rows independently (Cassandra) says which rows it refused
    (``rows``: positions in the call) and, for event writes, how many of the others were new
    (``new``): those others are written. Without ``rows``, nothing of the call was written."""

    def __init__(self, message: str, rows: set[int] | None = None, new: int = 0) -> None:
        super().__init__(message)
        self.rows = rows
        self.new = new


class SchemaError(RuntimeError):
    """The store's schema is missing or newer than this code: retrying will not help."""


class InvalidCursor(ValueError):
    """A paging cursor that this store did not issue for this query."""
