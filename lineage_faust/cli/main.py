"""The ``lineage-faust`` command."""

from __future__ import annotations

import logging
import sys

import click

from lineage_faust.settings import ConfigError, Settings, settings


def _settings() -> Settings:
    from lineage_faust.kafka.security import check_sasl, check_tls, tls_context

    try:
        s = settings()
        if s.kafka_security.uses_tls:
            tls_context(s.kafka_security)  # a certificate or key that does not load: stop here
            if s.kafka_bootstrap:  # a broker that will never accept us: stop here too
                check_tls(s.kafka_bootstrap, s.kafka_security)
        if s.kafka_security.uses_sasl and s.kafka_bootstrap:  # nor will refused credentials
            check_sasl(s.kafka_bootstrap, s.kafka_security)
        return s
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None


def _logging(level: str) -> None:
    logging.basicConfig(
        level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="lineage-faust")
def main() -> None:
    """lineage-faust: live run-operations data from OpenLineage events.

    Configuration comes from LINEAGE_* environment variables (see README).
    """


@main.command()
def up() -> None:
    """Start the whole system on this machine: embedded broker (unless
    LINEAGE_KAFKA_BOOTSTRAP is set), worker and API. Ctrl-C stops everything."""
    from lineage_faust.cli.up import run_up

    s = _settings()
    _logging(s.log_level)
    sys.exit(run_up(s))


@main.command()
def worker() -> None:
    """Run the stream processor (Faust worker) alone. Needs LINEAGE_KAFKA_BOOTSTRAP."""
    from aiokafka.errors import KafkaError

    from lineage_faust.cli.runtime import resolve_bootstrap
    from lineage_faust.failures import describe
    from lineage_faust.kafka.topics import TopicMismatch
    from lineage_faust.store import SchemaError
    from lineage_faust.worker.run import run_worker

    s = resolve_bootstrap(_settings())
    try:
        run_worker(s)
    except (SchemaError, TopicMismatch) as exc:  # retrying cannot help: say what to do
        raise click.ClickException(str(exc)) from None
    except KafkaError as exc:  # refused for good at start (not authorised, invalid topic)
        raise click.ClickException(f"the broker refused: {describe(exc)}") from None


@main.command()
@click.option(
    "--worker",
    "worker_url",
    help="A worker's web address (default: LINEAGE_WORKER_PORT, or the worker `up` started).",
)
@click.option(
    "--store-only",
    is_flag=True,
    help="Only the topic's positions and the store's counts: no worker to ask.",
)
def stats(worker_url: str | None, store_only: bool) -> None:
    """Is everything accounted for? The worker's accounting (consumed = stored + deduplicated
    + dead-lettered), the group's lag on the events topic, and the store's row counts.
    Exits 1 when the accounting does not hold or the worker cannot be asked."""
    from lineage_faust.cli.runtime import resolve_bootstrap, resolve_worker_url
    from lineage_faust.cli.stats import report

    s = resolve_bootstrap(_settings())
    if not store_only:
        worker_url = worker_url or resolve_worker_url(s)
        if worker_url is None:
            raise click.ClickException(
                "no worker to ask for its accounting: set LINEAGE_WORKER_PORT (the worker's "
                "web port), pass --worker URL, or --store-only for the store's view alone"
            )
    text, ok = report(s, None if store_only else worker_url)
    click.echo(text)
    sys.exit(0 if ok else 1)


@main.command()
def api() -> None:
    """Run the query API alone (uvicorn on LINEAGE_API_HOST:LINEAGE_API_PORT).

    HTTP ingest (POST /api/v1/lineage) produces to LINEAGE_KAFKA_BOOTSTRAP (or the embedded
    broker of a running `up`); without a broker it answers 503 and the rest works."""
    from api.app import run_api
    from lineage_faust.cli.runtime import resolve_bootstrap

    s = resolve_bootstrap(_settings(), required=False)
    _logging(s.log_level)
    try:
        run_api(s)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None


@main.command()
@click.argument("paths", nargs=-1)
@click.option(
    "--samples", is_flag=True, help="Send the recorded Airflow and dbt events shipped with it."
)
@click.option("--topic", help="Topic to produce to (default: LINEAGE_TOPIC).")
@click.option("--no-progress", is_flag=True, help="Do not draw a progress bar.")
def send(paths: tuple[str, ...], samples: bool, topic: str | None, no_progress: bool) -> None:
    """Produce OpenLineage events from JSON / JSON Lines files, or - for stdin.

    Every line is sent as is (broken ones too: the worker dead-letters them with a
    reason), keyed as the OpenLineage Kafka transport keys events. Exits non-zero if
    the broker did not accept every message. --samples sends three recorded Airflow DAG
    runs (one succeeds, one fails on both tries of a task, one sleeps and maps a task) and
    two recorded runs of a dbt project (the second fails in a staging model, and the ten
    models downstream of it are skipped).
    """
    from lineage_faust.cli.runtime import resolve_bootstrap
    from lineage_faust.cli.send import run_send
    from lineage_faust.samples import DBT_SAMPLES, SAMPLES

    if samples:
        paths = (*paths, str(SAMPLES), str(DBT_SAMPLES))
    if not paths:
        raise click.UsageError("name files to send (or - for stdin), or --samples")
    s = resolve_bootstrap(_settings())
    _logging("WARNING")
    sys.exit(run_send(s, paths, topic or s.topic, progress=not no_progress))


@main.command("init-store")
def init_store() -> None:
    """Create the store's schema if missing (Cassandra keyspace and tables, or the SQLite
    file), align its retention (LINEAGE_RETENTION) and check its version. Safe to repeat.

    Deployments with many workers run this once before them (compose/ does) and start the
    workers with LINEAGE_CASSANDRA_CREATE_SCHEMA=0.
    """
    import asyncio
    import os

    from lineage_faust.store import SchemaError, StoreError, open_store

    s = _settings()
    _logging(s.log_level)
    env = {**os.environ, "LINEAGE_CASSANDRA_CREATE_SCHEMA": "1"}
    store = open_store(s.store_url, retention_s=s.retention_s, env=env)

    async def create() -> None:
        await store.open()
        try:
            await store.health()
        finally:
            await store.close()

    try:
        asyncio.run(create())
    except (StoreError, SchemaError) as exc:
        raise click.ClickException(str(exc)) from None
    retention = f"{s.retention_s} s" if s.retention_s else "none"
    click.echo(f"store ready: {s.describe_store()} (retention: {retention})")


@main.command("init-topics")
def init_topics() -> None:
    """Create every topic the worker reads or writes (events, dead letters, alerts, live,
    run updates, the run table's changelog) if missing, with LINEAGE_PARTITIONS and
    LINEAGE_TOPIC_REPLICATION, and wait until the cluster shows each one whole. Safe to
    repeat. Fails, naming the topic, if an existing one has the wrong partition count.

    Deployments run this once before the workers (compose/ does); a worker also does it
    at start.
    """
    import asyncio

    from aiokafka.errors import KafkaError

    from lineage_faust.cli.runtime import resolve_bootstrap
    from lineage_faust.failures import describe
    from lineage_faust.kafka.topics import TopicMismatch, ensure_topics, worker_topics

    s = resolve_bootstrap(_settings())
    _logging(s.log_level)
    specs = worker_topics(s)
    try:
        states = asyncio.run(
            ensure_topics(
                s.bootstrap, specs, replication=s.topic_replication, security=s.kafka_security
            )
        )
    except TopicMismatch as exc:
        raise click.ClickException(str(exc)) from None
    except (KafkaError, TimeoutError) as exc:
        raise click.ClickException(f"topics not ready: {describe(exc)}") from None
    for spec in specs:
        click.echo(f"{spec.name:48} {states[spec.name].partitions:3} partitions  {spec.role}")
    insync = f", min.insync.replicas {s.topic_min_insync}" if s.topic_min_insync else ""
    click.echo(f"topics ready on {s.bootstrap} (replication {s.topic_replication}{insync})")
