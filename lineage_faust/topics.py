"""Topic administration: make sure the input and dead-letter topics exist."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError

log = logging.getLogger(__name__)


async def ensure_topics(
    bootstrap: str, topics: dict[str, int], *, replication: int = 1, timeout_s: float = 30.0
) -> None:
    """Create each topic with the given partition count unless it already exists."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000)
        try:
            await admin.start()
            existing = set(await admin.list_topics())
            missing = [
                NewTopic(name, num_partitions=n, replication_factor=replication)
                for name, n in topics.items()
                if name not in existing
            ]
            if missing:
                with contextlib.suppress(TopicAlreadyExistsError):  # a racing creator won
                    await admin.create_topics(missing)
                log.info("created topics %s", ", ".join(t.name for t in missing))
            return
        except KafkaError as exc:
            if asyncio.get_running_loop().time() > deadline:
                raise
            log.warning("broker not ready for topic creation (%s); retrying", exc)
            await asyncio.sleep(0.5)
        finally:
            await admin.close()
