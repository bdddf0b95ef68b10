"""How every Kafka client connects: the security protocol, SASL credentials, TLS files.

Named after the Kafka clients' own settings (``security.protocol``, ``sasl.mechanism``,
``ssl.ca.location``…) as ``LINEAGE_KAFKA_*``. Files are checked here, at start, so a missing
or unreadable one stops the process with a line naming the setting; the password never
appears in a repr, an error or a log.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path

from lineage_faust.settings.parsing import ConfigError, _read_file


class SecurityProtocol(StrEnum):
    PLAINTEXT = "PLAINTEXT"
    SSL = "SSL"
    SASL_PLAINTEXT = "SASL_PLAINTEXT"
    SASL_SSL = "SASL_SSL"


class SaslMechanism(StrEnum):
    PLAIN = "PLAIN"
    SCRAM_SHA_256 = "SCRAM-SHA-256"
    SCRAM_SHA_512 = "SCRAM-SHA-512"


@dataclass(frozen=True, slots=True)
class KafkaSecurity:
    protocol: SecurityProtocol = SecurityProtocol.PLAINTEXT
    sasl_mechanism: SaslMechanism | None = None
    sasl_username: str | None = None
    sasl_password: str | None = field(default=None, repr=False)
    ssl_cafile: Path | None = None  # None: the system's trusted CAs
    ssl_certfile: Path | None = None  # mutual TLS: this client's certificate (PEM)
    ssl_keyfile: Path | None = None  # its key (PEM); None: in the certificate file
    ssl_check_hostname: bool = True

    @property
    def uses_tls(self) -> bool:
        return self.protocol in (SecurityProtocol.SSL, SecurityProtocol.SASL_SSL)

    @property
    def uses_sasl(self) -> bool:
        return self.protocol in (SecurityProtocol.SASL_PLAINTEXT, SecurityProtocol.SASL_SSL)

    def describe(self) -> str:
        """For logs: the protocol, mechanism and user, never the password."""
        if self.uses_sasl:
            return f"{self.protocol} ({self.sasl_mechanism}, user {self.sasl_username})"
        if self.ssl_certfile is not None:
            return f"{self.protocol} (client certificate)"
        return str(self.protocol)


def _choice(env: Mapping[str, str], name: str, kind: type[StrEnum], default: str) -> StrEnum:
    raw = (env.get(name) or default).strip().upper()
    try:
        return kind(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r}: one of {', '.join(k.value for k in kind)}") from None


def _file(env: Mapping[str, str], name: str) -> Path | None:
    raw = (env.get(name) or "").strip()
    if not raw:
        return None
    path = Path(raw)
    try:
        with path.open("rb"):
            pass
    except OSError as exc:
        raise ConfigError(f"{name}={raw!r}: cannot read it ({exc.strerror})") from None
    return path


def _secret(env: Mapping[str, str], name: str) -> str | None:
    """``NAME``, or the first line of the file ``NAME_FILE`` (Docker/Kubernetes secrets)."""
    path = env.get(f"{name}_FILE")
    if path:
        lines = _read_file(f"{name}_FILE", path).splitlines()
        return lines[0] if lines else ""
    return env.get(name) or None


def parse_kafka_security(env: Mapping[str, str]) -> KafkaSecurity:
    protocol = _choice(env, "LINEAGE_KAFKA_SECURITY_PROTOCOL", SecurityProtocol, "PLAINTEXT")
    security = KafkaSecurity(
        protocol=SecurityProtocol(protocol),
        ssl_cafile=_file(env, "LINEAGE_KAFKA_SSL_CAFILE"),
        ssl_certfile=_file(env, "LINEAGE_KAFKA_SSL_CERTFILE"),
        ssl_keyfile=_file(env, "LINEAGE_KAFKA_SSL_KEYFILE"),
        ssl_check_hostname=(env.get("LINEAGE_KAFKA_SSL_CHECK_HOSTNAME") or "true").strip().lower()
        not in ("0", "false", "no", "off"),
    )
    files = ("CAFILE", "CERTFILE", "KEYFILE")
    if not security.uses_tls:
        for name in (f"LINEAGE_KAFKA_SSL_{f}" for f in files):
            if env.get(name):
                raise ConfigError(
                    f"{name} is set but LINEAGE_KAFKA_SECURITY_PROTOCOL={protocol} does not use "
                    "TLS (SSL or SASL_SSL)"
                )
    if security.ssl_keyfile is not None and security.ssl_certfile is None:
        raise ConfigError("LINEAGE_KAFKA_SSL_KEYFILE is set without LINEAGE_KAFKA_SSL_CERTFILE")
    if not security.uses_sasl:
        return security
    mechanism = _choice(env, "LINEAGE_KAFKA_SASL_MECHANISM", SaslMechanism, "PLAIN")
    username = (env.get("LINEAGE_KAFKA_SASL_USERNAME") or "").strip()
    password = _secret(env, "LINEAGE_KAFKA_SASL_PASSWORD")
    if not username or not password:
        raise ConfigError(
            f"LINEAGE_KAFKA_SECURITY_PROTOCOL={protocol} needs LINEAGE_KAFKA_SASL_USERNAME and "
            "LINEAGE_KAFKA_SASL_PASSWORD (or _FILE)"
        )
    return replace(
        security,
        sasl_mechanism=SaslMechanism(mechanism),
        sasl_username=username,
        sasl_password=password,
    )
