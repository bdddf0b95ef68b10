"""Where a running embedded stack is: ``up`` records the broker address in the data dir so
that ``send`` and ``worker`` started by hand find it without configuration."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import click

from lineage_faust.settings import Settings


def broker_file(settings: Settings) -> Path:
    return settings.data_dir / "broker.addr"


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
