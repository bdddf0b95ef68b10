"""Opaque paging cursors: the store's own position sealed with a check of its query."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac

from lineage_faust.store.errors import InvalidCursor

_CURSOR_VERSION = b"\x02"
_CURSOR_CHECK_BYTES = 8


def _cursor_check(scope: str, raw: bytes) -> bytes:
    digest = hashlib.blake2b(scope.encode("utf-8", "surrogatepass"), digest_size=16)
    digest.update(b"\x00")
    digest.update(raw)
    return digest.digest()[:_CURSOR_CHECK_BYTES]


def seal_cursor(scope: str, raw: bytes) -> str:
    """An opaque, url-safe cursor: the store's position ``raw`` (a Cassandra paging state, a
    SQLite key) plus a check over the query it belongs to (``scope``), so a cursor that was
    altered, truncated or issued for another query is refused instead of misread."""
    sealed = _CURSOR_VERSION + _cursor_check(scope, raw) + raw
    return base64.urlsafe_b64encode(sealed).rstrip(b"=").decode("ascii")


def open_cursor(scope: str, text: str) -> bytes:
    """The position inside a cursor made by ``seal_cursor`` for the same scope."""
    try:
        sealed = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise InvalidCursor("pagingState is not a cursor issued by this API") from None
    head = 1 + _CURSOR_CHECK_BYTES
    if len(sealed) <= head or sealed[:1] != _CURSOR_VERSION:
        raise InvalidCursor("pagingState is not a cursor issued by this API")
    raw = sealed[head:]
    if not hmac.compare_digest(sealed[1:head], _cursor_check(scope, raw)):
        raise InvalidCursor("pagingState was not issued for this query")
    return raw
