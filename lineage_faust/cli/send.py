"""``lineage-faust send``: produce events from files or stdin, with progress and a summary."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import click
import orjson
from aiokafka.errors import KafkaError
from tqdm import tqdm

from lineage_faust.domain.keying import message_key
from lineage_faust.kafka.producer import event_producer
from lineage_faust.settings import Settings

IN_FLIGHT = 2000  # messages awaiting the broker's acknowledgement at once


@dataclass(slots=True)
class SendSummary:
    sent: int = 0
    failed: int = 0
    not_json: int = 0


def _messages_from_text(data: bytes) -> Iterator[bytes]:
    """A JSON array of events, a single JSON object, or JSON Lines (one message per line).

    JSON Lines are sent byte for byte, so the stored text is exactly the line. A line that is
    not JSON is sent too: the worker dead-letters it with the reason.
    """
    stripped = data.strip()
    if stripped.startswith(b"[") or (stripped.startswith(b"{") and b"\n" in stripped):
        try:
            whole = orjson.loads(stripped)
        except orjson.JSONDecodeError:
            whole = None
        if isinstance(whole, list):
            for item in whole:
                yield orjson.dumps(item)
            return
        if isinstance(whole, dict):
            yield stripped
            return
    for line in data.splitlines():
        if line.strip():
            yield line.rstrip(b"\r")


def _read_all(paths: tuple[str, ...]) -> Iterator[bytes]:
    for path in paths:
        if path == "-":
            yield from _messages_from_text(sys.stdin.buffer.read())
            continue
        p = Path(path)
        if not p.is_file():
            raise click.ClickException(f"{path}: no such file")
        yield from _messages_from_text(p.read_bytes())


async def _send(
    settings: Settings, messages: list[bytes], topic: str, progress: bool
) -> SendSummary:
    summary = SendSummary()
    producer = event_producer(settings)
    try:
        await producer.start()
    except KafkaError as exc:
        await producer.stop()
        raise click.ClickException(
            f"cannot reach the broker at {settings.bootstrap}: {exc}"
        ) from None
    bar = tqdm(total=len(messages), unit="ev", disable=not progress, file=sys.stderr)
    try:
        pending: list[asyncio.Future] = []

        async def drain() -> None:
            for fut in pending:
                try:
                    await fut
                    summary.sent += 1
                except Exception as exc:  # counted and reported; the exit code says it
                    summary.failed += 1
                    click.echo(f"failed: {exc}", err=True)
                bar.update(1)
            pending.clear()

        for value in messages:
            try:
                obj = orjson.loads(value)
            except orjson.JSONDecodeError:
                obj = None
                summary.not_json += 1
            try:
                pending.append(await producer.send(topic, value=value, key=message_key(obj)))
            except Exception as exc:
                summary.failed += 1
                click.echo(f"failed: {exc}", err=True)
                bar.update(1)
            if len(pending) >= IN_FLIGHT:
                await drain()
        await drain()
    finally:
        bar.close()
        await producer.stop()
    return summary


def run_send(settings: Settings, paths: tuple[str, ...], topic: str, *, progress: bool) -> int:
    messages = list(_read_all(paths))
    summary = asyncio.run(_send(settings, messages, topic, progress))
    note = f" ({summary.not_json} not JSON: they will be dead-lettered)" if summary.not_json else ""
    click.echo(f"sent {summary.sent}, failed {summary.failed} to {topic}{note}", err=True)
    return 1 if summary.failed else 0
