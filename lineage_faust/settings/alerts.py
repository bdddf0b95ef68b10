"""Alerting settings: the paging policy and grouping, thresholds and overrides, dataset
freshness expectations, the webhooks."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import orjson

from lineage_faust.domain.alerting import AlertRules, Grouping, Limits, Policy, parse_overrides
from lineage_faust.domain.freshness import Expectation, parse_expectations
from lineage_faust.settings.parsing import (
    ConfigError,
    _duration,
    _entries,
    _float,
    _int,
    _read_file,
)


def _json_object(env: Mapping[str, str], name: str, example: str) -> dict | None:
    """The JSON object in ``NAME`` or in the file ``NAME_FILE`` (None when neither is set)."""
    raw = env.get(name) or ""
    path = env.get(f"{name}_FILE")
    if path:
        raw = _read_file(f"{name}_FILE", path)
    if not raw.strip():
        return None
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ConfigError(f"{name}: {exc} (expected JSON like {example})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{name}: expected a JSON object, like {example}")
    return data


def _choice(env: Mapping[str, str], name: str, default: str, kind: type[StrEnum]) -> Any:
    raw = (env.get(name) or default).strip().lower()
    try:
        return kind(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r}: one of {', '.join(k.value for k in kind)}") from None


def parse_alert_rules(env: Mapping[str, str]) -> AlertRules:
    defaults = Limits(
        idle_s=float(_duration(env, "LINEAGE_ALERT_IDLE") or 3600),
        overdue_factor=_float(env, "LINEAGE_ALERT_OVERDUE_FACTOR", 3.0, minimum=1.0),
        min_samples=_int(env, "LINEAGE_ALERT_MIN_SAMPLES", 3),
    )
    example = '{"namespace/job": {"idle_s": 600, "overdue_factor": 2}}'
    data = _json_object(env, "LINEAGE_ALERT_OVERRIDES", example)
    try:
        overrides = parse_overrides(data, defaults) if data else {}
    except (ValueError, TypeError) as exc:
        raise ConfigError(
            f"LINEAGE_ALERT_OVERRIDES: {exc} (expected JSON like {example})"
        ) from None
    return AlertRules(
        policy=_choice(env, "LINEAGE_ALERT_POLICY", "final", Policy),
        grouping=_choice(env, "LINEAGE_ALERT_GROUPING", "incident", Grouping),
        defaults=defaults,
        overrides=overrides,
        quiet_s=_quiet_s(env),
    )


def _quiet_s(env: Mapping[str, str]) -> float:
    """``LINEAGE_INCIDENT_QUIET``: unset, 15 minutes; ``0``/``none``: never reopen."""
    if not (env.get("LINEAGE_INCIDENT_QUIET") or "").strip():
        return 900.0
    return float(_duration(env, "LINEAGE_INCIDENT_QUIET") or 0)


def parse_dataset_expectations(env: Mapping[str, str]) -> tuple[Expectation, ...]:
    example = '{"postgres://db:5432/shop.public.*": {"maxAgeSeconds": 3600}}'
    data = _json_object(env, "LINEAGE_DATASET_EXPECTATIONS", example)
    try:
        return parse_expectations(data) if data else ()
    except ValueError as exc:
        raise ConfigError(f"LINEAGE_DATASET_EXPECTATIONS: {exc}") from None


WEBHOOK_FORMATS = ("json", "slack", "pagerduty")


@dataclass(frozen=True, slots=True)
class Webhook:
    """One webhook: where to POST, in which format (an entry ``slack+https://...`` names its
    own; else ``LINEAGE_WEBHOOK_FORMAT``), and PagerDuty's routing key (the URL's
    ``routing_key`` parameter, sent in the body, not in the URL). Never printed: the URL or
    key may be a secret."""

    url: str = field(repr=False)
    format: str
    routing_key: str | None = field(default=None, repr=False)


def webhook_of(entry: str, number: int, default_format: str) -> Webhook:
    """The webhook an entry of ``LINEAGE_WEBHOOKS`` names (its position: ``number``)."""
    fmt, url = default_format, entry.strip()
    head, plus, rest = url.partition("+")
    if plus and head.lower() in WEBHOOK_FORMATS:
        fmt, url = head.lower(), rest
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        # the URL may carry a secret (Slack's do): name only its position
        raise ConfigError(
            f"LINEAGE_WEBHOOKS: entry {number} is not an http(s) URL "
            f"(optionally prefixed with a format: {', '.join(f + '+' for f in WEBHOOK_FORMATS)})"
        )
    if fmt != "pagerduty":
        return Webhook(url, fmt)
    query = parse_qsl(parts.query, keep_blank_values=True)
    keys = [value for name, value in query if name == "routing_key" and value]
    if not keys:
        raise ConfigError(
            f"LINEAGE_WEBHOOKS: entry {number} (pagerduty) needs the integration's routing key, "
            "as https://events.pagerduty.com/v2/enqueue?routing_key=<key>"
        )
    rest_query = urlencode([(n, v) for n, v in query if n != "routing_key"])
    return Webhook(urlunsplit(parts._replace(query=rest_query)), fmt, keys[0])


def parse_webhooks(env: Mapping[str, str], default_format: str) -> tuple[str, ...]:
    """The entries of ``LINEAGE_WEBHOOKS`` (each checked: ``webhook_of``)."""
    urls = _entries(env, "LINEAGE_WEBHOOKS")
    for number, url in enumerate(urls, 1):
        webhook_of(url, number, default_format)
    return tuple(urls)


def parse_webhook_format(env: Mapping[str, str]) -> str:
    fmt = (env.get("LINEAGE_WEBHOOK_FORMAT") or "json").strip().lower()
    if fmt not in WEBHOOK_FORMATS:
        raise ConfigError(f"LINEAGE_WEBHOOK_FORMAT={fmt!r}: one of {', '.join(WEBHOOK_FORMATS)}")
    return fmt


@dataclass(frozen=True, slots=True)
class Delivery:
    """How pages reach the webhooks: each webhook has its own queue and its own requests."""

    queue: int = 10_000  # pages waiting for one webhook, at most (queued, retrying, in flight)
    concurrency: int = 4  # requests in flight to one webhook
    timeout_s: float = 10.0  # one request, connect to answer
    max_age_s: float = 3600.0  # a page raised longer ago than this is expired, never sent


def parse_delivery(env: Mapping[str, str]) -> Delivery:
    default = Delivery()
    raw_age = (env.get("LINEAGE_PAGE_MAX_AGE") or "").strip().lower()
    max_age = _duration(env, "LINEAGE_PAGE_MAX_AGE") if raw_age else default.max_age_s
    if max_age is None:  # "none", "off" or 0: pages never expire
        max_age = float("inf")
    return Delivery(
        queue=_int(env, "LINEAGE_WEBHOOK_QUEUE", default.queue),
        concurrency=_int(env, "LINEAGE_WEBHOOK_CONCURRENCY", default.concurrency),
        timeout_s=_float(env, "LINEAGE_WEBHOOK_TIMEOUT", default.timeout_s, minimum=0.1),
        max_age_s=float(max_age),
    )
