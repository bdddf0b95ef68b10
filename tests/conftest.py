from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from lineage_faust.broker import EmbeddedBroker

from .helpers import Stack


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    """One real embedded Kafka-protocol broker (Tansu) for the whole session."""
    log = tmp_path_factory.mktemp("broker") / "broker.log"
    with EmbeddedBroker(log_path=log) as running:
        yield running


@pytest.fixture
def stack(
    broker: EmbeddedBroker, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[Stack]:
    name = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")[:40]
    running = Stack(tmp=tmp_path, bootstrap=broker.bootstrap, name=f"t-{name}")
    yield running
    running.kill_all()
