"""A hostile-input corpus, built here from the Airflow samples (no stored blobs): broken JSON,
wrong types at every field, missing required fields, huge strings, deep nesting, invalid UTF-8,
NaN/Infinity, duplicate keys, oversized messages, and random mutations. Deterministic by seed."""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import orjson

from lineage_faust.samples import load_lines

WRONG_VALUES: list[Any] = [None, 0, -1, 1.5, True, "", "x", [], {}, [1, "a"], {"a": {}}, "9" * 400]
REQUIRED = [
    ("eventTime",),
    ("run",),
    ("run", "runId"),
    ("job",),
    ("job", "namespace"),
    ("job", "name"),
]


def paths(obj: Any, prefix: tuple = ()) -> Iterator[tuple]:
    """Every key path of a JSON object (dicts only; lists as a whole)."""
    if isinstance(obj, dict):
        for key, value in obj.items():
            yield (*prefix, key)
            yield from paths(value, (*prefix, key))


def with_value(event: dict, path: tuple, value: Any) -> dict:
    copy = orjson.loads(orjson.dumps(event))
    node = copy
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return copy


def without(event: dict, path: tuple) -> dict:
    copy = orjson.loads(orjson.dumps(event))
    node = copy
    for key in path[:-1]:
        node = node[key]
    node.pop(path[-1], None)
    return copy


def structured(seed: int = 1) -> list[bytes]:
    """Every hand-picked kind of bad (and borderline) message."""
    rng = random.Random(seed)
    samples = [orjson.loads(line) for line in load_lines()]
    base = samples[12]  # a FAIL with an errorMessage facet: many fields
    out: list[bytes] = [
        b"",
        b"not json",
        b"{",
        b'{"eventTime": ',
        b"[1, 2, 3]",
        b'"a string"',
        b"null",
        b"\xff\xfe\x00 invalid utf-8",
        orjson.dumps(base)[:-5] + b"\xc3\x28" + b"}",  # a bad UTF-8 sequence inside a string
        b'{"eventTime": NaN, "run": {"runId": "x"}}',
        b'{"eventTime": "2026-11-21T10:00:00Z", "x": Infinity}',
        orjson.dumps(base)[:-1] + b', "big": 1234567890123456789012345678901234567890}',
        b'{"eventTime": "2026-11-21T10:00:00Z", "eventTime": "2026-11-21T11:00:00Z"}',
        orjson.dumps(base).replace(
            b'"eventType":"FAIL"', b'"eventType":"FAIL","eventType":"START"'
        ),
        b"[" * 5000 + b"]" * 5000,  # deep nesting
        b'{"a":' * 3000 + b"1" + b"}" * 3000,
        orjson.dumps(with_value(base, ("job", "name"), "j" * 300_000)),  # a huge string
        orjson.dumps(with_value(base, ("run", "facets", "blob"), "b" * 2_000_000)),  # oversized
    ]
    for path in paths(base):  # wrong types at every field
        out.append(orjson.dumps(with_value(base, path, rng.choice(WRONG_VALUES))))
    for path in REQUIRED:
        out.append(orjson.dumps(without(base, path)))
    return out


def mutate(line: bytes, rng: random.Random) -> bytes:
    """One random mutation of an event's bytes or structure."""
    choice = rng.randrange(6)
    data = bytearray(line)
    if choice == 0:  # flip bytes
        for _ in range(rng.randint(1, 8)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        return bytes(data)
    if choice == 1:  # cut it short
        return bytes(data[: rng.randrange(len(data))])
    if choice == 2:  # delete a slice
        i = rng.randrange(len(data))
        del data[i : i + rng.randint(1, 40)]
        return bytes(data)
    event = orjson.loads(line)
    path = rng.choice(list(paths(event)))
    if choice == 3:
        return orjson.dumps(with_value(event, path, rng.choice(WRONG_VALUES)))
    if choice == 4:
        return orjson.dumps(without(event, path))
    # a valid-looking change: a new run id or time (a new, valid event)
    event["run"]["runId"] = str(rng.getrandbits(64))
    return orjson.dumps(event)


def mutations(n: int, seed: int = 2) -> list[bytes]:
    rng = random.Random(seed)
    lines = load_lines()
    return [mutate(rng.choice(lines), rng) for _ in range(n)]
