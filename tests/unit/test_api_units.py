"""The API's pure parts, directly: credentials config, checks, body reading, job summary."""

from __future__ import annotations

import dataclasses
import gzip
import zlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest

from api.auth import Authenticator
from api.ingest import BodyError, BodyTooLarge, gunzip, read_events
from api.summary import summarise
from lineage_faust.domain.keying import message_key
from lineage_faust.settings import ConfigError, parse_api_auth, refuse_open_bind
from tests.support.helpers import SAMPLES
from tests.support.runs_data import run_status

LINES = [line for line in SAMPLES.read_bytes().splitlines() if line.strip()]


def test_credentials_from_variables_and_files(tmp_path: Path) -> None:
    users = tmp_path / "users"
    users.write_text("# ops team\nbob:pw with spaces:and colons\n\n")
    tokens = tmp_path / "tokens"
    tokens.write_text("tok-from-file-0123456789\n")
    auth = parse_api_auth(
        {
            "LINEAGE_API_USERS": "alice:secret-1 , carol:x",
            "LINEAGE_API_USERS_FILE": str(users),
            "LINEAGE_API_TOKENS": "tok-from-env-0123456789",
            "LINEAGE_API_TOKENS_FILE": str(tokens),
        }
    )
    assert auth.users == (
        ("alice", "secret-1"),
        ("carol", "x"),
        ("bob", "pw with spaces:and colons"),
    )
    assert auth.tokens == ("tok-from-env-0123456789", "tok-from-file-0123456789")
    assert "secret" not in repr(auth) and "tok-" not in repr(auth)
    assert not parse_api_auth({}).enabled
    with pytest.raises(ConfigError, match="cannot read"):
        parse_api_auth({"LINEAGE_API_TOKENS_FILE": str(tmp_path / "missing")})
    with pytest.raises(ConfigError, match="user:password"):
        parse_api_auth({"LINEAGE_API_USERS": "alice:"})


def test_checks_accept_only_configured_pairs() -> None:
    check = Authenticator(
        parse_api_auth({"LINEAGE_API_USERS": "a:1,b:2", "LINEAGE_API_TOKENS": "t" * 20})
    )
    assert check.check_basic("a", "1") and check.check_basic("b", "2")
    assert not check.check_basic("a", "2") and not check.check_basic("c", "1")
    assert not check.check_basic("a", "1 ") and not check.check_basic("", "")
    assert check.check_token("t" * 20) and not check.check_token("t" * 19)


def test_open_binds_need_credentials() -> None:
    none = parse_api_auth({})
    for host in ("127.0.0.1", "::1", "localhost", "127.0.0.2"):
        assert refuse_open_bind(host, none) is None
    for host in ("0.0.0.0", "::", "10.1.2.3", "api.example.com"):
        assert "without authentication" in (refuse_open_bind(host, none) or "")
    assert refuse_open_bind("0.0.0.0", parse_api_auth({"LINEAGE_API_USERS": "a:b"})) is None


def test_one_event_is_forwarded_verbatim_and_keyed_like_the_kafka_transport() -> None:
    out, problems = read_events(LINES[3], 1 << 20)
    assert problems == [] and len(out) == 1
    assert out[0].value == LINES[3]
    assert out[0].key == message_key(orjson.loads(LINES[3]))


def test_arrays_report_each_invalid_event_by_index() -> None:
    bad = orjson.dumps({**orjson.loads(LINES[0]), "run": {}})
    out, problems = read_events(b"[" + b",".join([LINES[0], bad, b"7"]) + b"]", 1 << 20)
    assert len(out) == 1 and orjson.loads(out[0].value) == orjson.loads(LINES[0])
    assert [(p.index, p.reason) for p in problems] == [(1, "missing_field"), (2, "not_object")]
    too_big, problems = read_events(LINES[0], 100)
    assert too_big == [] and problems[0].reason == "too_large"
    for body, words in [(b"{", "not JSON"), (b"[]", "empty"), (b'"x"', "str")]:
        with pytest.raises(BodyError, match=words):
            read_events(body, 1 << 20)


def test_gunzip_limits_what_it_inflates() -> None:
    assert gunzip(gzip.compress(b"abc"), 10) == b"abc"
    assert gunzip(zlib.compress(b"abc"), 10) == b"abc"  # Content-Encoding: deflate
    with pytest.raises(BodyTooLarge):
        gunzip(gzip.compress(b"a" * 11), 10)
    with pytest.raises(BodyError, match="truncated"):
        gunzip(gzip.compress(b"a" * 1000)[:-12], 10_000)
    with pytest.raises(BodyError):
        gunzip(b"plain", 10)


def test_job_summary_over_a_page() -> None:
    t = datetime(2026, 11, 21, tzinfo=UTC)
    runs = [
        run_status("r4", "RUNNING", namespace="n", job="j", start=t + timedelta(hours=4)),
        run_status("r3", "FAIL", namespace="n", job="j", start=t, end=t + timedelta(seconds=30)),
        run_status(
            "r2", "COMPLETE", namespace="n", job="j", start=t, end=t + timedelta(seconds=10)
        ),
        run_status(
            "r1", "COMPLETE", namespace="n", job="j", start=t, end=t + timedelta(seconds=20)
        ),
    ]
    assert summarise(runs) == {
        "runs": 4,
        "retriedTries": 0,
        "lastState": "RUNNING",
        "states": {"COMPLETE": 2, "FAIL": 1, "RUNNING": 1},
        "successRate": 0.6667,
        "medianDurationMs": 20_000,
    }
    assert summarise([])["successRate"] is None
    # a task try that failed and was retried is not a failure of the job: its final try counts
    retried = dataclasses.replace(runs[1], try_number=1, max_tries=2)
    final = dataclasses.replace(runs[2], try_number=2, max_tries=2)
    summary = summarise([runs[0], retried, final, runs[3]])
    assert summary["states"] == {"COMPLETE": 2, "RUNNING": 1}
    assert (summary["runs"], summary["retriedTries"], summary["successRate"]) == (3, 1, 1.0)
    last_try_failed = dataclasses.replace(runs[1], try_number=2, max_tries=2)
    assert summarise([last_try_failed])["states"] == {"FAIL": 1}
