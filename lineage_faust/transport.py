"""Faust's aiokafka transport with a short fetch wait, for the embedded broker.

faust-streaming 0.15.3 creates its worker consumer with ``fetch_max_wait_ms=1500`` and offers
no setting for it. The embedded broker (Tansu) holds a fetch for the whole wait even when data
arrives (see ``Settings.fetch_max_wait_ms``), so every hop through a topic would cost up to that
long. :func:`broker_url` names this transport for the embedded broker, Faust's own otherwise.
"""

from __future__ import annotations

import aiokafka
from faust.transport.drivers import TRANSPORTS
from faust.transport.drivers import aiokafka as faust_aiokafka

from .config import EMBEDDED_FETCH_MAX_WAIT_MS, Settings

SCHEME = "lineage-kafka"


class ConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    def _create_worker_consumer(
        self, transport: faust_aiokafka.Transport
    ) -> aiokafka.AIOKafkaConsumer:
        consumer = super()._create_worker_consumer(transport)
        # aiokafka reads it when start() creates the fetcher, which is after this
        consumer._fetch_max_wait_ms = EMBEDDED_FETCH_MAX_WAIT_MS
        return consumer


class Consumer(faust_aiokafka.Consumer):
    def _new_consumer_thread(self) -> ConsumerThread:
        return ConsumerThread(self, loop=self.loop, beacon=self.beacon)


class Transport(faust_aiokafka.Transport):
    Consumer = Consumer


TRANSPORTS.aliases[SCHEME] = f"{__name__}:Transport"


def broker_url(settings: Settings) -> str:
    """The broker URL for Faust: this transport for the embedded broker, Faust's otherwise."""
    scheme = SCHEME if settings.fetch_max_wait_ms is not None else "kafka"
    return f"{scheme}://{settings.bootstrap}"
