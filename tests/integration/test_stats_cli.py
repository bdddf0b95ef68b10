"""``lineage-faust stats`` never passes by a check silently: with no worker to ask, or one that
cannot be reached, it says so and exits 1; ``--store-only`` asks for the store's view alone."""

from __future__ import annotations

import pytest

from tests.support.helpers import SAMPLES, Stack, free_port, run_cli, wait_until

pytestmark = pytest.mark.integration


def test_stats_says_when_the_worker_cannot_be_asked(stack: Stack) -> None:
    stack.extra_env["LINEAGE_WORKER_PORT"] = str(free_port())
    worker = stack.spawn("worker")
    try:
        wait_until(lambda: "Worker]: Ready" in worker.log(), 60, "worker ready")
        assert stack.send(SAMPLES).returncode == 0
        lines = len(SAMPLES.read_bytes().splitlines())

        def report():
            done = run_cli(stack.env, "stats")
            return done if f"consumed {lines} =" in done.stdout else None

        holds = wait_until(report, 60, "the worker's accounting")
        assert holds.returncode == 0 and ": holds" in holds.stdout

        no_port = {k: v for k, v in stack.env.items() if k != "LINEAGE_WORKER_PORT"}
        refused = run_cli(no_port, "stats")
        assert refused.returncode == 1
        assert "no worker to ask" in refused.stderr and "--store-only" in refused.stderr

        store_only = run_cli(no_port, "stats", "--store-only")
        assert store_only.returncode == 0, store_only.stdout + store_only.stderr
        assert (
            "consumed" not in store_only.stdout and f"events_by_run: {lines}" in store_only.stdout
        )

        gone = run_cli(no_port, "stats", "--worker", f"http://127.0.0.1:{free_port()}")
        assert gone.returncode == 1
        assert "cannot be reached" in gone.stdout
    finally:
        worker.stop()
