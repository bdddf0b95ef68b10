"""Shared test helpers: real processes, real broker, polling with deadlines."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import httpx

from lineage_faust import samples
from lineage_faust.kafka.embedded import free_port, wait_for_port

T = TypeVar("T")
# an Apache Kafka to run the broker-dependent tests on, on the real-Kafka code path
# (LINEAGE_EMBEDDED_BROKER=0); unset: the embedded broker (Tansu), started by the tests
EXTERNAL_KAFKA = os.environ.get("LINEAGE_TEST_KAFKA_BOOTSTRAP", "").strip()
SAMPLES = samples.SAMPLES  # the recorded Airflow events, shipped with the package


def clean_env(**overrides: str) -> dict[str, str]:
    """This process's environment without any LINEAGE_* setting, plus the given ones."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LINEAGE_")}
    env.update(overrides)
    return env


def run_cli(env: dict[str, str], *args: str, timeout_s: float = 120, stdin: bytes | None = None):
    """Run `python -m lineage_faust ARGS...` to completion (text output unless stdin is bytes)."""
    return subprocess.run(
        [sys.executable, "-m", "lineage_faust", *args],
        env=env,
        input=stdin,
        capture_output=True,
        text=stdin is None,
        timeout=timeout_s,
    )


def wait_until(check: Callable[[], T], timeout_s: float, what: str, interval_s: float = 0.1) -> T:
    deadline = time.monotonic() + timeout_s
    last: T | None = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval_s)
    raise AssertionError(f"timed out after {timeout_s:.0f}s waiting for {what} (last: {last!r})")


def samples(text: str, name: str) -> dict[str, float]:
    """{labels: value} of one metric family in Prometheus text format."""
    found = {}
    for labels, value in re.findall(rf"^{name}(\{{[^}}]*\}})? (\S+)$", text, re.M):
        found[labels] = float(value)
    return found


@dataclass
class Proc:
    name: str
    process: subprocess.Popen
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def alive(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> None:
        if self.alive():
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def stop(self, timeout_s: float = 20.0) -> int:
        if self.alive():
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


@dataclass(frozen=True)
class ExternalBroker:
    """A broker the tests did not start (``LINEAGE_TEST_KAFKA_BOOTSTRAP``)."""

    bootstrap: str
    embedded: bool = False


async def create_big_topic(bootstrap: str, topic: str, partitions: int = 4) -> None:
    """A topic that takes messages of up to 32 MB: Kafka's default (~1 MB) would refuse the
    oversized messages some tests send, before the worker could see them."""
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        config = {"max.message.bytes": str(32 * 1024 * 1024)}
        await admin.create_topics([NewTopic(topic, partitions, 1, topic_configs=config)])
    finally:
        await admin.close()


def up_env(name: str) -> dict[str, str]:
    """What `lineage-faust up` needs to run a test on the external Kafka, if one is set, with
    topics and a group of its own; empty: `up` starts its embedded broker."""
    if not EXTERNAL_KAFKA:
        return {}
    return {
        "LINEAGE_KAFKA_BOOTSTRAP": EXTERNAL_KAFKA,
        "LINEAGE_TOPIC": f"{name}.events",
        "LINEAGE_ALERTS_TOPIC": f"{name}.alerts",
        "LINEAGE_APP_ID": f"{name}-app",
    }


@dataclass
class Stack:
    """Environment for one isolated pipeline on a shared broker (own topics, group, store)."""

    tmp: Path
    bootstrap: str
    name: str
    embedded: bool = True  # the broker is the embedded Tansu (its workarounds on)
    api_port: int = field(default_factory=free_port)
    extra_env: dict[str, str] = field(default_factory=dict)
    spawned: list[Proc] = field(default_factory=list)

    @property
    def env(self) -> dict[str, str]:
        env = clean_env(
            LINEAGE_KAFKA_BOOTSTRAP=self.bootstrap,
            LINEAGE_EMBEDDED_BROKER="1" if self.embedded else "0",
            LINEAGE_DATA_DIR=str(self.tmp / "data"),
            LINEAGE_TOPIC=f"{self.name}.events",
            LINEAGE_ALERTS_TOPIC=f"{self.name}.alerts",
            LINEAGE_APP_ID=f"{self.name}-app",
            LINEAGE_PARTITIONS="4",
            LINEAGE_API_PORT=str(self.api_port),
            LINEAGE_LOG_LEVEL="INFO",
        )
        env.update(self.extra_env)
        return env

    @property
    def topic(self) -> str:
        return f"{self.name}.events"

    @property
    def alerts_topic(self) -> str:
        return f"{self.name}.alerts"

    @property
    def db_path(self) -> Path:
        return self.tmp / "data" / "lineage.db"

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def spawn(self, command: str, *args: str, tag: str | None = None) -> Proc:
        tag = tag or command
        log_path = self.tmp / f"{tag}.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        handle = log_path.open("ab")
        process = subprocess.Popen(
            [sys.executable, "-m", "lineage_faust", command, *args],
            env=self.env,
            stdout=handle,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        proc = Proc(tag, process, log_path)
        self.spawned.append(proc)
        return proc

    def kill_all(self) -> None:
        """Teardown: no process of a failed test outlives it."""
        for proc in self.spawned:
            proc.kill()

    def start_api(self) -> Proc:
        proc = self.spawn("api")
        wait_for_port("127.0.0.1", self.api_port, 30)
        wait_until(
            lambda: httpx.get(f"{self.api_url}/api/atlas/v2/openlineage/health").is_success,
            30,
            "API health",
        )
        return proc

    def send(self, *paths: Path | str) -> subprocess.CompletedProcess:
        return run_cli(self.env, "send", "--no-progress", *map(str, paths))
