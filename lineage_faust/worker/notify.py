"""The notify agent: every paged alert on the alerts topic to the webhooks.

Its own agent: a receiver that is down delays webhooks, never the event stream. An alert is
acknowledged once every webhook took it (at-least-once; ``webhooks.WebhookSender``).
"""

from __future__ import annotations

import logging

import faust
import orjson

from lineage_faust.worker.webhooks import WebhookSender

log = logging.getLogger(__name__)


class Notify:
    def __init__(self, sender: WebhookSender) -> None:
        self.sender = sender

    async def run(self, stream: faust.StreamT) -> None:
        async for event in stream.events():
            try:
                alert = orjson.loads(event.value)
            except orjson.JSONDecodeError:
                log.error("undecodable alert at offset %d, skipped", event.message.offset)
                continue
            await self.sender.deliver(alert)
