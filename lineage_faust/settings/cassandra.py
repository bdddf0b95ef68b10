"""The Cassandra store's settings: from the ``LINEAGE_STORE`` URL and ``LINEAGE_CASSANDRA_*``."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, unquote

from lineage_faust.settings.parsing import ConfigError, _bool, _float, _int

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
