"""Every topic the worker reads or writes, created before anything subscribes.

On a new Apache Kafka cluster a topic is not in every broker's metadata the moment
CreateTopics returns. Faust created its internal topics itself and subscribed ~10 ms later;
the group leader then found the run-updates topic missing, assigned none of its partitions,
and the worker ran with no run states and no alerts for as long as it lived. So the worker
(and ``lineage-faust init-topics``, for deployments) creates all of them first, with their
partition counts and configs, and waits until the cluster's metadata shows each one whole
(every partition with a leader) before the consumer joins the group.

Partition counts that correctness depends on are checked against existing topics: the
run-updates topic and the run table's changelog must have ``LINEAGE_PARTITIONS`` (Faust
refuses a table whose changelog differs from its source), and so must the alerts topic (an
alert goes to its run's partition, which the worker that raised it owns); the live topic one
(its offsets order the live stream). The events and dead-letter topics may have been created
by someone else with other counts; that is fine and only logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError

from lineage_faust.failures import is_permanent
from lineage_faust.kafka.security import client_options
from lineage_faust.settings import KafkaSecurity, Settings

log = logging.getLogger(__name__)
RUNS_TABLE = "runs"


class TopicMismatch(RuntimeError):
    """An existing topic cannot be used as it is (wrong partition count): retrying won't help."""


@dataclass(frozen=True, slots=True)
class TopicSpec:
    name: str
    partitions: int
    config: dict[str, str] = field(default_factory=dict)
    strict: bool = False  # an existing topic must have exactly ``partitions``
    role: str = ""


def updates_topic_name(settings: Settings) -> str:
    return f"{settings.app_id}-run-updates"


def changelog_topic_name(settings: Settings) -> str:
    """Faust's name for the run table's changelog: ``<app id>-<table>-changelog``."""
    return f"{settings.app_id}-{RUNS_TABLE}-changelog"


def worker_topics(settings: Settings) -> list[TopicSpec]:
    """Every topic the worker needs, as it creates them (with ``min.insync.replicas`` when
    the settings name one: acks=all writes then need that many replicas in sync)."""
    n = settings.partitions
    insync = (
        {"min.insync.replicas": str(settings.topic_min_insync)} if settings.topic_min_insync else {}
    )
    return [dataclasses.replace(s, config={**s.config, **insync}) for s in _topics(settings, n)]


def _topics(settings: Settings, n: int) -> list[TopicSpec]:
    return [
        TopicSpec(settings.topic, n, role="events (input)"),
        TopicSpec(settings.dlq_topic, 1, role="dead letters"),
        # an alert goes to its run's partition: the worker that raised it reads it back
        TopicSpec(settings.alerts_topic, n, strict=True, role="alerts"),
        TopicSpec(settings.live_topic, 1, strict=True, role="live stream"),
        TopicSpec(updates_topic_name(settings), n, strict=True, role="run updates (internal)"),
        TopicSpec(
            changelog_topic_name(settings),
            n,
            {"cleanup.policy": "compact"},
            strict=True,
            role="run table changelog (internal)",
        ),
    ]


@dataclass(frozen=True, slots=True)
class TopicState:
    name: str
    partitions: int  # 0: not in the metadata
    led: int  # partitions with a leader


async def describe(admin: AIOKafkaAdminClient, names: list[str]) -> dict[str, TopicState]:
    found = {}
    for topic in await admin.describe_topics(names):
        partitions = [p for p in topic["partitions"] if p["error_code"] == 0]
        led = sum(1 for p in partitions if p["leader"] >= 0)
        count = len(topic["partitions"]) if topic["error_code"] == 0 else 0
        found[topic["topic"]] = TopicState(topic["topic"], count, led)
    return found


async def ensure_topics(
    bootstrap: str,
    specs: list[TopicSpec] | Mapping[str, int],
    *,
    replication: int = 1,
    timeout_s: float = 60.0,
    security: KafkaSecurity | None = None,
) -> dict[str, TopicState]:
    """Create what is missing, check what exists, and return once the cluster's metadata
    shows every topic with all its partitions led. Raises ``TopicMismatch`` for an existing
    topic of the wrong shape and a permanent broker error (e.g. not authorised) at once;
    transient ones are retried until ``timeout_s``. ``specs`` may be plain
    ``{name: partitions}``."""
    if isinstance(specs, Mapping):
        specs = [TopicSpec(name, n) for name, n in specs.items()]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    created: set[str] = set()
    while True:
        admin = AIOKafkaAdminClient(
            bootstrap_servers=bootstrap,
            request_timeout_ms=10_000,
            **client_options(security or KafkaSecurity()),
        )
        try:
            await admin.start()
            existing = set(await admin.list_topics())
            missing = [s for s in specs if s.name not in existing and s.name not in created]
            if missing:
                new = [
                    NewTopic(s.name, s.partitions, replication, topic_configs=s.config)
                    for s in missing
                ]
                with contextlib.suppress(TopicAlreadyExistsError):  # a racing creator won
                    await admin.create_topics(new)
                created.update(s.name for s in missing)
                log.info("created topics %s", ", ".join(s.name for s in missing))
            states = await describe(admin, [s.name for s in specs])
            check_shapes(specs, states)
            waiting = [
                s.name
                for s in specs
                if states.get(s.name, TopicState(s.name, 0, 0)).led
                < max(states.get(s.name, TopicState(s.name, 0, 0)).partitions, 1)
            ]
            if not waiting:
                return states
            if loop.time() > deadline:
                raise TimeoutError(
                    f"topics not visible with leaders after {timeout_s:.0f} s: "
                    + ", ".join(waiting)
                )
            log.info("waiting for topics to appear in the cluster's metadata: %s", waiting)
        except KafkaError as exc:
            if is_permanent(exc) or loop.time() > deadline:
                raise
            log.warning("broker not ready for topic creation (%s); retrying", exc)
        finally:
            await admin.close()
        await asyncio.sleep(0.25)


def check_shapes(specs: list[TopicSpec], states: dict[str, TopicState]) -> None:
    for spec in specs:
        state = states.get(spec.name)
        if state is None or not state.partitions or state.partitions == spec.partitions:
            continue
        if spec.strict:
            raise TopicMismatch(
                f"topic {spec.name} ({spec.role}) has {state.partitions} partitions, "
                f"{spec.partitions} are needed (LINEAGE_PARTITIONS for the internal and alerts "
                "topics, 1 for the live topic): delete it, name another, or set "
                "LINEAGE_PARTITIONS to match"
            )
        log.info(
            "topic %s (%s) has %d partitions (%d would be created); used as it is",
            spec.name,
            spec.role,
            state.partitions,
            spec.partitions,
        )
