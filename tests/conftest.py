from __future__ import annotations

import os
import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from lineage_faust.kafka.embedded import EmbeddedBroker
from tests.support.helpers import EXTERNAL_KAFKA, ExternalBroker, Stack


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker | ExternalBroker]:
    """One real broker for the whole session: the Apache Kafka named by
    LINEAGE_TEST_KAFKA_BOOTSTRAP, else an embedded Kafka-protocol broker (Tansu)."""
    if EXTERNAL_KAFKA:
        yield ExternalBroker(EXTERNAL_KAFKA)
        return
    log = tmp_path_factory.mktemp("broker") / "broker.log"
    with EmbeddedBroker(log_path=log) as running:
        yield running


@pytest.fixture
def stack(
    broker: EmbeddedBroker | ExternalBroker, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[Stack]:
    name = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")[:40]
    name = f"t-{name}-{uuid.uuid4().hex[:6]}" if EXTERNAL_KAFKA else f"t-{name}"
    running = Stack(tmp=tmp_path, bootstrap=broker.bootstrap, name=name, embedded=broker.embedded)
    yield running
    running.kill_all()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Fault tests run only when named: they take minutes and measure rather than gate."""
    if os.environ.get("LINEAGE_FAULT_TESTS") == "1":
        return
    skip = pytest.mark.skip(reason="a fault test: set LINEAGE_FAULT_TESTS=1 to run it")
    for item in items:
        if "faults" in item.keywords:
            item.add_marker(skip)
