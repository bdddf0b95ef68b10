"""The notify agent: every paged alert on the alerts topic to the webhooks, unless the worker
that raised it delivered it already (``run_states.DELIVERED``).

Its own agent: a receiver that is down delays webhooks, never the event stream. An alert is
acknowledged once every webhook took it (at-least-once; ``webhooks.WebhookSender``).
"""

from __future__ import annotations

import logging

import faust
import orjson

from lineage_faust.worker.run_states import DELIVERED
from lineage_faust.worker.webhooks import WebhookSender

log = logging.getLogger(__name__)


class Notify:
    def __init__(self, sender: WebhookSender) -> None:
        self.sender = sender

    async def run(self, stream: faust.StreamT) -> None:
        async for event in stream.events():
            if (DELIVERED, b"1") in _headers(event.message.headers):
                continue
            try:
                alert = orjson.loads(event.value)
            except orjson.JSONDecodeError:
                log.error("undecodable alert at offset %d, skipped", event.message.offset)
                continue
            await self.sender.deliver(alert)


def _headers(headers: object) -> list[tuple[str, bytes]]:
    # a message's headers come as a list of pairs (or a mapping, depending on the client)
    if isinstance(headers, dict):
        return list(headers.items())
    return list(headers or ())
