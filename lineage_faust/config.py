"""Configuration from ``LINEAGE_*`` environment variables, parsed once.

Every default works on the embedded stack (local broker, SQLite under ``./.lineage``).
Values are validated here so a typo fails at start with a message naming the variable,
not deep inside Kafka or the store.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path


class ConfigError(ValueError):
    """A ``LINEAGE_*`` variable has a value we cannot use."""


@dataclass(frozen=True, slots=True)
class Settings:
    kafka_bootstrap: str | None  # None = start/use the embedded broker
    embedded_broker: bool  # the broker is the embedded Tansu (see app.py: one record per batch)
    topic: str
    dlq_topic: str
    partitions: int  # partitions of the internal run-updates topic and its tables
    store_url: str
    data_dir: Path
    api_host: str
    api_port: int
    max_event_bytes: int
    run_retention_s: float  # how long a finished run stays in the live table
    batch_size: int
    batch_within_s: float
    app_id: str
    log_level: str

    @property
    def bootstrap(self) -> str:
        if self.kafka_bootstrap is None:
            raise ConfigError("LINEAGE_KAFKA_BOOTSTRAP is not set (no broker address known)")
        return self.kafka_bootstrap

    def describe_store(self) -> str:
        """The store URL with any password removed, safe for logs."""
        return redact_url(self.store_url)


def redact_url(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest.split("/", 1)[0]:
        return url
    creds, _, host = rest.partition("@")
    user = creds.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}"


def _int(env: Mapping[str, str], name: str, default: int, minimum: int = 1) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a whole number") from None
    if value < minimum:
        raise ConfigError(f"{name}={value} must be at least {minimum}")
    return value


def _float(env: Mapping[str, str], name: str, default: float, minimum: float = 0.0) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a number") from None
    if value < minimum:
        raise ConfigError(f"{name}={value} must be at least {minimum}")
    return value


def _bool(env: Mapping[str, str], name: str) -> bool:
    raw = (env.get(name) or "").strip().lower()
    if raw in ("", "0", "false", "no", "off"):
        return False
    if raw in ("1", "true", "yes", "on"):
        return True
    raise ConfigError(f"{name}={raw!r} is not a boolean (1/0, true/false)")


def parse_settings(env: Mapping[str, str]) -> Settings:
    data_dir = Path(env.get("LINEAGE_DATA_DIR") or "./.lineage")
    topic = env.get("LINEAGE_TOPIC") or "openlineage.events"
    store_url = env.get("LINEAGE_STORE") or f"sqlite:///{(data_dir / 'lineage.db').as_posix()}"
    if not store_url.startswith(("sqlite://", "cassandra://")):
        raise ConfigError(
            f"LINEAGE_STORE={redact_url(store_url)!r}: expected sqlite:///path "
            "or cassandra://host1,host2:9042/keyspace"
        )
    return Settings(
        kafka_bootstrap=env.get("LINEAGE_KAFKA_BOOTSTRAP") or None,
        embedded_broker=_bool(env, "LINEAGE_EMBEDDED_BROKER"),
        topic=topic,
        dlq_topic=env.get("LINEAGE_DLQ_TOPIC") or f"{topic}.dlq",
        partitions=_int(env, "LINEAGE_PARTITIONS", 8),
        store_url=store_url,
        data_dir=data_dir,
        api_host=env.get("LINEAGE_API_HOST") or "127.0.0.1",
        api_port=_int(env, "LINEAGE_API_PORT", 8000, minimum=0),
        max_event_bytes=_int(env, "LINEAGE_MAX_EVENT_BYTES", 1024 * 1024, minimum=1024),
        run_retention_s=_float(env, "LINEAGE_RUN_RETENTION", 300.0),
        batch_size=_int(env, "LINEAGE_BATCH_SIZE", 500),
        batch_within_s=_float(env, "LINEAGE_BATCH_WITHIN", 0.05, minimum=0.001),
        app_id=env.get("LINEAGE_APP_ID") or "lineage-faust",
        log_level=(env.get("LINEAGE_LOG_LEVEL") or "INFO").upper(),
    )


@cache
def settings() -> Settings:
    """The process's settings, read from the environment on first use."""
    return parse_settings(os.environ)
