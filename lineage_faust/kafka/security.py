"""Every Kafka client's connection options, from one ``KafkaSecurity`` (``LINEAGE_KAFKA_*``).

``client_options`` gives the keyword arguments of aiokafka's producer, consumer and admin
client (the worker's Faust app gets the same as Faust's credentials: ``worker/topology.py``).
The TLS context is built once per process: a certificate or key that does not load stops the
start with a line naming the setting.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import struct
from functools import cache
from typing import Any

from aiokafka import errors as kafka_errors
from aiokafka.conn import create_conn

from lineage_faust.settings import ConfigError
from lineage_faust.settings.kafka import KafkaSecurity


@cache
def tls_context(security: KafkaSecurity) -> ssl.SSLContext:
    cafile = str(security.ssl_cafile) if security.ssl_cafile else None
    try:
        context = ssl.create_default_context(cafile=cafile)
    except ssl.SSLError as exc:
        raise ConfigError(f"LINEAGE_KAFKA_SSL_CAFILE: not a usable CA file ({exc})") from None
    context.check_hostname = security.ssl_check_hostname
    if security.ssl_certfile is not None:
        keyfile = str(security.ssl_keyfile) if security.ssl_keyfile else None
        try:
            context.load_cert_chain(str(security.ssl_certfile), keyfile)
        except ssl.SSLError as exc:
            raise ConfigError(
                "LINEAGE_KAFKA_SSL_CERTFILE / LINEAGE_KAFKA_SSL_KEYFILE: the certificate and key "
                f"do not load ({exc.reason or exc})"
            ) from None
    return context


def client_options(security: KafkaSecurity) -> dict[str, Any]:
    """aiokafka's keyword arguments for this connection (producer, consumer, admin)."""
    options: dict[str, Any] = {"security_protocol": security.protocol.value}
    if security.uses_tls:
        options["ssl_context"] = tls_context(security)
    if security.uses_sasl:
        assert security.sasl_mechanism is not None
        options.update(
            sasl_mechanism=security.sasl_mechanism.value,
            sasl_plain_username=security.sasl_username,
            sasl_plain_password=security.sasl_password,
        )
    return options


class ConnectionRefusedForGood(ConfigError):
    """The broker will never accept this client as configured (an untrusted certificate, a
    TLS handshake it refuses): waiting cannot help, the settings must change."""


# ApiVersions v0 (api key 18) with correlation id 1 and client id "lineage-faust-check": the
# smallest request every Kafka broker answers, to see the TLS session really accepted
_CLIENT_ID = b"lineage-faust-check"
_API_VERSIONS = struct.pack(">hhih", 18, 0, 1, len(_CLIENT_ID)) + _CLIENT_ID
CHECK_TIMEOUT_S = 5.0


def check_tls(bootstrap: str, security: KafkaSecurity) -> None:
    """Before any client starts: one TLS connection to the first bootstrap address that
    answers TCP, and one request over it. An untrusted broker certificate or a refused
    handshake (say, a missing client certificate) raises ``ConnectionRefusedForGood`` naming
    the setting; a broker that cannot be reached at all is left to the clients, which wait
    for it as for any broker that is down."""
    if not security.uses_tls:
        return
    context = tls_context(security)
    for address in bootstrap.split(","):
        host, _, port = address.strip().rpartition(":")
        try:
            raw = socket.create_connection((host, int(port)), timeout=CHECK_TIMEOUT_S)
        except (OSError, ValueError):
            continue
        with raw:
            _check_session(context, raw, host, address, security)
        return


def _check_session(
    context: ssl.SSLContext, raw: socket.socket, host: str, address: str, security: KafkaSecurity
) -> None:
    where = f"the broker at {address}"
    try:
        with context.wrap_socket(raw, server_hostname=host) as tls:
            tls.sendall(struct.pack(">i", len(_API_VERSIONS)) + _API_VERSIONS)
            if len(tls.recv(4)) < 4:
                raise ssl.SSLError("the connection was closed after the handshake")
    except ssl.SSLCertVerificationError as exc:
        raise ConnectionRefusedForGood(
            f"LINEAGE_KAFKA_SSL_CAFILE: {where} has a certificate this client does not trust "
            f"({exc.verify_message or exc.reason})"
        ) from None
    except (ssl.SSLError, ConnectionResetError, BrokenPipeError) as exc:
        wanted = (
            ""
            if security.ssl_certfile
            else (": does it require a client certificate (LINEAGE_KAFKA_SSL_CERTFILE)?")
        )
        reason = getattr(exc, "reason", None) or exc.__class__.__name__
        raise ConnectionRefusedForGood(
            f"LINEAGE_KAFKA_SECURITY_PROTOCOL={security.protocol}: {where} refused the TLS "
            f"session ({reason}){wanted}"
        ) from None
    except OSError:
        return  # a timeout or a network error: left to the clients, which wait and retry


def check_sasl(bootstrap: str, security: KafkaSecurity) -> None:
    """Before any client starts: one connection with the SASL handshake to the first
    bootstrap address that answers. Credentials or a mechanism the broker refuses raise
    ``ConnectionRefusedForGood`` naming the settings (never the password); a broker that
    cannot be reached is left to the clients."""
    if not security.uses_sasl:
        return
    asyncio.run(_check_sasl(bootstrap, security))


async def _check_sasl(bootstrap: str, security: KafkaSecurity) -> None:
    options = client_options(security)
    for address in bootstrap.split(","):
        host, _, port = address.strip().rpartition(":")
        try:  # is anything listening? (else: not this check's business)
            socket.create_connection((host, int(port)), timeout=CHECK_TIMEOUT_S).close()
        except (OSError, ValueError):
            continue
        try:
            conn = await asyncio.wait_for(
                create_conn(
                    host,
                    int(port),
                    client_id="lineage-faust-check",
                    request_timeout_ms=int(CHECK_TIMEOUT_S * 1000),
                    **options,
                ),
                CHECK_TIMEOUT_S * 2,
            )
        except (OSError, TimeoutError):
            continue  # gone meanwhile: the next address, or the clients wait for it
        except kafka_errors.KafkaConnectionError:
            # it listens, and closed the connection in the handshake: a broker that does not
            # take this mechanism (or these credentials) on this listener
            raise ConnectionRefusedForGood(
                f"LINEAGE_KAFKA_SASL_MECHANISM={security.sasl_mechanism}: the broker at "
                f"{address} closed the connection during the SASL handshake (is this its SASL "
                "listener, and does it offer this mechanism?)"
            ) from None
        except (kafka_errors.UnsupportedSaslMechanismError, kafka_errors.IllegalSaslStateError):
            raise ConnectionRefusedForGood(
                f"LINEAGE_KAFKA_SASL_MECHANISM={security.sasl_mechanism}: the broker at "
                f"{address} does not offer this mechanism"
            ) from None
        except Exception as exc:  # refused credentials (SCRAM peers also answer malformed)
            raise ConnectionRefusedForGood(
                "LINEAGE_KAFKA_SASL_USERNAME / LINEAGE_KAFKA_SASL_PASSWORD: the broker at "
                f"{address} refused user {security.sasl_username!r} with "
                f"{security.sasl_mechanism} ({_reason(exc)})"
            ) from None
        conn.close()
        return


def _reason(exc: BaseException) -> str:
    """What went wrong, without anything the exception may quote (a password never is, but
    a broker's message is shown only by its class)."""
    if isinstance(exc, kafka_errors.KafkaError):
        return type(exc).__name__
    return f"the handshake failed: {type(exc).__name__}"
