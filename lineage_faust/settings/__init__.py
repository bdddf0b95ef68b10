"""Configuration from ``LINEAGE_*`` environment variables, parsed once.

Every default works on the embedded stack (local broker, SQLite under ``./.lineage``).
Values are validated here so a typo fails at start with a message naming the variable,
not deep inside Kafka or the store.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from lineage_faust.domain.alerting import AlertRules
from lineage_faust.domain.freshness import Expectation
from lineage_faust.settings.alerts import (
    Delivery,
    Webhook,
    parse_alert_rules,
    parse_dataset_expectations,
    parse_delivery,
    parse_webhook_format,
    parse_webhooks,
    webhook_of,
)
from lineage_faust.settings.api import ApiAuth, is_loopback, parse_api_auth, refuse_open_bind
from lineage_faust.settings.cassandra import CassandraOptions, parse_cassandra
from lineage_faust.settings.kafka import KafkaSecurity, parse_kafka_security
from lineage_faust.settings.parsing import (
    ConfigError,
    _bool,
    _duration,
    _float,
    _int,
    redact_url,
)

EMBEDDED_FETCH_MAX_WAIT_MS = 40


@dataclass(frozen=True, slots=True)
class Settings:
    kafka_bootstrap: str | None  # None = start/use the embedded broker
    embedded_broker: bool  # the broker is the embedded Tansu (see recovery.py: its end offsets)
    topic: str
    dlq_topic: str
    partitions: int  # partitions of the internal run-updates topic and its tables
    store_url: str
    data_dir: Path
    api_host: str
    api_port: int
    api_auth: ApiAuth
    api_max_body_bytes: int  # POST /api/v1/lineage, after decompression
    worker_host: str
    worker_port: int | None  # the worker's /health page; None = no web server
    max_event_bytes: int
    run_retention_s: float  # how long a finished run stays in the live table
    batch_size: int
    batch_within_s: float
    triage_processes: int  # helper processes validating ingest batches; 0 = in the event loop
    # run-updates messages track_runs may trail ingest by before the events topic is paused
    max_updates_lag: int
    app_id: str
    log_level: str
    retention_s: int | None  # store TTL (LINEAGE_RETENTION); None keeps data forever
    cassandra: CassandraOptions | None  # set when LINEAGE_STORE is cassandra://
    # every alert, JSON, in its run's partition; this deployment's own by default
    alerts_topic: str
    live_topic: str  # run-state changes and alerts for the live stream (1 partition)
    alert_rules: AlertRules
    webhooks: tuple[str, ...] = field(repr=False)  # alert webhook URLs (may hold secrets)
    webhook_format: str  # "json" (the alert) or "slack" (a Slack-compatible message)
    delivery: Delivery  # the webhooks' queues, concurrency, timeout; the age a page expires at
    public_url: str  # how people reach the API: alert links point here
    sweep_interval_s: float  # stuck/overdue checks and live-table eviction
    # largest dead letter sent to the dead-letter topic (bigger ones are cut: dead_letters.py)
    dlq_max_message_bytes: int = 1_000_000
    # /health reports a stall once events wait this long with nothing consumed
    stall_after_s: float = 60.0
    topic_replication: int = 1  # replication factor of the topics the worker creates
    # min.insync.replicas of those topics: how many replicas an acks=all write must reach
    # (None: the broker's default; replication - 1 by default on a replicated cluster)
    topic_min_insync: int | None = None
    # datasets that must be written successfully every so often (LINEAGE_DATASET_EXPECTATIONS)
    dataset_expectations: tuple[Expectation, ...] = ()
    # how every Kafka client connects: protocol, SASL, TLS (LINEAGE_KAFKA_SECURITY_PROTOCOL…)
    kafka_security: KafkaSecurity = field(default_factory=KafkaSecurity)

    @property
    def producer_max_request_bytes(self) -> int:
        """The producers' max_request_size: room for an event of the largest accepted size
        and its headers (a bigger message is dead-lettered, cut to fit)."""
        return max(2 * self.max_event_bytes, 1_048_576)

    @property
    def bootstrap(self) -> str:
        if self.kafka_bootstrap is None:
            raise ConfigError("LINEAGE_KAFKA_BOOTSTRAP is not set (no broker address known)")
        return self.kafka_bootstrap

    @property
    def fetch_max_wait_ms(self) -> int | None:
        """How long a consumer's fetch may wait at the broker for data (None: the client's
        default). The embedded broker (Tansu) answers a waiting fetch only when the wait runs
        out, not when data arrives: measured produce-to-consume p50 395 ms / max 750 ms with
        Faust's 1,500 ms, 3 ms / 53 ms with 100 ms. Each page crosses two topics: 40 ms took
        an idle stack's FAIL-to-webhook p50 from 76 to 35 ms (p99 115 to 55) for 0.8 % more of
        a core while idle. Real Kafka answers as soon as data comes."""
        return EMBEDDED_FETCH_MAX_WAIT_MS if self.embedded_broker else None

    def describe_store(self) -> str:
        """The store URL with any password removed, safe for logs."""
        return redact_url(self.store_url)


def parse_settings(env: Mapping[str, str]) -> Settings:
    data_dir = Path(env.get("LINEAGE_DATA_DIR") or "./.lineage")
    topic = env.get("LINEAGE_TOPIC") or "openlineage.events"
    store_url = env.get("LINEAGE_STORE") or f"sqlite:///{(data_dir / 'lineage.db').as_posix()}"
    if not store_url.startswith(("sqlite://", "cassandra://")):
        raise ConfigError(
            f"LINEAGE_STORE={redact_url(store_url)!r}: expected sqlite:///path "
            "or cassandra://host1,host2:9042/keyspace"
        )
    rules = parse_alert_rules(env)
    webhook_format = parse_webhook_format(env)
    api_host = env.get("LINEAGE_API_HOST") or "127.0.0.1"
    api_port = _int(env, "LINEAGE_API_PORT", 8000, minimum=0)
    run_retention_s = _float(env, "LINEAGE_RUN_RETENTION", 300.0)
    app_id = env.get("LINEAGE_APP_ID") or "lineage-faust"
    replication = _int(env, "LINEAGE_TOPIC_REPLICATION", 1)
    return Settings(
        kafka_bootstrap=env.get("LINEAGE_KAFKA_BOOTSTRAP") or None,
        embedded_broker=_bool(env, "LINEAGE_EMBEDDED_BROKER"),
        topic=topic,
        dlq_topic=env.get("LINEAGE_DLQ_TOPIC") or f"{topic}.dlq",
        partitions=_int(env, "LINEAGE_PARTITIONS", 8),
        store_url=store_url,
        data_dir=data_dir,
        api_host=api_host,
        api_port=api_port,
        api_auth=parse_api_auth(env),
        api_max_body_bytes=_int(env, "LINEAGE_API_MAX_BODY_BYTES", 16 * 1024 * 1024, minimum=1024),
        worker_host=env.get("LINEAGE_WORKER_HOST") or "127.0.0.1",
        worker_port=_int(env, "LINEAGE_WORKER_PORT", 0, minimum=0) or None,
        max_event_bytes=_int(env, "LINEAGE_MAX_EVENT_BYTES", 1024 * 1024, minimum=1024),
        run_retention_s=run_retention_s,
        batch_size=_int(env, "LINEAGE_BATCH_SIZE", 2000),
        batch_within_s=_float(env, "LINEAGE_BATCH_WITHIN", 0.05, minimum=0.001),
        triage_processes=_int(env, "LINEAGE_TRIAGE_PROCESSES", 1, minimum=0),
        max_updates_lag=_int(env, "LINEAGE_MAX_UPDATES_LAG", 64, minimum=1),
        app_id=app_id,
        log_level=(env.get("LINEAGE_LOG_LEVEL") or "INFO").upper(),
        retention_s=_duration(env, "LINEAGE_RETENTION"),
        cassandra=parse_cassandra(store_url, env) if store_url.startswith("cassandra://") else None,
        # per deployment: a deployment reads back only the pages it raised
        alerts_topic=env.get("LINEAGE_ALERTS_TOPIC") or f"{app_id}-alerts",
        live_topic=env.get("LINEAGE_LIVE_TOPIC") or f"{topic}.live",
        alert_rules=rules,
        webhooks=parse_webhooks(env, webhook_format),
        webhook_format=webhook_format,
        delivery=parse_delivery(env),
        public_url=(env.get("LINEAGE_PUBLIC_URL") or f"http://{api_host}:{api_port}").rstrip("/"),
        dlq_max_message_bytes=_int(env, "LINEAGE_DLQ_MAX_MESSAGE_BYTES", 1_000_000, minimum=4096),
        stall_after_s=_float(env, "LINEAGE_STALL_AFTER", 60.0, minimum=1.0),
        topic_replication=replication,
        topic_min_insync=parse_min_insync(env, replication),
        dataset_expectations=parse_dataset_expectations(env),
        kafka_security=parse_kafka_security(env),
        sweep_interval_s=_float(
            env,
            "LINEAGE_SWEEP_INTERVAL",
            max(1.0, min(30.0, run_retention_s / 4, rules.defaults.idle_s / 4)),
            minimum=0.1,
        ),
    )


def parse_min_insync(env: Mapping[str, str], replication: int) -> int | None:
    """``LINEAGE_TOPIC_MIN_INSYNC_REPLICAS``, by default one less than the replication (a
    write survives one broker down, and still reaches two copies at a replication of 3)."""
    default = replication - 1 if replication > 1 else None
    if not env.get("LINEAGE_TOPIC_MIN_INSYNC_REPLICAS"):
        return default
    value = _int(env, "LINEAGE_TOPIC_MIN_INSYNC_REPLICAS", 1)
    if value > replication:
        raise ConfigError(
            f"LINEAGE_TOPIC_MIN_INSYNC_REPLICAS={value} is more than "
            f"LINEAGE_TOPIC_REPLICATION={replication}: no write could ever be acknowledged"
        )
    return value


@cache
def settings() -> Settings:
    """The process's settings, read from the environment on first use."""
    return parse_settings(os.environ)


__all__ = [
    "ApiAuth",
    "CassandraOptions",
    "ConfigError",
    "Delivery",
    "KafkaSecurity",
    "Settings",
    "Webhook",
    "is_loopback",
    "parse_alert_rules",
    "parse_api_auth",
    "parse_cassandra",
    "parse_settings",
    "parse_webhooks",
    "redact_url",
    "refuse_open_bind",
    "settings",
    "webhook_of",
]
