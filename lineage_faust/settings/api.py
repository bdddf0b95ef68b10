"""The API's settings: who may call it (HTTP Basic users, bearer tokens) and where it listens."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field

from lineage_faust.settings.parsing import ConfigError, _entries


@dataclass(frozen=True, slots=True)
class ApiAuth:
    """Who may call the API: HTTP Basic users and bearer tokens (never logged)."""

    users: tuple[tuple[str, str], ...] = field(default=(), repr=False)
    tokens: tuple[str, ...] = field(default=(), repr=False)

    @property
    def enabled(self) -> bool:
        return bool(self.users or self.tokens)


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
