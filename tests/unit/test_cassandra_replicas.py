"""When the Cassandra store may skip looking up each row's replicas: only when every node
holds every row (checked with the driver's own strategy and host classes)."""

from __future__ import annotations

import pytest
from cassandra.metadata import NetworkTopologyStrategy, SimpleStrategy
from cassandra.policies import SimpleConvictionPolicy
from cassandra.pool import Host

from lineage_faust.store.cassandra.session import every_node_holds_every_row


def hosts(*dcs: str) -> list[Host]:
    return [Host(f"10.0.0.{i}", SimpleConvictionPolicy, datacenter=dc) for i, dc in enumerate(dcs)]


def simple(factor: int) -> SimpleStrategy:
    return SimpleStrategy({"replication_factor": str(factor)})


def nts(**factors: int) -> NetworkTopologyStrategy:
    return NetworkTopologyStrategy({dc: str(n) for dc, n in factors.items()})


@pytest.mark.parametrize(
    ("nodes", "strategy", "everywhere"),
    [
        (hosts("dc1"), simple(1), True),
        (hosts("dc1", "dc1", "dc1"), simple(3), True),
        (hosts("dc1", "dc1", "dc1"), simple(2), False),
        (hosts("dc1", "dc1", "dc1", "dc1"), simple(3), False),
        (hosts("dc1", "dc1", "dc1"), nts(dc1=3), True),
        (
            hosts("dc1", "dc1", "dc2", "dc2"),
            nts(dc1=2, dc2=2),
            True,
        ),
        (hosts("dc1", "dc1", "dc2", "dc2"), nts(dc1=2), False),
        (hosts("dc1", "dc1", "dc1"), nts(dc1=2), False),
        (hosts("dc1", "dc1"), None, False),  # keyspace not known yet: look rows up
    ],
)
def test_rows_skip_the_replica_lookup_only_when_every_node_holds_every_row(
    nodes, strategy, everywhere
):
    assert every_node_holds_every_row(nodes, strategy) is everywhere
