"""Alerting settings: the paging policy, thresholds and overrides, the webhooks."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit

import orjson

from lineage_faust.domain.alerting import AlertRules, Limits, Policy, parse_overrides
from lineage_faust.settings.parsing import ConfigError, _duration, _entries, _float, _int


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
