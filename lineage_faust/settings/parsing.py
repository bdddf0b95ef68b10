"""Reading ``LINEAGE_*`` values: whole numbers, decimals, flags, durations, lists from a
variable or its ``_FILE``; every bad value a ``ConfigError`` naming the variable."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path


class ConfigError(ValueError):
    """A ``LINEAGE_*`` variable has a value we cannot use."""


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


def _read_file(name: str, path: str) -> str:
    """The text of the file a ``NAME_FILE`` variable names; unreadable: a ConfigError."""
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{name}={path!r}: cannot read it ({exc.strerror})") from None


def _entries(env: Mapping[str, str], name: str) -> list[str]:
    """Comma-separated values of ``NAME``, plus one per line of the file ``NAME_FILE``
    (Docker/Kubernetes secrets; blank lines and ``#`` comments ignored)."""
    found = [part.strip() for part in (env.get(name) or "").split(",") if part.strip()]
    path = env.get(f"{name}_FILE")
    if path:
        lines = _read_file(f"{name}_FILE", path).splitlines()
        found += [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    return found
