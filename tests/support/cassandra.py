"""Running tests against a real Cassandra when one is configured.

Set ``LINEAGE_CASSANDRA_HOSTS`` (``host[:port][,host...]``; plus ``LINEAGE_CASSANDRA_USERNAME``
/ ``_PASSWORD`` / ``_LOCAL_DC`` if the cluster needs them) to run every store-parametrised
test on Cassandra too. Each test store gets its own keyspace, dropped afterwards.
"""

from __future__ import annotations

import os
import uuid

import pytest

HOSTS = os.environ.get("LINEAGE_CASSANDRA_HOSTS", "").strip()
SKIP_REASON = (
    "Cassandra tests need a cluster: LINEAGE_CASSANDRA_HOSTS is not set "
    "(e.g. LINEAGE_CASSANDRA_HOSTS=127.0.0.1:9042 make test)"
)
needs_cassandra = pytest.mark.skipif(not HOSTS, reason=SKIP_REASON)

# The store kinds every contract/end-to-end test runs on.
STORE_KINDS = ["sqlite", pytest.param("cassandra", marks=needs_cassandra)]


def new_keyspace() -> str:
    return f"lf_test_{uuid.uuid4().hex[:16]}"


def cassandra_url(keyspace: str) -> str:
    return f"cassandra://{HOSTS}/{keyspace}"


def cassandra_env() -> dict[str, str]:
    """The LINEAGE_CASSANDRA_* settings (credentials, DC) to hand to child processes."""
    return {
        k: v
        for k, v in os.environ.items()
        if k.startswith("LINEAGE_CASSANDRA_") and k != "LINEAGE_CASSANDRA_HOSTS"
    }


def drop_keyspace(keyspace: str) -> None:
    from lineage_faust.settings import parse_cassandra
    from lineage_faust.store.cassandra.store import CassandraStore

    CassandraStore(parse_cassandra(cassandra_url(keyspace), os.environ)).drop_keyspace()


def use_store(kind: str, db_path: object, env: dict[str, str]) -> tuple[str, str | None]:
    """Point a process environment at a fresh store of ``kind`` (SQLite at ``db_path``, or a
    new Cassandra keyspace). Returns the store URL and the keyspace to drop afterwards."""
    if kind == "sqlite":
        url, keyspace = f"sqlite:///{db_path}", None
    else:
        keyspace = new_keyspace()
        url = cassandra_url(keyspace)
        env.update(cassandra_env())
    env["LINEAGE_STORE"] = url
    return url, keyspace
