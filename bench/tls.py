"""TLS in front of the embedded broker, for the TLS tests and the TLS throughput figure: a CA
(trustme), Debian's stunnel terminating TLS (optionally requiring a client certificate) and
the broker advertising the TLS port, so every client stays on TLS after bootstrapping."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import trustme

from lineage_faust.kafka.embedded import EmbeddedBroker, free_port, wait_for_port


def stunnel_binary() -> str | None:
    return shutil.which("stunnel4") or shutil.which("stunnel")


@dataclass
class TlsFiles:
    ca: Path  # the CA that signed the broker's and the client's certificates
    client_cert: Path
    client_key: Path
    other_ca: Path  # a CA that signed nothing here

    def client_env(self, *, client_cert: bool = True) -> dict[str, str]:
        env = {"LINEAGE_KAFKA_SECURITY_PROTOCOL": "SSL", "LINEAGE_KAFKA_SSL_CAFILE": str(self.ca)}
        if client_cert:
            env["LINEAGE_KAFKA_SSL_CERTFILE"] = str(self.client_cert)
            env["LINEAGE_KAFKA_SSL_KEYFILE"] = str(self.client_key)
        return env


class TlsBroker:
    """An embedded broker reachable only through TLS (``bootstrap``); with ``mutual`` the
    proxy refuses a client without a certificate signed by the CA."""

    embedded = True

    def __init__(self, directory: Path, *, mutual: bool = True) -> None:
        self.directory, self.mutual = directory, mutual
        self.port = free_port()
        self.broker = EmbeddedBroker(advertised_port=self.port, log_path=directory / "broker.log")
        self.proxy: subprocess.Popen | None = None
        self.files = self._certificates()

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _certificates(self) -> TlsFiles:
        ca, other = trustme.CA(), trustme.CA()
        d = self.directory
        d.mkdir(parents=True, exist_ok=True)
        ca.cert_pem.write_to_path(d / "ca.pem")
        other.cert_pem.write_to_path(d / "other-ca.pem")
        ca.issue_cert("127.0.0.1", "localhost").private_key_and_cert_chain_pem.write_to_path(
            d / "broker.pem"
        )
        client = ca.issue_cert("lineage-client@example.com")
        client.cert_chain_pems[0].write_to_path(d / "client.pem")
        client.private_key_pem.write_to_path(d / "client.key")
        return TlsFiles(d / "ca.pem", d / "client.pem", d / "client.key", d / "other-ca.pem")

    def start(self) -> TlsBroker:
        binary = stunnel_binary()
        assert binary, "stunnel is not installed"
        self.broker.start()
        config = self.directory / "stunnel.conf"
        lines = [
            "foreground = yes",
            "pid =",
            f"output = {self.directory / 'stunnel.log'}",
            "[kafka]",
            f"accept = 127.0.0.1:{self.port}",
            f"connect = {self.broker.bootstrap}",
            f"cert = {self.directory / 'broker.pem'}",
        ]
        if self.mutual:
            lines += [f"CAfile = {self.files.ca}", "verifyChain = yes"]
        config.write_text("\n".join(lines) + "\n")
        self.proxy = subprocess.Popen(
            [binary, str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        wait_for_port("127.0.0.1", self.port, 20)
        return self

    def stop(self) -> None:
        if self.proxy is not None:
            self.proxy.terminate()
            self.proxy.wait(10)
        self.broker.stop()

    def __enter__(self) -> TlsBroker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
