"""Never run half-blind: every topic the group subscribes to has partitions assigned in it.

A group leader that does not find a subscribed topic in its metadata assigns none of its
partitions (Faust logs ``Ignoring missing topic``) and nothing assigns them later: the
worker went on storing events with no run states and no alerts. Topics are now created and
visible before the consumer subscribes (``topics.py``); this is the check behind it, run
after each rebalance and every few seconds. It asks the group coordinator (DescribeGroups)
for every member's subscription and assignment, so it sees the whole group from any member.
"""

from __future__ import annotations

import logging

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.coordinator.protocol import (
    ConsumerProtocolMemberAssignment,
    ConsumerProtocolMemberMetadata,
)

from lineage_faust.kafka.security import client_options
from lineage_faust.settings import KafkaSecurity

log = logging.getLogger(__name__)


def uncovered(members: list[tuple[bytes, bytes]]) -> list[str]:
    """Topics some member subscribes to and no member has a partition of, from each member's
    ``(metadata, assignment)`` as the coordinator keeps them (the consumer protocol)."""
    subscribed: set[str] = set()
    assigned: set[str] = set()
    for metadata, assignment in members:
        subscribed.update(ConsumerProtocolMemberMetadata.decode(metadata).subscription)
        for topic, partitions in ConsumerProtocolMemberAssignment.decode(assignment).assignment:
            if partitions:
                assigned.add(topic)
    return sorted(subscribed - assigned)


async def uncovered_topics(
    bootstrap: str, group_id: str, security: KafkaSecurity
) -> list[str] | None:
    """The group's subscribed topics without an assigned partition; None when the group is
    not stable (a rebalance is under way) or the coordinator cannot say."""
    admin = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap, request_timeout_ms=5_000, **client_options(security)
    )
    try:
        await admin.start()
        [response] = await admin.describe_consumer_groups([group_id])
        group = response.to_object()["groups"][0]
        if group["error_code"] != 0 or group["state"] != "Stable" or not group["members"]:
            return None
        members = [(m["member_metadata"], m["member_assignment"]) for m in group["members"]]
        if not all(metadata for metadata, _ in members):
            return None  # the embedded broker (Tansu) keeps neither
        return uncovered(members)
    except Exception as exc:  # a diagnostic: it must never take the worker down
        log.debug("group coverage unknown: %s", exc)
        return None
    finally:
        await admin.close()
