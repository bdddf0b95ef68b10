"""Dead letters that always fit: on the dead-letter topic, and in the store.

A rejected message may be larger than anything the dead-letter topic takes (a 9 MB Spark
event, a message over ``LINEAGE_MAX_EVENT_BYTES``). Its dead letter then carries a prefix of
the original bytes that fits, and headers saying so::

    lineage.dlq.truncated        true
    lineage.dlq.original.size    the original value's length in bytes
    lineage.dlq.original.sha256  the original value's SHA-256 (hex)

The limit is ``LINEAGE_DLQ_MAX_MESSAGE_BYTES`` (under Kafka's default ``message.max.bytes``).
If the broker still refuses a dead letter as too large (a topic configured smaller), it is cut
in half again, down to no value at all: what can never be sent is given up, logged, and kept
in the store. The store keeps the first 64 KiB (what the API shows), the size and the hash.
"""

from __future__ import annotations

import hashlib
from typing import Any

Headers = list[tuple[str, bytes]]

STORED_VALUE_BYTES = 64 * 1024  # of a rejected message's value, in the store's row
# What a record costs beyond its key, value and headers: the record batch's header (61 bytes)
# and the record's own framing (varints, attributes), rounded up.
RECORD_OVERHEAD = 128
HEADER_OVERHEAD = 10  # varint lengths of one header's key and value, rounded up
TRUNCATED = "lineage.dlq.truncated"


def record_size(key: bytes | None, value: bytes | None, headers: Headers) -> int:
    """An upper bound of the record's size in a produce request."""
    size = RECORD_OVERHEAD + len(key or b"") + len(value or b"")
    return size + sum(len(k.encode()) + len(v) + HEADER_OVERHEAD for k, v in headers)


def original_headers(value: bytes | None) -> Headers:
    data = value or b""
    return [
        (TRUNCATED, b"true"),
        ("lineage.dlq.original.size", str(len(data)).encode()),
        ("lineage.dlq.original.sha256", hashlib.sha256(data).hexdigest().encode()),
    ]


def fit(key: bytes | None, value: bytes | None, ours: Headers, theirs: Headers, budget: int):
    """``(value, headers)`` of a dead letter no larger than ``budget`` bytes: the original if
    it fits, else a prefix of it with the truncation headers. The source message's own
    headers are dropped only when even an empty value would not fit with them."""
    headers = ours + theirs
    if record_size(key, value, headers) <= budget:
        return value, headers
    headers = ours + original_headers(value) + theirs
    room = budget - record_size(key, b"", headers)
    if room < 0:
        headers = ours + original_headers(value)
        room = budget - record_size(key, b"", headers)
    return (value or b"")[: max(room, 0)], headers


def shrink(message: dict[str, Any], error: BaseException) -> dict[str, Any] | None:
    """The broker refused ``message`` (a dead letter) as too large: the same with half the
    value and only our own headers, or None when there is no value left to cut."""
    value: bytes = message.get("value") or b""
    headers: Headers = message.get("headers") or []
    if not value and all(k.startswith("lineage.") for k, _ in headers):
        return None
    if any(k == TRUNCATED for k, _ in headers):
        ours = [(k, v) for k, v in headers if k.startswith("lineage.")]
    else:
        ours = [(k, v) for k, v in headers if k.startswith("lineage.")] + original_headers(value)
    return {**message, "value": value[: len(value) // 2], "headers": ours}


def digest(value: bytes | None) -> str | None:
    return hashlib.sha256(value).hexdigest() if value is not None else None
