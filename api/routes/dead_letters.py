"""What the worker rejected, and why, without a Kafka tool."""

from __future__ import annotations

import base64
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from lineage_faust.domain.dead_letters import STORED_VALUE_BYTES
from lineage_faust.store import DeadLetter

from ..schemas import DeadLetterOut, DeadLetters, iso_ms
from .common import errors, json_response, store_of

router = APIRouter(prefix="/api/v1", tags=["dead letters"])
VALUE_PREVIEW_BYTES = STORED_VALUE_BYTES  # the store keeps no more (dead_letters.py)


def _text(data: bytes, cut_short: bool = False) -> tuple[str, str]:
    """UTF-8 text, else base64. A preview cut mid-character loses up to 3 trailing bytes."""
    for cut in range(4 if cut_short else 1):
        try:
            return data[: len(data) - cut].decode("utf-8"), "utf-8"
        except UnicodeDecodeError:
            continue
    return base64.b64encode(data).decode("ascii"), "base64"


def dead_letter_out(letter: DeadLetter) -> DeadLetterOut:
    value, encoding, size = None, "utf-8", 0
    if letter.value is not None:
        # rows of older versions kept the whole value and no size
        size = letter.value_bytes if letter.value_bytes is not None else len(letter.value)
        value, encoding = _text(letter.value[:VALUE_PREVIEW_BYTES], size > VALUE_PREVIEW_BYTES)
    return DeadLetterOut(
        topic=letter.topic,
        partition=letter.partition,
        offset=letter.offset,
        reason=letter.reason,
        detail=letter.detail,
        field=letter.field,
        receivedAt=iso_ms(letter.received_at),
        key=_text(letter.key)[0] if letter.key is not None else None,
        value=value,
        valueEncoding=encoding,
        valueBytes=size,
        valueTruncated=size > VALUE_PREVIEW_BYTES,
        valueSha256=letter.value_sha256,
    )


@router.get("/dead-letters", response_model=DeadLetters, responses=errors(400, 401, 503))
async def dead_letters(
    request: Request, limit: Annotated[int, Query(ge=1, le=1000)] = 50
) -> Response:
    """The most recently rejected messages, newest first: the reason, the source
    topic/partition/offset, and the original bytes (first 64 KiB, with the whole value's size
    and SHA-256)."""
    letters = await store_of(request).get_dead_letters(limit)
    return json_response(
        DeadLetters(count=len(letters), deadLetters=[dead_letter_out(d) for d in letters])
    )
