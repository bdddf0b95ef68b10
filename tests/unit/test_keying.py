"""`send` keys messages exactly as the official OpenLineage Kafka transport does."""

from __future__ import annotations

import orjson
from openlineage.client.event_v2 import RunState
from openlineage.client.serde import Serde
from openlineage.client.transport.kafka import KafkaTransport

from lineage_faust.domain.keying import message_key
from tests.support.helpers import SAMPLES
from tests.support.olclient import dataset_event, job_event, new_run_id, run_event_obj


def official_key(event: object) -> bytes:
    transport = KafkaTransport.__new__(KafkaTransport)  # the keying needs no producer
    return transport._get_message_key(event).encode()


def test_run_events_are_keyed_like_the_openlineage_kafka_transport() -> None:
    for event in (
        run_event_obj(RunState.START, new_run_id(), job="dag.task", parent=(new_run_id(), "dag")),
        run_event_obj(RunState.COMPLETE, new_run_id(), job="standalone"),
    ):
        assert message_key(orjson.loads(Serde.to_json(event))) == official_key(event)


def test_airflow_samples_are_keyed_by_their_dag() -> None:
    for line in SAMPLES.read_bytes().splitlines():
        obj = orjson.loads(line)
        dag = obj["job"]["name"].split(".")[0]
        assert message_key(obj) == f"run:airflow_ol_corpus/{dag}".encode()


def test_job_and_dataset_events_and_garbage() -> None:
    assert message_key(orjson.loads(job_event("a.b"))) == b"job:tests/a.b"
    assert message_key(orjson.loads(dataset_event("t"))) == b"dataset:db/t"
    assert message_key([1, 2]) is None
    assert message_key({"run": {}}) is None
