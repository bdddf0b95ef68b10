"""The TLS proxy in front of the embedded broker: the benchmark's (bench/tls.py), shared."""

from __future__ import annotations

from bench.tls import TlsBroker, TlsFiles, stunnel_binary

__all__ = ["TlsBroker", "TlsFiles", "stunnel_binary"]
