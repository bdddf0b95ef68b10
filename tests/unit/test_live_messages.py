"""Packing run changes and alerts into live-topic messages under the size cap."""

from __future__ import annotations

import orjson

from api.routes.stream import stream_items
from lineage_faust.domain.live import MAX_LIVE_MESSAGE_BYTES, live_messages


def change(i: int, pad: int = 0) -> dict:
    return {"runId": f"run-{i}", "state": "FAIL", "errorMessage": "x" * pad}


def alert(i: int, pad: int = 0) -> dict:
    return {"alertId": f"a-{i}", "runId": f"run-{i}", "detail": "y" * pad}


def unpack(messages: list[bytes]) -> list[tuple[str, dict]]:
    return [(name, data) for value in messages for _, name, data in stream_items(0, value)]


def test_a_small_batch_is_one_message() -> None:
    [message] = live_messages([change(1)], [alert(1)])
    assert orjson.loads(message) == {"changes": [change(1)], "alerts": [alert(1)]}


def test_nothing_to_say_is_no_message() -> None:
    assert live_messages([], []) == []


def test_a_big_batch_is_split_under_the_cap_in_order() -> None:
    changes = [change(i, pad=900) for i in range(3_000)]  # ~2.8 MB, as the benchmark made
    alerts = [alert(i, pad=900) for i in range(100)]
    messages = live_messages(changes, alerts)
    assert len(messages) > 1
    assert all(len(m) <= MAX_LIVE_MESSAGE_BYTES for m in messages)
    expected = [("run", c) for c in changes] + [("alert", a) for a in alerts]
    assert unpack(messages) == expected  # nothing lost, nothing doubled, same order


def test_an_item_over_the_cap_goes_alone() -> None:
    huge = change(2, pad=2_000)
    messages = live_messages([change(1), huge, change(3)], [], max_bytes=1_000)
    assert [orjson.loads(m)["changes"] for m in messages] == [[change(1)], [huge], [change(3)]]
