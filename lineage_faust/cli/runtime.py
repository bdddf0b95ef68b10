"""Where a running embedded stack is: ``up`` records the broker's and the worker's addresses
in the data dir so that ``send``, ``worker`` and ``stats`` started by hand find them without
configuration."""

from __future__ import annotations

import dataclasses
import socket
from pathlib import Path

import click

from lineage_faust.settings import Settings


def broker_file(settings: Settings) -> Path:
    return settings.data_dir / "broker.addr"


def worker_file(settings: Settings) -> Path:
    return settings.data_dir / "worker.addr"


def free_port(host: str) -> int:
    """A port free on ``host`` now (for the worker's web server that ``up`` starts)."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def resolve_worker_url(settings: Settings) -> str | None:
    """The worker's web address: LINEAGE_WORKER_PORT, else the one ``up`` recorded."""
    if settings.worker_port:
        return f"http://{settings.worker_host}:{settings.worker_port}"
    path = worker_file(settings)
    if path.is_file():
        return path.read_text().strip() or None
    return None


def resolve_bootstrap(settings: Settings, *, required: bool = True) -> Settings:
    if settings.kafka_bootstrap:
        return settings
    path = broker_file(settings)
    if path.is_file():
        address = path.read_text().strip()
        if address:
            return dataclasses.replace(settings, kafka_bootstrap=address, embedded_broker=True)
    if not required:
        return settings
    raise click.ClickException(
        "no broker: set LINEAGE_KAFKA_BOOTSTRAP, or start the embedded stack with "
        f"`lineage-faust up` (it records its broker in {path})"
    )
