"""`lineage-faust up` supervises its children: a dying child stops everything, loudly."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration


def test_a_dying_child_stops_the_rest_and_fails(tmp_path: Path) -> None:
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        taken = blocker.getsockname()[1]
        env = {k: v for k, v in os.environ.items() if not k.startswith("LINEAGE_")}
        env.update(LINEAGE_DATA_DIR=str(tmp_path / "data"), LINEAGE_API_PORT=str(taken))
        done = subprocess.run(
            [sys.executable, "-m", "lineage_faust", "up"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert done.returncode == 1
    assert "!!! api exited with code" in done.stderr
    assert "stopped" in done.stderr
    assert not (tmp_path / "data" / "broker.addr").exists()


def test_bad_configuration_is_refused_with_the_variable_named(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LINEAGE_")}
    env.update(LINEAGE_DATA_DIR=str(tmp_path), LINEAGE_PARTITIONS="many")
    done = subprocess.run(
        [sys.executable, "-m", "lineage_faust", "up"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert "LINEAGE_PARTITIONS='many' is not a whole number" in done.stderr
