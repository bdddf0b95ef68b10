"""Every Kafka client's connection options, from one ``KafkaSecurity`` (``LINEAGE_KAFKA_*``).

``client_options`` gives the keyword arguments of aiokafka's producer, consumer and admin
client (the worker's Faust app gets the same as Faust's credentials: ``worker/topology.py``).
The TLS context is built once per process: a certificate or key that does not load stops the
start with a line naming the setting.
"""

from __future__ import annotations

import ssl
from functools import cache
from typing import Any

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
