"""Configuration from ``LINEAGE_*`` environment variables, parsed once.

Every default works on the embedded stack (local broker, SQLite under ``./.lineage``).
Values are validated here so a typo fails at start with a message naming the variable,
not deep inside Kafka or the store.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlsplit

import orjson

from lineage_faust.domain.alerting import AlertRules, Limits, Policy, parse_overrides


class ConfigError(ValueError):
    """A ``LINEAGE_*`` variable has a value we cannot use."""


_CONSISTENCY_LEVELS = (
    "LOCAL_QUORUM",
    "QUORUM",
    "LOCAL_ONE",
    "ONE",
    "TWO",
    "THREE",
    "EACH_QUORUM",
    "ALL",
)
_COMPRESSORS = ("LZ4Compressor", "ZstdCompressor", "SnappyCompressor", "DeflateCompressor", "none")


@dataclass(frozen=True, slots=True)
class CassandraOptions:
    """Everything the Cassandra store needs, from the URL and ``LINEAGE_CASSANDRA_*``."""

    hosts: tuple[str, ...]
    port: int
    keyspace: str
    local_dc: str | None  # None: the driver picks the DC of the first host it reaches
    consistency: str  # read and write consistency level name, LOCAL_QUORUM by default
    replication: dict[str, int]  # {"replication_factor": n} or {dc: n, ...} (NTS)
    username: str | None
    password: str | None = field(repr=False)
    tls: bool
    tls_ca_file: str | None
    compression: str  # table compression class, or "none"
    max_in_flight: int  # concurrent requests per process (backpressure beyond)
    request_timeout_s: float
    create_schema: bool  # create missing tables at start (off when an init job does it)
    # native protocol: 4 by default. Version 5 checksums every frame, which the Python
    # driver computes in Python (py-spy: ~15 % of the triage helper's time writing to it)
    protocol_version: int = 4

    @property
    def replication_cql(self) -> str:
        if set(self.replication) == {"replication_factor"}:
            factor = self.replication["replication_factor"]
            return f"{{'class': 'SimpleStrategy', 'replication_factor': {factor}}}"
        dcs = ", ".join(f"'{dc}': {n}" for dc, n in sorted(self.replication.items()))
        return f"{{'class': 'NetworkTopologyStrategy', {dcs}}}"


@dataclass(frozen=True, slots=True)
class ApiAuth:
    """Who may call the API: HTTP Basic users and bearer tokens (never logged)."""

    users: tuple[tuple[str, str], ...] = field(default=(), repr=False)
    tokens: tuple[str, ...] = field(default=(), repr=False)

    @property
    def enabled(self) -> bool:
        return bool(self.users or self.tokens)


EMBEDDED_FETCH_MAX_WAIT_MS = 100


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
    alerts_topic: str  # every alert, JSON, keyed by runId
    live_topic: str  # run-state changes and alerts for the live stream (1 partition)
    alert_rules: AlertRules
    webhooks: tuple[str, ...] = field(repr=False)  # alert webhook URLs (may hold secrets)
    webhook_format: str  # "json" (the alert) or "slack" (a Slack-compatible message)
    public_url: str  # how people reach the API: alert links point here
    sweep_interval_s: float  # stuck/overdue checks and live-table eviction
    # largest dead letter sent to the dead-letter topic (bigger ones are cut: dead_letters.py)
    dlq_max_message_bytes: int = 1_000_000
    # /health reports a stall once events wait this long with nothing consumed
    stall_after_s: float = 60.0
    topic_replication: int = 1  # replication factor of the topics the worker creates

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
        Faust's 1,500 ms, 3 ms / 53 ms with 100 ms. Real Kafka answers as soon as data comes."""
        return EMBEDDED_FETCH_MAX_WAIT_MS if self.embedded_broker else None

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


_DURATION = re.compile(r"^\s*(\d+)\s*([smhd]?)\s*$")
_UNIT_S = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def _duration(env: Mapping[str, str], name: str) -> int | None:
    """Seconds from ``90``, ``90s``, ``15m``, ``12h`` or ``30d``; empty/0/none = no limit."""
    raw = (env.get(name) or "").strip().lower()
    if raw in ("", "0", "none", "off"):
        return None
    match = _DURATION.match(raw)
    if not match:
        raise ConfigError(f"{name}={raw!r} is not a duration (e.g. 3600, 90m, 12h, 30d)")
    return int(match.group(1)) * _UNIT_S[match.group(2)]


_IDENT = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,47}$")


def _replication(name: str, raw: str) -> dict[str, int]:
    """``3`` (SimpleStrategy) or ``dc1:3,dc2:2`` (NetworkTopologyStrategy)."""
    raw = raw.strip()
    try:
        if raw.isdigit():
            return {"replication_factor": int(raw)}
        pairs = [part.split(":") for part in raw.split(",") if part.strip()]
        result = {dc.strip(): int(n) for dc, n in pairs}
    except ValueError:
        result = {}
    if not result or any(not re.match(r"^[A-Za-z0-9_.-]+$", dc) for dc in result):
        raise ConfigError(f"{name}={raw!r}: expected a factor (3) or per-DC factors (dc1:3,dc2:2)")
    return result


def parse_cassandra(url: str, env: Mapping[str, str]) -> CassandraOptions:
    """``cassandra://[user:password@]host1,host2[:port]/[keyspace][?option=value&...]``.

    Query options (``local_dc``, ``consistency``, ``replication``, ``tls``, ``tls_ca_file``,
    ``compression``, ``max_in_flight``, ``timeout``, ``create_schema``) may instead be given
    as ``LINEAGE_CASSANDRA_<OPTION>`` variables; the URL wins. ``LINEAGE_CASSANDRA_HOSTS`` /
    ``_USERNAME`` / ``_PASSWORD`` fill what the URL leaves out.
    """
    rest = url.removeprefix("cassandra://")
    rest, _, query = rest.partition("?")
    netloc, _, keyspace = rest.partition("/")
    creds, at, hostpart = netloc.rpartition("@")
    options = {f"LINEAGE_CASSANDRA_{k.upper()}": v for k, v in parse_qsl(query)}
    known = {
        f"LINEAGE_CASSANDRA_{k}"
        for k in (
            "LOCAL_DC",
            "CONSISTENCY",
            "REPLICATION",
            "TLS",
            "TLS_CA_FILE",
            "COMPRESSION",
            "MAX_IN_FLIGHT",
            "TIMEOUT",
            "CREATE_SCHEMA",
        )
    }
    for name in options:
        if name not in known:
            raise ConfigError(
                f"LINEAGE_STORE: unknown Cassandra option "
                f"{name.removeprefix('LINEAGE_CASSANDRA_').lower()!r}"
            )
    merged = {**env, **options}
    username = password = None
    if at:
        user, _, secret = creds.partition(":")
        username, password = unquote(user) or None, unquote(secret) or None
    username = username or merged.get("LINEAGE_CASSANDRA_USERNAME") or None
    password = password or merged.get("LINEAGE_CASSANDRA_PASSWORD") or None
    hostpart = hostpart or merged.get("LINEAGE_CASSANDRA_HOSTS", "")
    port = 9042
    hosts = []
    for item in hostpart.split(","):
        item = item.strip()
        if not item:
            continue
        host, colon, port_text = item.rpartition(":") if item.count(":") == 1 else ("", "", item)
        if colon:
            if not port_text.isdigit():
                raise ConfigError(f"LINEAGE_STORE: bad Cassandra port in {item!r}")
            port = int(port_text)
            item = host
        hosts.append(item)
    if not hosts:
        raise ConfigError("LINEAGE_STORE=cassandra://...: no Cassandra host given")
    keyspace = keyspace.strip("/") or "openlineage"
    if not _IDENT.match(keyspace):
        raise ConfigError(f"LINEAGE_STORE: keyspace {keyspace!r} is not a valid Cassandra name")
    consistency = (merged.get("LINEAGE_CASSANDRA_CONSISTENCY") or "LOCAL_QUORUM").upper()
    if consistency not in _CONSISTENCY_LEVELS:
        raise ConfigError(
            f"LINEAGE_CASSANDRA_CONSISTENCY={consistency!r}: "
            f"one of {', '.join(_CONSISTENCY_LEVELS)}"
        )
    compression = merged.get("LINEAGE_CASSANDRA_COMPRESSION") or "LZ4Compressor"
    if compression not in _COMPRESSORS:
        raise ConfigError(
            f"LINEAGE_CASSANDRA_COMPRESSION={compression!r}: one of {', '.join(_COMPRESSORS)}"
        )
    return CassandraOptions(
        hosts=tuple(hosts),
        port=port,
        keyspace=keyspace,
        local_dc=merged.get("LINEAGE_CASSANDRA_LOCAL_DC") or None,
        consistency=consistency,
        replication=_replication(
            "LINEAGE_CASSANDRA_REPLICATION", merged.get("LINEAGE_CASSANDRA_REPLICATION") or "1"
        ),
        username=username,
        password=password,
        tls=_bool(merged, "LINEAGE_CASSANDRA_TLS"),
        tls_ca_file=merged.get("LINEAGE_CASSANDRA_TLS_CA_FILE") or None,
        compression=compression,
        max_in_flight=_int(merged, "LINEAGE_CASSANDRA_MAX_IN_FLIGHT", 256),
        request_timeout_s=_float(merged, "LINEAGE_CASSANDRA_TIMEOUT", 10.0, minimum=0.1),
        create_schema=_bool({"v": merged.get("LINEAGE_CASSANDRA_CREATE_SCHEMA") or "1"}, "v"),
        protocol_version=_protocol_version(merged),
    )


def _protocol_version(merged: Mapping[str, str]) -> int:
    version = _int(merged, "LINEAGE_CASSANDRA_PROTOCOL_VERSION", 4, minimum=3)
    if version > 5:
        raise ConfigError(f"LINEAGE_CASSANDRA_PROTOCOL_VERSION={version}: 3, 4 or 5")
    return version


def _entries(env: Mapping[str, str], name: str) -> list[str]:
    """Comma-separated values of ``NAME``, plus one per line of the file ``NAME_FILE``
    (Docker/Kubernetes secrets; blank lines and ``#`` comments ignored)."""
    found = [part.strip() for part in (env.get(name) or "").split(",") if part.strip()]
    path = env.get(f"{name}_FILE")
    if path:
        try:
            lines = Path(path).read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            raise ConfigError(f"{name}_FILE={path!r}: cannot read it ({exc.strerror})") from None
        found += [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    return found


def parse_api_auth(env: Mapping[str, str]) -> ApiAuth:
    users = []
    for entry in _entries(env, "LINEAGE_API_USERS"):
        user, sep, password = entry.partition(":")
        if not sep or not user or not password:
            # never echo the entry: it holds a password
            raise ConfigError("LINEAGE_API_USERS: every entry must be user:password")
        users.append((user, password))
    tokens = _entries(env, "LINEAGE_API_TOKENS")
    if any(len(t) < 16 for t in tokens):
        raise ConfigError("LINEAGE_API_TOKENS: every token must be at least 16 characters")
    return ApiAuth(tuple(users), tuple(tokens))


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name: it may resolve to anything
        return False


def refuse_open_bind(host: str, auth: ApiAuth) -> str | None:
    """Why the API must not start: listening beyond this machine with no credentials."""
    if auth.enabled or is_loopback(host):
        return None
    return (
        f"LINEAGE_API_HOST={host} would expose the API beyond this machine without "
        "authentication. Set LINEAGE_API_USERS (user:password,...) or LINEAGE_API_TOKENS "
        "(or their _FILE variants), or listen on 127.0.0.1."
    )


def parse_alert_rules(env: Mapping[str, str]) -> AlertRules:
    policy_raw = (env.get("LINEAGE_ALERT_POLICY") or "final").strip().lower()
    try:
        policy = Policy(policy_raw)
    except ValueError:
        choices = ", ".join(p.value for p in Policy)
        raise ConfigError(f"LINEAGE_ALERT_POLICY={policy_raw!r}: one of {choices}") from None
    defaults = Limits(
        idle_s=float(_duration(env, "LINEAGE_ALERT_IDLE") or 3600),
        overdue_factor=_float(env, "LINEAGE_ALERT_OVERDUE_FACTOR", 3.0, minimum=1.0),
        min_samples=_int(env, "LINEAGE_ALERT_MIN_SAMPLES", 3),
    )
    raw = env.get("LINEAGE_ALERT_OVERRIDES") or ""
    path = env.get("LINEAGE_ALERT_OVERRIDES_FILE")
    if path:
        try:
            raw = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(
                f"LINEAGE_ALERT_OVERRIDES_FILE={path!r}: cannot read it ({exc.strerror})"
            ) from None
    overrides = {}
    if raw.strip():
        try:
            data = orjson.loads(raw)
            if not isinstance(data, dict):
                raise ValueError("expected a JSON object")
            overrides = parse_overrides(data, defaults)
        except (orjson.JSONDecodeError, ValueError, TypeError) as exc:
            raise ConfigError(
                f"LINEAGE_ALERT_OVERRIDES: {exc} (expected JSON like "
                '{"namespace/job": {"idle_s": 600, "overdue_factor": 2}})'
            ) from None
    return AlertRules(policy=policy, defaults=defaults, overrides=overrides)


def parse_webhooks(env: Mapping[str, str]) -> tuple[str, ...]:
    urls = _entries(env, "LINEAGE_WEBHOOKS")
    for url in urls:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            # the URL may carry a secret (Slack's do): name only its position
            raise ConfigError(
                f"LINEAGE_WEBHOOKS: entry {urls.index(url) + 1} is not an http(s) URL"
            )
    return tuple(urls)


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
    webhook_format = (env.get("LINEAGE_WEBHOOK_FORMAT") or "json").strip().lower()
    if webhook_format not in ("json", "slack"):
        raise ConfigError(f"LINEAGE_WEBHOOK_FORMAT={webhook_format!r}: json or slack")
    api_host = env.get("LINEAGE_API_HOST") or "127.0.0.1"
    api_port = _int(env, "LINEAGE_API_PORT", 8000, minimum=0)
    run_retention_s = _float(env, "LINEAGE_RUN_RETENTION", 300.0)
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
        app_id=env.get("LINEAGE_APP_ID") or "lineage-faust",
        log_level=(env.get("LINEAGE_LOG_LEVEL") or "INFO").upper(),
        retention_s=_duration(env, "LINEAGE_RETENTION"),
        cassandra=parse_cassandra(store_url, env) if store_url.startswith("cassandra://") else None,
        alerts_topic=env.get("LINEAGE_ALERTS_TOPIC") or "openlineage.alerts",
        live_topic=env.get("LINEAGE_LIVE_TOPIC") or f"{topic}.live",
        alert_rules=rules,
        webhooks=parse_webhooks(env),
        webhook_format=webhook_format,
        public_url=(env.get("LINEAGE_PUBLIC_URL") or f"http://{api_host}:{api_port}").rstrip("/"),
        dlq_max_message_bytes=_int(env, "LINEAGE_DLQ_MAX_MESSAGE_BYTES", 1_000_000, minimum=4096),
        stall_after_s=_float(env, "LINEAGE_STALL_AFTER", 60.0, minimum=1.0),
        topic_replication=_int(env, "LINEAGE_TOPIC_REPLICATION", 1),
        sweep_interval_s=_float(
            env,
            "LINEAGE_SWEEP_INTERVAL",
            max(1.0, min(30.0, run_retention_s / 4, rules.defaults.idle_s / 4)),
            minimum=0.1,
        ),
    )


@cache
def settings() -> Settings:
    """The process's settings, read from the environment on first use."""
    return parse_settings(os.environ)
