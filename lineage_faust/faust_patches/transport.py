"""Faust's aiokafka transport, with eager delivery, and a short fetch wait when embedded.

Every worker consumer delivers fetched messages to their streams without a task per message
(``delivery.py``: about a third more events/s end to end). For the embedded broker there is a
second change: faust-streaming 0.15.3 creates its worker consumer with
``fetch_max_wait_ms=1500`` and offers no setting for it, and the embedded broker (Tansu) holds
a fetch for the whole wait even when data arrives (see ``Settings.fetch_max_wait_ms``), so
every hop through a topic would cost up to that long. :func:`broker_url` names the transport.
"""

from __future__ import annotations

import aiokafka
from faust.transport.drivers import TRANSPORTS
from faust.transport.drivers import aiokafka as faust_aiokafka

from lineage_faust.faust_patches.delivery import drain_messages
from lineage_faust.settings import EMBEDDED_FETCH_MAX_WAIT_MS, Settings

SCHEME = "lineage-kafka"
EMBEDDED_SCHEME = "lineage-embedded"


class Consumer(faust_aiokafka.Consumer):
    _drain_messages = drain_messages


class EmbeddedConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    def _create_worker_consumer(
        self, transport: faust_aiokafka.Transport
    ) -> aiokafka.AIOKafkaConsumer:
        consumer = super()._create_worker_consumer(transport)
        # aiokafka reads it when start() creates the fetcher, which is after this
        consumer._fetch_max_wait_ms = EMBEDDED_FETCH_MAX_WAIT_MS
        return consumer


class EmbeddedConsumer(Consumer):
    def _new_consumer_thread(self) -> EmbeddedConsumerThread:
        return EmbeddedConsumerThread(self, loop=self.loop, beacon=self.beacon)


class Transport(faust_aiokafka.Transport):
    Consumer = Consumer


class EmbeddedTransport(Transport):
    Consumer = EmbeddedConsumer


TRANSPORTS.aliases[SCHEME] = f"{__name__}:Transport"
TRANSPORTS.aliases[EMBEDDED_SCHEME] = f"{__name__}:EmbeddedTransport"


def broker_url(settings: Settings) -> str:
    """The broker URL for Faust, naming this module's transport for it."""
    scheme = EMBEDDED_SCHEME if settings.fetch_max_wait_ms is not None else SCHEME
    return f"{scheme}://{settings.bootstrap}"
