"""The Kafka connection settings (``LINEAGE_KAFKA_*``): parsed once, checked at start, turned
into aiokafka's and Faust's options; the password never shown."""

from __future__ import annotations

import ssl
from pathlib import Path

import faust
import pytest
import trustme

from lineage_faust.kafka.security import client_options, tls_context
from lineage_faust.settings import ConfigError, parse_settings
from lineage_faust.worker.topology import faust_credentials


@pytest.fixture
def pems(tmp_path: Path) -> dict[str, str]:
    ca = trustme.CA()
    client = ca.issue_cert("lineage-client")
    ca.cert_pem.write_to_path(tmp_path / "ca.pem")
    client.cert_chain_pems[0].write_to_path(tmp_path / "client.pem")
    client.private_key_pem.write_to_path(tmp_path / "client.key")
    (tmp_path / "junk.pem").write_text("not a certificate\n")
    (tmp_path / "password").write_text("s3cret-from-file\n")
    return {name: str(tmp_path / name) for name in ("ca.pem", "client.pem", "client.key")} | {
        "junk": str(tmp_path / "junk.pem"),
        "password": str(tmp_path / "password"),
    }


def test_plaintext_by_default() -> None:
    security = parse_settings({}).kafka_security
    assert client_options(security) == {"security_protocol": "PLAINTEXT"}
    assert faust_credentials(security) is None


def test_mutual_tls(pems: dict[str, str]) -> None:
    security = parse_settings(
        {
            "LINEAGE_KAFKA_SECURITY_PROTOCOL": "ssl",
            "LINEAGE_KAFKA_SSL_CAFILE": pems["ca.pem"],
            "LINEAGE_KAFKA_SSL_CERTFILE": pems["client.pem"],
            "LINEAGE_KAFKA_SSL_KEYFILE": pems["client.key"],
        }
    ).kafka_security
    options = client_options(security)
    assert options["security_protocol"] == "SSL"
    context = options["ssl_context"]
    assert isinstance(context, ssl.SSLContext) and context.check_hostname
    assert context.verify_mode == ssl.CERT_REQUIRED
    credentials = faust_credentials(security)
    assert isinstance(credentials, faust.SSLCredentials) and credentials.context is context
    assert security.describe() == "SSL (client certificate)"


def test_sasl_ssl_scram_with_the_password_from_a_file(pems: dict[str, str]) -> None:
    s = parse_settings(
        {
            "LINEAGE_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
            "LINEAGE_KAFKA_SASL_MECHANISM": "scram-sha-512",
            "LINEAGE_KAFKA_SASL_USERNAME": "lineage",
            "LINEAGE_KAFKA_SASL_PASSWORD_FILE": pems["password"],
            "LINEAGE_KAFKA_SSL_CAFILE": pems["ca.pem"],
            "LINEAGE_KAFKA_SSL_CHECK_HOSTNAME": "false",
        }
    )
    options = client_options(s.kafka_security)
    assert options["sasl_mechanism"] == "SCRAM-SHA-512"
    assert options["sasl_plain_username"] == "lineage"
    assert options["sasl_plain_password"] == "s3cret-from-file"
    assert options["ssl_context"].check_hostname is False
    credentials = faust_credentials(s.kafka_security)
    assert isinstance(credentials, faust.SASLCredentials)
    assert (
        credentials.protocol.value == "SASL_SSL" and credentials.mechanism.value == "SCRAM-SHA-512"
    )
    for shown in (repr(s), repr(s.kafka_security), s.kafka_security.describe(), repr(credentials)):
        assert "s3cret" not in shown
    assert s.kafka_security.describe() == "SASL_SSL (SCRAM-SHA-512, user lineage)"


@pytest.mark.parametrize(
    ("env", "words"),
    [
        ({"LINEAGE_KAFKA_SECURITY_PROTOCOL": "TLS"}, "one of PLAINTEXT, SSL, SASL_PLAINTEXT"),
        (
            {"LINEAGE_KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "LINEAGE_KAFKA_SASL_USERNAME": "u"},
            "needs LINEAGE_KAFKA_SASL_USERNAME and LINEAGE_KAFKA_SASL_PASSWORD",
        ),
        (
            {
                "LINEAGE_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
                "LINEAGE_KAFKA_SASL_MECHANISM": "GSSAPI",
                "LINEAGE_KAFKA_SASL_USERNAME": "u",
                "LINEAGE_KAFKA_SASL_PASSWORD": "secret-token",
            },
            "LINEAGE_KAFKA_SASL_MECHANISM='GSSAPI': one of PLAIN, SCRAM-SHA-256, SCRAM-SHA-512",
        ),
        (
            {"LINEAGE_KAFKA_SECURITY_PROTOCOL": "SSL", "LINEAGE_KAFKA_SSL_CAFILE": "/nope.pem"},
            "LINEAGE_KAFKA_SSL_CAFILE='/nope.pem': cannot read it",
        ),
        (
            {"LINEAGE_KAFKA_SSL_CAFILE": "/etc/hostname"},
            "LINEAGE_KAFKA_SSL_CAFILE is set but LINEAGE_KAFKA_SECURITY_PROTOCOL=PLAINTEXT",
        ),
        (
            {
                "LINEAGE_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
                "LINEAGE_KAFKA_SASL_USERNAME": "u",
                "LINEAGE_KAFKA_SASL_PASSWORD_FILE": "/no/such/secret",
            },
            "LINEAGE_KAFKA_SASL_PASSWORD_FILE='/no/such/secret': cannot read it",
        ),
    ],
)
def test_a_bad_setting_stops_the_start_naming_it(env: dict, words: str) -> None:
    with pytest.raises(ConfigError, match=words) as caught:
        parse_settings(env)
    assert "secret-token" not in str(caught.value)


def test_files_that_are_no_certificates_stop_the_start(pems: dict[str, str]) -> None:
    base = {"LINEAGE_KAFKA_SECURITY_PROTOCOL": "SSL"}
    junk_ca = parse_settings({**base, "LINEAGE_KAFKA_SSL_CAFILE": pems["junk"]}).kafka_security
    with pytest.raises(ConfigError, match="LINEAGE_KAFKA_SSL_CAFILE: not a usable CA file"):
        tls_context(junk_ca)
    mismatched = parse_settings(
        {
            **base,
            "LINEAGE_KAFKA_SSL_CERTFILE": pems["client.pem"],
            "LINEAGE_KAFKA_SSL_KEYFILE": pems["junk"],
        }
    ).kafka_security
    with pytest.raises(ConfigError, match="the certificate and key do not load"):
        tls_context(mismatched)
