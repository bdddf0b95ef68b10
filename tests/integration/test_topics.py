"""Every topic exists before anything subscribes, and the worker never runs half-blind.

Run on the embedded broker in CI; with LINEAGE_TEST_KAFKA_BOOTSTRAP on Apache Kafka, where a
worker that created its topics and subscribed 10 ms later used to get no run-updates
partitions on a new cluster (no run states, no alerts, for as long as it ran)."""

from __future__ import annotations

import asyncio
import sqlite3
import time

import httpx
import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.coordinator.protocol import (
    ConsumerProtocolMemberAssignment,
    ConsumerProtocolMemberMetadata,
)

from lineage_faust.kafka.embedded import free_port
from lineage_faust.kafka.topics import TopicState, describe
from lineage_faust.worker.group_coverage import uncovered
from tests.support.helpers import EXTERNAL_KAFKA, SAMPLES, Stack, run_cli, wait_until

pytestmark = pytest.mark.integration


def member(topics: list[str], assigned: dict[str, list[int]]) -> tuple[bytes, bytes]:
    metadata = ConsumerProtocolMemberMetadata(0, topics, b"").encode()
    assignment = ConsumerProtocolMemberAssignment(0, sorted(assigned.items()), b"").encode()
    return metadata, assignment


@pytest.mark.parametrize(
    "members, missing",
    [
        ([member(["ev", "upd"], {"ev": [0, 1], "upd": [0, 1]})], []),
        ([member(["ev", "upd"], {"ev": [0, 1]})], ["upd"]),  # the bug: one member, no upd
        ([member(["ev", "al"], {"ev": [0]}), member(["ev", "al"], {"ev": [1], "al": [0]})], []),
        ([member(["ev", "al"], {"ev": [0]}), member(["ev", "al"], {"ev": [1], "al": []})], ["al"]),
    ],
)
def test_a_topic_no_member_has_a_partition_of_is_found(members: list, missing: list) -> None:
    assert uncovered(members) == missing


async def topic_states(bootstrap: str, names: list[str]) -> dict[str, TopicState]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        return await describe(admin, names)
    finally:
        await admin.close()


async def list_topics(bootstrap: str) -> list[str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        return await admin.list_topics()  # (a metadata request for all topics creates none)
    finally:
        await admin.close()


def names(stack: Stack) -> dict[str, int]:
    app = f"{stack.name}-app"
    return {
        stack.topic: 4,
        f"{stack.topic}.dlq": 1,
        stack.alerts_topic: 4,
        f"{stack.topic}.live": 1,
        f"{app}-run-updates": 4,
        f"{app}-runs-changelog": 4,
    }


def test_a_worker_on_topics_that_do_not_exist_yet_pages_every_failure(stack: Stack) -> None:
    port = free_port()
    stack.extra_env["LINEAGE_WORKER_PORT"] = str(port)
    expected = names(stack)
    assert not set(expected) & set(asyncio.run(list_topics(stack.bootstrap)))  # none yet
    worker = stack.spawn("worker")
    try:
        wait_until(lambda: "Worker]: Ready" in worker.log(), 60, "worker ready")
        states = asyncio.run(topic_states(stack.bootstrap, [*expected]))
        assert {n: s.partitions for n, s in states.items()} == expected
        assert stack.send(SAMPLES).returncode == 0

        def run_states() -> dict | None:
            with sqlite3.connect(f"file:{stack.db_path}?mode=ro", uri=True, timeout=30) as conn:
                found = dict(conn.execute("SELECT state, count(*) FROM run_status GROUP BY 1"))
                paged = conn.execute("SELECT count(*) FROM alerts WHERE published = 1").fetchone()
            return found if found == {"COMPLETE": 11, "FAIL": 3} and paged[0] == 3 else None

        wait_until(run_states, 60, "every run's state and the samples' three alerts", 0.5)
        health = httpx.get(f"http://127.0.0.1:{port}/health", timeout=5).json()
        assert health["status"] == "ok", health
        assert "no partition of" not in worker.log()
    finally:
        assert worker.stop() == 0


def test_init_topics_creates_them_all_and_refuses_a_wrong_shape(stack: Stack) -> None:
    expected = names(stack)
    done = run_cli(stack.env, "init-topics")
    assert done.returncode == 0, done.stderr
    assert "topics ready" in done.stdout
    states = asyncio.run(topic_states(stack.bootstrap, [*expected]))
    assert {n: s.partitions for n, s in states.items()} == expected
    assert all(s.led == s.partitions for s in states.values())
    assert run_cli(stack.env, "init-topics").returncode == 0  # safe to repeat

    # a topic of the wrong shape is a clear error, naming it and what to do (the alerts
    # topic comes first; the internal ones have the same rule)
    other = {**stack.env, "LINEAGE_PARTITIONS": "6"}
    done = run_cli(other, "init-topics")
    assert done.returncode == 1
    assert f"topic {stack.alerts_topic} (alerts) has 4 partitions, 6 are needed" in done.stderr
    without_alerts = {**other, "LINEAGE_ALERTS_TOPIC": f"{stack.name}.alerts-6"}
    done = run_cli(without_alerts, "init-topics")
    assert done.returncode == 1
    assert f"topic {stack.name}-app-run-updates (run updates (internal)) has 4 partitions" in (
        done.stderr
    )
    assert "Traceback" not in done.stderr
    # so is a worker started on it, before it consumes anything
    done = run_cli(without_alerts, "worker", timeout_s=60)
    assert done.returncode == 1 and "6 are needed" in done.stderr, done.stderr[-2000:]

    # an alerts topic named explicitly must have as many partitions too (an alert goes to
    # its run's partition, whose worker reads it back): one made elsewhere with 1 is refused
    shared = f"{stack.name}.shared-alerts"
    asyncio.run(create_topic(stack.bootstrap, shared, 1))
    done = run_cli({**stack.env, "LINEAGE_ALERTS_TOPIC": shared}, "init-topics")
    assert done.returncode == 1
    assert f"topic {shared} (alerts) has 1 partitions, 4 are needed" in done.stderr


async def topic_configs(bootstrap: str, names: list[str], keys: list[str]) -> dict[str, dict]:
    """Each topic's ``keys`` as the broker describes them."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        # every config asked for, filtered here: the embedded broker drops the connection
        # when a request names the configs it wants
        resources = [ConfigResource(ConfigResourceType.TOPIC, name) for name in names]
        found = {}
        for response in await admin.describe_configs(resources):
            for described in response.to_object()["resources"]:
                found[described["resource_name"]] = {
                    e["config_names"]: e["config_value"]
                    for e in described["config_entries"]
                    if e["config_names"] in keys
                }
        return found
    finally:
        await admin.close()


def test_topics_are_created_with_the_replicas_a_write_must_reach(stack: Stack) -> None:
    """``min.insync.replicas`` on every topic the worker creates (with acks=all, a write then
    needs that many replicas in sync), the changelog still compacted."""
    env = {**stack.env, "LINEAGE_TOPIC_MIN_INSYNC_REPLICAS": "1"}
    done = run_cli(env, "init-topics")
    assert done.returncode == 0, done.stderr
    assert "(replication 1, min.insync.replicas 1)" in done.stdout
    expected = names(stack)
    configs = asyncio.run(
        topic_configs(stack.bootstrap, [*expected], ["min.insync.replicas", "cleanup.policy"])
    )
    assert {n: c["min.insync.replicas"] for n, c in configs.items()} == dict.fromkeys(expected, "1")
    assert configs[f"{stack.name}-app-runs-changelog"]["cleanup.policy"] == "compact"
    # more replicas in sync than there are copies: refused before anything is created
    bad = {**stack.env, "LINEAGE_TOPIC_MIN_INSYNC_REPLICAS": "2"}
    done = run_cli(bad, "init-topics")
    assert done.returncode == 1 and "no write could ever be acknowledged" in done.stderr


async def auto_create(bootstrap: str) -> bool:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        node = (await admin.describe_cluster())["brokers"][0]["node_id"]
        [response] = await admin.describe_configs(
            [
                ConfigResource(
                    ConfigResourceType.BROKER, str(node), {"auto.create.topics.enable": None}
                )
            ]
        )
        [resource] = response.to_object()["resources"]
        return resource["config_entries"][0]["config_value"] == "true"
    finally:
        await admin.close()


async def create_topic(bootstrap: str, name: str, partitions: int) -> None:
    await delete_topic(bootstrap, name, recreate_with=partitions)


async def delete_topic(bootstrap: str, name: str, recreate_with: int = 0) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        if recreate_with:
            await admin.create_topics([NewTopic(name, recreate_with, 1)])
        else:
            await admin.delete_topics([name])
    finally:
        await admin.close()


@pytest.mark.skipif(not EXTERNAL_KAFKA, reason="needs Apache Kafka (LINEAGE_TEST_KAFKA_BOOTSTRAP)")
def test_a_group_without_a_topic_says_so_and_rejoins_until_whole(stack: Stack) -> None:
    if asyncio.run(auto_create(stack.bootstrap)):
        pytest.skip("the broker auto-creates topics: a deleted topic would come back by itself")
    port = free_port()
    stack.extra_env["LINEAGE_WORKER_PORT"] = str(port)
    updates = f"{stack.name}-app-run-updates"
    worker = stack.spawn("worker")

    def health() -> httpx.Response:
        return httpx.get(f"http://127.0.0.1:{port}/health", timeout=5)

    try:
        wait_until(lambda: "Worker]: Ready" in worker.log(), 60, "worker ready")
        wait_until(lambda: health().status_code == 200, 30, "healthy")
        asyncio.run(delete_topic(stack.bootstrap, updates))
        unhealthy = wait_until(
            lambda: r if (r := health()).status_code == 503 else None, 60, "503", 0.5
        )
        [failing] = [f for f in unhealthy.json()["failing"] if f["what"] == "group assignment"]
        assert updates in failing["lastError"]
        assert f"no partition of {updates} is assigned" in worker.log()
        asyncio.run(delete_topic(stack.bootstrap, updates, recreate_with=4))
        started = time.monotonic()
        wait_until(lambda: health().status_code == 200, 60, "whole again", 0.5)
        print(f"whole again {time.monotonic() - started:.1f} s after the topic came back")
        assert stack.send(SAMPLES).returncode == 0

        def run_states() -> bool:
            with sqlite3.connect(f"file:{stack.db_path}?mode=ro", uri=True, timeout=30) as conn:
                found = dict(conn.execute("SELECT state, count(*) FROM run_status GROUP BY 1"))
            return found == {"COMPLETE": 11, "FAIL": 3}

        wait_until(run_states, 60, "run states after the group was whole again", 0.5)
    finally:
        worker.stop()
