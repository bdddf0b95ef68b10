"""How the worker's topics are created on a replicated cluster: the replicas an acknowledged
write must reach (``min.insync.replicas``) follow the replication unless set."""

from __future__ import annotations

import pytest

from lineage_faust.kafka.topics import worker_topics
from lineage_faust.settings import ConfigError, parse_settings

BASE = {"LINEAGE_KAFKA_BOOTSTRAP": "k1:9092,k2:9092,k3:9092"}


@pytest.mark.parametrize(
    ("replication", "insync", "expected"),
    [("1", None, None), ("2", None, 1), ("3", None, 2), ("3", "3", 3), ("3", "1", 1)],
)
def test_writes_need_one_replica_less_than_there_are(
    replication: str, insync: str | None, expected: int | None
) -> None:
    env = {**BASE, "LINEAGE_TOPIC_REPLICATION": replication}
    if insync:
        env["LINEAGE_TOPIC_MIN_INSYNC_REPLICAS"] = insync
    settings = parse_settings(env)
    assert settings.topic_min_insync == expected
    for spec in worker_topics(settings):
        assert spec.config.get("min.insync.replicas") == (str(expected) if expected else None)
    changelog = worker_topics(settings)[-1]
    assert changelog.config["cleanup.policy"] == "compact"  # kept beside it


@pytest.mark.parametrize(
    ("env", "words"),
    [
        ({"LINEAGE_TOPIC_MIN_INSYNC_REPLICAS": "4", "LINEAGE_TOPIC_REPLICATION": "3"}, "more than"),
        ({"LINEAGE_TOPIC_MIN_INSYNC_REPLICAS": "0"}, "must be at least 1"),
        ({"LINEAGE_TOPIC_MIN_INSYNC_REPLICAS": "two"}, "not a whole number"),
    ],
)
def test_a_setting_no_write_could_meet_stops_the_start(env: dict, words: str) -> None:
    with pytest.raises(ConfigError, match=words):
        parse_settings({**BASE, **env})
