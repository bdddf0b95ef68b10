"""`lineage-faust up` supervises its children: a dying child stops everything, loudly."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from tests.support.helpers import clean_env, run_cli

pytestmark = pytest.mark.integration


def test_a_dying_child_stops_the_rest_and_fails(tmp_path: Path) -> None:
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        taken = blocker.getsockname()[1]
        env = clean_env(LINEAGE_DATA_DIR=str(tmp_path / "data"), LINEAGE_API_PORT=str(taken))
        done = run_cli(env, "up")
    assert done.returncode == 1
    assert "!!! api exited with code" in done.stderr
    assert "stopped" in done.stderr
    assert not (tmp_path / "data" / "broker.addr").exists()


def test_bad_configuration_is_refused_with_the_variable_named(tmp_path: Path) -> None:
    done = run_cli(clean_env(LINEAGE_DATA_DIR=str(tmp_path), LINEAGE_PARTITIONS="many"), "up")
    assert done.returncode != 0
    assert "LINEAGE_PARTITIONS='many' is not a whole number" in done.stderr


def test_up_refuses_an_open_bind_without_credentials(tmp_path: Path) -> None:
    env = clean_env(LINEAGE_DATA_DIR=str(tmp_path), LINEAGE_API_HOST="0.0.0.0")
    done = run_cli(env, "up")
    assert done.returncode != 0
    assert "without authentication" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "broker.addr").exists()  # nothing was started
