"""`lineage-faust init-store`: creates the schema, is safe to repeat, refuses a newer schema."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from tests.support.cassandra import (
    STORE_KINDS,
    cassandra_env,
    cassandra_url,
    drop_keyspace,
    new_keyspace,
)
from tests.support.helpers import clean_env, run_cli


@pytest.fixture(params=STORE_KINDS)
def store_url(request: pytest.FixtureRequest, tmp_path: Path):
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'data' / 'lineage.db'}"
        return
    keyspace = new_keyspace()
    yield cassandra_url(keyspace)
    asyncio.run(asyncio.to_thread(drop_keyspace, keyspace))


def test_init_store_creates_then_is_idempotent(store_url: str) -> None:
    env = clean_env(LINEAGE_STORE=store_url, LINEAGE_RETENTION="30d", **cassandra_env())
    for _ in range(2):
        done = run_cli(env, "init-store")
        assert done.returncode == 0, done.stderr
        assert "store ready" in done.stdout and "retention: 2592000 s" in done.stdout
    if store_url.startswith("sqlite"):
        path = store_url.removeprefix("sqlite:///")
        with sqlite3.connect(path) as conn:
            tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
        assert {"events_by_run", "run_status", "non_run_events", "dead_letters"} <= tables


def test_init_store_refuses_a_newer_schema(tmp_path: Path) -> None:
    db = tmp_path / "lineage.db"
    env = clean_env(LINEAGE_STORE=f"sqlite:///{db}")
    assert run_cli(env, "init-store").returncode == 0
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE meta SET value='7' WHERE key='schema_version'")
    refused = run_cli(env, "init-store")
    assert refused.returncode == 1
    assert "schema version 7 is newer than this code" in refused.stderr
    assert "Traceback" not in refused.stderr


def test_bad_cassandra_settings_are_named(tmp_path: Path) -> None:
    env = clean_env(
        LINEAGE_STORE="cassandra://db1/openlineage", LINEAGE_CASSANDRA_CONSISTENCY="MOST"
    )
    refused = run_cli(env, "init-store")
    assert refused.returncode == 1
    assert "LINEAGE_CASSANDRA_CONSISTENCY='MOST'" in refused.stderr
