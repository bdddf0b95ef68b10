"""`lineage-faust send`: files, stdin, JSON arrays; bytes verbatim, keys like the transport."""

from __future__ import annotations

import asyncio
from pathlib import Path

import orjson
import pytest
from aiokafka import AIOKafkaConsumer

from lineage_faust.domain.keying import message_key
from tests.support.helpers import SAMPLES, Stack, run_cli

pytestmark = pytest.mark.integration


async def read_all(bootstrap: str, topic: str, expected: int) -> list:
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="earliest"
    )
    await consumer.start()
    records: list = []
    try:
        async with asyncio.timeout(30):
            while len(records) < expected:
                for batch in (await consumer.getmany(timeout_ms=500)).values():
                    records.extend(batch)
    finally:
        await consumer.stop()
    return records


def test_send_files_stdin_and_arrays(stack: Stack, tmp_path: Path) -> None:
    lines = SAMPLES.read_bytes().splitlines()
    array = tmp_path / "events.json"
    array.write_bytes(orjson.dumps([orjson.loads(line) for line in lines[:3]]))
    stdin = run_cli(stack.env, "send", "--no-progress", "-", stdin=b"\n".join(lines[3:10]) + b"\n")
    assert stdin.returncode == 0, stdin.stderr
    assert b"sent 7, failed 0" in stdin.stderr
    from_file = stack.send(array)
    assert from_file.returncode == 0 and "sent 3, failed 0" in from_file.stderr

    records = asyncio.run(read_all(stack.bootstrap, stack.topic, 10))
    by_value = {r.value: r.key for r in records}
    for line in lines[3:10]:  # JSON Lines are sent byte for byte
        assert by_value[line] == message_key(orjson.loads(line))
    arrays = [orjson.loads(r.value) for r in records if r.value not in lines]
    assert arrays == [orjson.loads(line) for line in lines[:3]]


def test_send_to_an_unreachable_broker_fails_clearly(stack: Stack) -> None:
    stack.bootstrap = "127.0.0.1:1"
    done = stack.send(SAMPLES)
    assert done.returncode == 1
    assert "cannot reach the broker at 127.0.0.1:1" in done.stderr
    assert "Traceback" not in done.stderr


def test_send_refuses_a_missing_file(stack: Stack) -> None:
    done = stack.send("/no/such/file.jsonl")
    assert done.returncode != 0 and "no such file" in done.stderr
