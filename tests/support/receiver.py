"""The webhook endpoint of the alert tests: the benchmark's (real HTTP), shared."""

from __future__ import annotations

from bench.receiver import Receiver

__all__ = ["Receiver"]
