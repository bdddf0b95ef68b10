"""``lineage-faust up``: the whole system on one machine, as child processes."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass

import click

from lineage_faust.cli.runtime import broker_file, free_port, worker_file
from lineage_faust.kafka.embedded import EmbeddedBroker, wait_for_port
from lineage_faust.settings import Settings, refuse_open_bind

STOP_TIMEOUT_S = 20.0


@dataclass
class Child:
    name: str
    process: subprocess.Popen[bytes]


def _spawn(name: str, command: str, env: dict[str, str]) -> Child:
    process = subprocess.Popen(
        [sys.executable, "-m", "lineage_faust", command],
        env=env,
        stdin=subprocess.DEVNULL,
        start_new_session=True,  # Ctrl-C reaches us only; we stop children in order
    )
    return Child(name, process)


def _stop(children: list[Child]) -> None:
    for child in children:
        if child.process.poll() is None:
            child.process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT_S
    for child in children:
        try:
            child.process.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            click.echo(f"{child.name} did not stop in {STOP_TIMEOUT_S:.0f}s; killing it", err=True)
            child.process.kill()
            child.process.wait()


def _auth_hint(settings: Settings) -> str:
    auth = settings.api_auth
    if not auth.enabled:
        return "off (loopback only; set LINEAGE_API_USERS or LINEAGE_API_TOKENS to require it)"
    ways = []
    if auth.users:
        ways.append(f"HTTP Basic as one of {len(auth.users)} LINEAGE_API_USERS (curl -u user:pass)")
    if auth.tokens:
        ways.append('a LINEAGE_API_TOKENS token (-H "Authorization: Bearer <token>")')
    return " or ".join(ways)


def run_up(settings: Settings) -> int:
    refusal = refuse_open_bind(settings.api_host, settings.api_auth)
    if refusal:  # before anything starts, not as a dying child
        raise click.ClickException(refusal)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    broker: EmbeddedBroker | None = None
    if settings.kafka_bootstrap:
        bootstrap = settings.kafka_bootstrap
    else:
        broker = EmbeddedBroker(log_path=settings.data_dir / "logs" / "broker.log").start()
        bootstrap = broker.bootstrap
        # A new embedded broker starts empty: table state kept for the previous one no longer
        # matches it (offsets, changelogs). The store keeps the durable record.
        shutil.rmtree(settings.data_dir / "faust", ignore_errors=True)
        broker_file(settings).write_text(bootstrap)
        env["LINEAGE_EMBEDDED_BROKER"] = "1"
    env["LINEAGE_KAFKA_BOOTSTRAP"] = bootstrap
    # the worker's web server (/health: its accounting, for `lineage-faust stats`)
    worker_port = settings.worker_port or free_port(settings.worker_host)
    env["LINEAGE_WORKER_PORT"] = str(worker_port)
    worker_url = f"http://{settings.worker_host}:{worker_port}"
    worker_file(settings).write_text(worker_url)

    stopping = False

    def _on_signal(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)

    worker = _spawn("worker", "worker", env)
    api = _spawn("api", "api", env)
    children = [api, worker]  # stop order: API first, then the worker
    code = 0
    try:
        with contextlib.suppress(Exception):  # a dead API is reported below
            wait_for_port(settings.api_host, settings.api_port, 30.0)
        api_url = f"http://{settings.api_host}:{settings.api_port}"
        click.echo(
            "\nlineage-faust is up\n"
            f"  broker      {bootstrap}{' (embedded, memory only)' if broker else ''}\n"
            f"  topic       {settings.topic}   dead letters {settings.dlq_topic}\n"
            f"  store       {settings.describe_store()}\n"
            f"  ops board   {api_url}/   (live: {api_url}/api/v1/stream)\n"
            f"  API         {api_url}   (docs: {api_url}/docs, metrics: {api_url}/metrics)\n"
            f"  worker      {worker_url}/health   (accounting: lineage-faust stats)\n"
            f"  alerts      topic {settings.alerts_topic}, {api_url}/api/v1/alerts, "
            f"{len(settings.webhooks)} webhook(s)\n"
            f"  auth        {_auth_hint(settings)}\n"
            f"  HTTP ingest POST {api_url}/api/v1/lineage  (OpenLineage HTTP transport)\n"
            "  send events lineage-faust send --samples   (or your files, or - for stdin)\n"
            "  stop        Ctrl-C\n",
            err=True,
        )
        while not stopping:
            for child in children:
                if child.process.poll() is not None:
                    click.secho(
                        f"\n!!! {child.name} exited with code {child.process.returncode}: "
                        "stopping everything\n",
                        fg="red",
                        bold=True,
                        err=True,
                    )
                    code = 1
                    stopping = True
                    break
            time.sleep(0.2)
    finally:
        click.echo("stopping ...", err=True)
        _stop(children)
        if broker is not None:
            broker.stop()
            broker_file(settings).unlink(missing_ok=True)
        worker_file(settings).unlink(missing_ok=True)
        click.echo("stopped", err=True)
    return code
