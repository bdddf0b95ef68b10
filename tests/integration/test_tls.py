"""Every Kafka client of lineage-faust through mutual TLS: the embedded broker behind Debian's
stunnel, which refuses any client without a certificate signed by the test's CA, and
advertises only its TLS port (so no client can fall back to plaintext after bootstrapping).
Real handshakes: the worker (consumer, producer, admin, the embedded broker's recovery
reads), ``init-topics``, ``send``, ``stats``, the API's HTTP ingest and its live stream."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from lineage_faust.kafka.embedded import free_port
from tests.integration.test_alerts import ol_event
from tests.integration.test_live import PASSWORD, USER, SseReader
from tests.support.helpers import SAMPLES, Stack, run_cli, wait_until
from tests.support.receiver import Receiver
from tests.support.tls import TlsBroker, stunnel_binary

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        stunnel_binary() is None, reason="the TLS tests need Debian's stunnel4 (make tls-proxy)"
    ),
]
TOKEN = "tok-tls-0123456789"


@pytest.fixture(scope="module")
def tls_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsBroker]:
    with TlsBroker(tmp_path_factory.mktemp("tls"), mutual=True) as running:
        yield running


@pytest.fixture
def tls_stack(tls_broker: TlsBroker, tmp_path: Path) -> Iterator[Stack]:
    stack = Stack(tmp=tmp_path, bootstrap=tls_broker.bootstrap, name=f"tls-{uuid.uuid4().hex[:6]}")
    stack.extra_env.update(tls_broker.files.client_env())
    yield stack
    stack.kill_all()


def test_every_client_works_through_mutual_tls(tls_stack: Stack, tls_broker: TlsBroker) -> None:
    stack, port = tls_stack, free_port()
    with Receiver() as receiver:
        stack.extra_env.update(
            LINEAGE_WEBHOOKS=receiver.url,
            LINEAGE_WORKER_PORT=str(port),
            LINEAGE_API_TOKENS=TOKEN,
            LINEAGE_API_USERS=f"{USER}:{PASSWORD}",
        )
        init = run_cli(stack.env, "init-topics")
        assert init.returncode == 0, init.stderr[-2000:]
        worker = stack.spawn("worker")
        wait_until(lambda: "Worker]: Ready" in worker.log(), 60, "worker ready")
        stack.start_api()
        stream = SseReader(f"{stack.api_url}/api/v1/stream")
        try:
            sent = stack.send(SAMPLES)  # `lineage-faust send` over TLS
            assert sent.returncode == 0, sent.stderr[-2000:]
            run_id = str(uuid.uuid4())
            headers = {"Authorization": f"Bearer {TOKEN}"}
            with httpx.Client(base_url=stack.api_url, headers=headers, timeout=30) as api:
                wait_until(
                    lambda: api.get("/api/v1/health").json()["broker"] == "ok", 30, "API producer"
                )
                for kind in ("START", "COMPLETE"):  # HTTP ingest's producer over TLS
                    line = ol_event(kind, run_id, "over-http", datetime.now(UTC), namespace="tls")
                    response = api.post("/api/v1/lineage", content=line)
                    assert response.status_code == 201, response.text
                wait_until(
                    lambda: (
                        api.get(f"/api/v1/runs/{run_id}").status_code == 200
                        and api.get(f"/api/v1/runs/{run_id}").json()["run"]["state"] == "COMPLETE"
                    ),
                    30,
                    "the run sent over HTTP, stored with its state",
                )
                failed = api.get("/api/v1/runs", params={"state": "FAIL", "limit": 10}).json()
                assert len(failed["runs"]) == 3  # the samples' three failures
            wait_until(lambda: receiver.accepted, 30, "the samples' page")
            # the live stream's consumer reads the live topic over TLS
            wait_until(
                lambda: any(d.get("runId") == run_id for _, _, d in stream.items),
                30,
                "the run on the live stream",
            )
        finally:
            stream.close()
        stats = run_cli(stack.env, "stats", "--worker", f"http://127.0.0.1:{port}")
        assert stats.returncode == 0, stats.stdout + stats.stderr
        assert worker.stop() == 0
    for name in ("worker.log", "api.log"):
        log = (stack.tmp / name).read_text(errors="replace")
        assert "PRIVATE KEY" not in log and "BEGIN" not in log  # no key material, ever


@pytest.mark.parametrize("command", ["init-topics", "worker", "api", "send"])
def test_a_broker_that_refuses_the_client_stops_it_at_start_in_one_line(
    tls_stack: Stack, tls_broker: TlsBroker, command: str
) -> None:
    """No client certificate, or a CA that did not sign the broker's: every command stops at
    once, exit 1, one line naming the setting (no minute of retries, no traceback)."""
    without_cert = {
        k: v
        for k, v in tls_stack.env.items()
        if k not in ("LINEAGE_KAFKA_SSL_CERTFILE", "LINEAGE_KAFKA_SSL_KEYFILE")
    }
    untrusted = {**tls_stack.env, "LINEAGE_KAFKA_SSL_CAFILE": str(tls_broker.files.other_ca)}
    args = ["--samples"] if command == "send" else []
    for env, words in [
        (without_cert, "refused the TLS session"),
        (untrusted, "LINEAGE_KAFKA_SSL_CAFILE: the broker at"),
    ]:
        done = run_cli(env, command, *args, timeout_s=30)
        assert done.returncode == 1, (command, done.stderr[-2000:])
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("Error: ") and words in lines[0], lines
    assert "LINEAGE_KAFKA_SSL_CERTFILE" in run_cli(without_cert, command, *args).stderr
