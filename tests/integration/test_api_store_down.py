"""The API with its store unreachable (a real Cassandra driver pointed at a closed port): it
starts anyway, answers 503 in the error envelope, never a stack trace, and says why."""

from __future__ import annotations

from pathlib import Path

import httpx

from lineage_faust.kafka.embedded import free_port, wait_for_port
from tests.support.helpers import Stack


def test_api_answers_503_while_cassandra_is_unreachable(tmp_path: Path) -> None:
    closed = free_port()  # nothing listens here
    stack = Stack(tmp=tmp_path, bootstrap="127.0.0.1:1", name="down")
    stack.extra_env["LINEAGE_STORE"] = f"cassandra://127.0.0.1:{closed}/openlineage"
    proc = stack.spawn("api")
    try:
        wait_for_port("127.0.0.1", stack.api_port, 30)
        with httpx.Client(base_url=stack.api_url, timeout=10) as client:
            for path in (
                "/api/atlas/v2/openlineage/health",
                "/api/atlas/v2/openlineage/runs/some-run",
                "/api/v1/runs/some-run",
            ):
                response = client.get(path)
                assert response.status_code == 503, (path, response.text)
                body = response.json()
                assert body["success"] is False and "store" in body["error"].lower()
                assert "Traceback" not in response.text
        assert proc.alive()
        assert "unavailable" in proc.log() and "retrying" in proc.log()
    finally:
        proc.stop()
