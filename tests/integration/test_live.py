"""Alerts over the API, the live stream (Server-Sent Events) with Last-Event-ID resume, and the
ops board in a real headless Chromium: real broker, worker and API processes, real HTTP."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from lineage_faust.samples import fresh_copies, load_lines, run_ids
from tests.support.browser import ARTIFACTS, board_page, needs_chromium
from tests.support.helpers import SAMPLES, Stack, wait_until

pytestmark = pytest.mark.integration
USER, PASSWORD = "ops", "board-password-1"


@pytest.fixture
def running(stack: Stack) -> Iterator[Stack]:
    stack.extra_env.update(LINEAGE_API_USERS=f"{USER}:{PASSWORD}")
    worker = stack.spawn("worker")
    wait_until(lambda: "Worker]: Ready" in worker.log(), 60, "worker ready")
    stack.start_api()
    yield stack


def write_copy(tmp: Path, seed: int) -> Path:
    path = tmp / f"copy-{seed}.jsonl"
    path.write_bytes(b"\n".join(next(fresh_copies(load_lines(), 1, seed=seed))))
    return path


class SseReader:
    """A client of /api/v1/stream in a thread: collects (id, event, data) until stopped.
    With ``reconnect``, it behaves like a browser's EventSource: when the stream breaks it
    connects again, sending the last id it saw as ``Last-Event-ID``."""

    def __init__(self, url: str, last_event_id: str | None = None, reconnect: bool = False) -> None:
        self.items: list[tuple[str, str, dict]] = []
        self.stop = threading.Event()
        self.connected = threading.Event()
        self.connections = 0
        self.thread = threading.Thread(
            target=self._run, args=(url, last_event_id, reconnect), daemon=True
        )
        self.thread.start()
        assert self.connected.wait(15), "stream did not connect"

    def _run(self, url: str, last_event_id: str | None, reconnect: bool) -> None:
        while not self.stop.is_set():
            last = self.items[-1][0] if self.items else last_event_id
            try:
                self._read(url, {"Last-Event-ID": last} if last else {})
            except httpx.HTTPError:
                if not reconnect and not self.stop.is_set():
                    raise  # a closed stream is expected only after close()
            if not reconnect:
                return
            time.sleep(0.2)

    def _read(self, url: str, headers: dict[str, str]) -> None:
        with httpx.stream("GET", url, headers=headers, auth=(USER, PASSWORD), timeout=30) as r:
            assert r.status_code == 200 and r.headers["content-type"].startswith(
                "text/event-stream"
            )
            self.connections += 1
            self.connected.set()
            event: dict[str, str] = {}
            for line in r.iter_lines():
                if self.stop.is_set():
                    return
                if not line:
                    if "data" in event:
                        self.items.append(
                            (event["id"], event["event"], orjson.loads(event["data"]))
                        )
                    event = {}
                elif not line.startswith(":"):
                    name, _, value = line.partition(":")
                    event[name] = value.strip()

    def close(self) -> None:
        self.stop.set()


async def live_topic_items(stack: Stack) -> list[tuple[str, str, dict]]:
    from api.routes.stream import stream_items

    consumer = AIOKafkaConsumer(bootstrap_servers=stack.bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        tp = TopicPartition(f"{stack.topic}.live", 0)
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        found = []
        while batch := await consumer.getmany(tp, timeout_ms=1500):
            for record in batch[tp]:
                found.extend(stream_items(record.offset, record.value))
        return found
    finally:
        await consumer.stop()


def test_alerts_and_a_resumable_live_stream(running: Stack, tmp_path: Path) -> None:
    stack = running
    url = f"{stack.api_url}/api/v1/stream"
    assert httpx.get(url, timeout=10).status_code == 401
    first = SseReader(url)
    assert stack.send(write_copy(tmp_path, 1)).returncode == 0
    wait_until(lambda: sum(1 for i in first.items if i[1] == "alert") == 3, 60, "3 live alerts")
    first.close()
    seen = list(first.items)
    # while no client listens: another day of the same DAGs
    assert stack.send(write_copy(tmp_path, 2)).returncode == 0
    resumed = SseReader(url, last_event_id=seen[-1][0])
    wait_until(lambda: sum(1 for i in resumed.items if i[1] == "alert") == 3, 60, "3 more alerts")
    resumed.close()

    everything = asyncio.run(live_topic_items(stack))
    start = [i[0] for i in everything].index(seen[0][0])
    assert seen + resumed.items == everything[start:]  # nothing lost, nothing twice
    runs = [data for _, name, data in everything if name == "run"]
    # Changes are coalesced per group of run updates (a run that started and ended within
    # one may only show its end), so what is certain is each run's latest change.
    assert {r["state"] for r in runs} <= {"RUNNING", "COMPLETE", "FAIL"}
    latest = {r["runId"]: r["state"] for r in runs}
    assert len(latest) == 2 * len(run_ids(load_lines()))
    assert set(latest.values()) == {"COMPLETE", "FAIL"}
    failed = [r for r in runs if r["state"] == "FAIL"]
    assert len(failed) == 2 * 3 and all(r["errorMessage"] for r in failed)

    # a filtered stream only carries what matches
    only = SseReader(f"{url}?state=FAIL&job=ol_failing_retry", last_event_id=seen[0][0])
    wait_until(lambda: len(only.items) >= 3, 30, "filtered items")
    only.close()
    assert all(d["state"] == "FAIL" and d["job"] == "ol_failing_retry" for _, _, d in only.items)

    with httpx.Client(base_url=stack.api_url, auth=(USER, PASSWORD), timeout=10) as api:
        listed = api.get("/api/v1/alerts", params={"limit": 2})
        assert listed.status_code == 200
        walked, cursor = listed.json()["alerts"], listed.json()["nextCursor"]
        while cursor:
            page = api.get("/api/v1/alerts", params={"limit": 2, "cursor": cursor}).json()
            walked += page["alerts"]
            cursor = page["nextCursor"]
        assert len(walked) == 6 and len({a["alertId"] for a in walked}) == 6
        assert [a["raisedAt"] for a in walked] == sorted(
            (a["raisedAt"] for a in walked), reverse=True
        )
        critical = api.get("/api/v1/alerts", params={"severity": "critical"}).json()["alerts"]
        assert len(critical) == 4 and all(a["kind"] == "failed" for a in critical)
        assert critical[0]["runUrl"].startswith("http://127.0.0.1:")
        assert api.get("/api/v1/alerts", params={"severity": "loud"}).status_code == 400


def test_clients_reconnect_across_an_api_restart_and_miss_nothing(
    running: Stack, tmp_path: Path
) -> None:
    stack = running
    url = f"{stack.api_url}/api/v1/stream"
    client = SseReader(url, reconnect=True)
    assert stack.send(write_copy(tmp_path, 3)).returncode == 0
    wait_until(lambda: len(client.items) >= 10, 60, "the first changes")
    api = next(p for p in stack.spawned if p.name == "api")
    api.stop()  # the API goes away while the client streams ...
    assert stack.send(write_copy(tmp_path, 4)).returncode == 0  # ... and changes go on
    time.sleep(2)
    stack.start_api()
    wait_until(lambda: sum(1 for i in client.items if i[1] == "alert") == 6, 60, "both days")
    client.close()
    assert client.connections >= 2
    everything = asyncio.run(live_topic_items(stack))
    start = [i[0] for i in everything].index(client.items[0][0])
    assert client.items == everything[start:]  # nothing lost, nothing twice


@needs_chromium
def test_the_board_shows_a_new_failure_without_reloading(running: Stack, tmp_path: Path) -> None:
    stack = running
    assert stack.send(SAMPLES).returncode == 0
    wait_until(
        lambda: (
            httpx.get(f"{stack.api_url}/api/v1/alerts", auth=(USER, PASSWORD), timeout=10).json()[
                "count"
            ]
            == 3
        ),
        60,
        "the samples' alerts",
    )
    with board_page((USER, PASSWORD)) as page:
        page.goto(stack.api_url + "/")
        page.wait_for_selector("#live:has-text('live')", timeout=20_000)
        # the lineage view's layout library came through the same credentials as the page
        assert page.evaluate("typeof dagre.layout") == "function"
        before = page.locator("#failures tr").count()
        assert before == 3  # the samples: two failed tries of a task, and its DAG run
        assert page.locator("#alerts tr.alert").count() == 3

        new_day = write_copy(tmp_path, 7)  # the same DAGs again: two more failures, live
        assert stack.send(new_day).returncode == 0
        page.wait_for_function(
            "document.querySelectorAll('#failures tr').length === 6", timeout=30_000
        )
        page.wait_for_function(
            "document.querySelectorAll('#alerts tr.alert').length === 6", timeout=30_000
        )
        assert "intentional failure" in page.locator("#failures").inner_text()

        # one incident: the task's final try paged, its DAG run joined it, and the next day's
        # failures of the same jobs joined it too (it is still open): no second page
        page.wait_for_function(
            "document.querySelector('#incidents').innerText.includes('+ 3 joined')",
            timeout=30_000,
        )  # (a retried try's notice is no incident)
        assert page.locator("#incidents tr.incident").count() == 1
        assert "open" in page.locator("#incidents tr.incident").inner_text()
        # long errors are folded to their first line
        folded = page.locator("#alerts details.err")
        assert folded.count() == 4 and folded.first.get_attribute("open") is None
        assert "Traceback" not in page.locator("#alerts").inner_text()
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "board.png"), full_page=True)
        folded.first.locator("summary").click()
        assert "Traceback" in page.locator("#alerts").inner_text()

        # the runId search opens a run: its child runs drawn over time, then listed
        dag_run = orjson.loads(new_day.read_bytes().splitlines()[6])["run"]["runId"]
        page.fill("#q", dag_run)
        page.press("#q", "Enter")
        page.wait_for_selector("#children tr", timeout=20_000)
        bars = page.locator("#child-timeline rect.bar")
        assert bars.count() == 3  # ok_before, always_fails try 1 (retried), try 2
        assert page.locator("#child-timeline rect.bar.retried").count() == 1
        assert page.locator("#child-timeline rect.bar.FAIL").count() == 2
        labels = page.locator("#child-timeline text").all_text_contents()
        assert [t for t in labels if "try" in t][-2:] == [
            "ol_failing_retry.always_fails (try 1)",
            "ol_failing_retry.always_fails (try 2)",
        ]  # by start: the first try above the second
        assert page.locator("#timeline tr").count() == 2  # START, FAIL
        assert "child runs" in page.locator("#view").inner_text().lower()
        page.wait_for_selector("#impact:has-text('nothing known downstream')", timeout=20_000)
        page.locator("#view").screenshot(path=str(ARTIFACTS / "board-run-timeline.png"))

        # a bar opens its run; the job link opens the job's history chart
        bars.nth(2).click()
        page.wait_for_selector("#view h2:has-text('ol_failing_retry.always_fails')")
        page.locator("#view h2 a.job").click()
        page.wait_for_selector("#job-chart", timeout=20_000)
        assert page.locator("#job-chart rect.bar").count() == 4  # 2 days x 2 tries
        assert page.locator("#job-chart rect.bar.retried").count() == 2
        summary = page.locator("#job-summary").inner_text()
        assert "2 runs" in summary and "success rate 0 %" in summary, summary
        assert "2 retried tries not counted" in summary
        page.locator("#view").screenshot(path=str(ARTIFACTS / "board-job-chart.png"))
        # each view is a page of its own, at the top: the overview is gone while it shows, and
        # the browser's back button walks back through the views to the overview
        assert page.locator("#overview").is_hidden() and page.evaluate("window.scrollY") == 0
        page.go_back()
        page.wait_for_selector("#view h2:has-text('ol_failing_retry.always_fails')")
        assert page.locator("#job-chart").count() == 0
        page.go_back()
        page.wait_for_selector("#children tr", timeout=20_000)  # the DAG run again
        page.go_back()
        page.wait_for_selector("#overview", state="visible")
        assert page.locator("#page").is_hidden() and page.title() == "lineage-faust · runs"

        # an incident: what paged, then what followed; acknowledged, then resolved by hand
        page.locator("#incidents tr.incident:has-text('+ 3 joined') a").first.click()
        page.wait_for_selector("#incident-page:has-text('failed')", timeout=20_000)
        assert "always_fails" in page.locator("#incident-page").inner_text()
        follow_ups = page.locator("#incident-follow-ups tr")
        assert follow_ups.count() == 3
        assert "ol_failing_retry" in page.locator("#incident-follow-ups").inner_text()
        assert page.locator("#view h2 .state.open").count() == 1
        page.locator("#view").screenshot(path=str(ARTIFACTS / "board-incident.png"))
        page.fill("#incident-note", "looking at the task's logs")
        page.click("#acknowledge")
        page.wait_for_selector("#view h2 .state.acknowledged", timeout=20_000)
        changes = page.locator("#incident-changes").inner_text()
        assert USER in changes and "looking at the task's logs" in changes
        assert page.locator("#acknowledge").count() == 0  # acknowledged once
        page.locator("#view").screenshot(path=str(ARTIFACTS / "board-incident-acknowledged.png"))
        page.fill("#incident-note", "the source file is back")
        page.click("#resolve")
        page.wait_for_selector("#view h2 .state.resolved", timeout=20_000)
        assert page.locator("#incident-actions").count() == 0
        assert "resolved after" in page.locator("#incident-times").inner_text()
        page.locator("#view").screenshot(path=str(ARTIFACTS / "board-incident-resolved.png"))
        # the overview follows: the incident resolved, its job in the time-to-resolve table
        page.click("#to-overview")
        page.wait_for_selector("#incidents tr.incident .state.resolved", timeout=20_000)
        ttr = page.locator("#ttr tr.ttr")
        assert ttr.count() == 1 and "ol_failing_retry" in ttr.inner_text()
        assert "1 incidents" in page.locator("#ttr-total").inner_text()
        page.screenshot(path=str(ARTIFACTS / "board-time-to-resolve.png"), full_page=True)
        # the job page shows its incidents on a time axis
        ttr.locator("a.job").click()
        page.wait_for_selector("#job-incident-strip rect.incident.resolved", timeout=20_000)
        assert "1 incidents" in page.locator("#job-incidents").inner_text()
        page.locator("#view").screenshot(path=str(ARTIFACTS / "board-job-incidents.png"))
    for shot in (
        "board.png",
        "board-run-timeline.png",
        "board-job-chart.png",
        "board-incident-acknowledged.png",
        "board-incident-resolved.png",
        "board-time-to-resolve.png",
    ):
        assert (ARTIFACTS / shot).stat().st_size > 10_000, shot
    assert (ARTIFACTS / "board.png").stat().st_size > 10_000


def test_the_board_ships_inside_the_package(tmp_path: Path) -> None:
    """A plain ``pip install`` gets the board (package data, not a checkout-only file)."""
    import subprocess
    import sys
    import zipfile

    root = Path(__file__).parents[2]
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            str(root),
            "--no-deps",
            "-q",
            "-w",
            str(tmp_path),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = tmp_path.glob("lineage_faust-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        board = archive.read("api/static/board.html").decode()
        layout = archive.read("api/static/vendor/dagre.min.js")
        licence = archive.read("api/static/vendor/dagre.LICENSE").decode()
    assert 'EventSource("/api/v1/stream")' in board
    assert '<script src="/board/vendor/dagre.min.js">' in board
    assert layout == (root / "api/static/vendor/dagre.min.js").read_bytes()
    assert "Permission is hereby granted" in licence  # MIT: its notice ships with it


def test_a_client_leaving_mid_replay_stops_the_stream_quietly(stack: Stack) -> None:
    """`curl .../stream | head -c 100` used to cost one warning per remaining event."""
    import socket

    from aiokafka import AIOKafkaProducer

    stack.extra_env["LINEAGE_LOG_LEVEL"] = "DEBUG"
    api = stack.start_api()

    async def fill() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=stack.bootstrap)
        await producer.start()
        try:
            for i in range(3000):
                changes = [
                    {"runId": f"run-{i}-{j}", "namespace": "ns", "job": "j" * 200, "state": "OK"}
                    for j in range(5)
                ]
                message = orjson.dumps({"changes": changes})
                await producer.send(f"{stack.topic}.live", message, partition=0)
            await producer.flush()
        finally:
            await producer.stop()

    asyncio.run(fill())
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # the replay cannot all fit
        sock.connect(("127.0.0.1", stack.api_port))
        sock.sendall(
            b"GET /api/v1/stream?lastEventId=0-0 HTTP/1.1\r\nHost: x\r\n"
            b"Accept: text/event-stream\r\n\r\n"
        )
        received = b""
        while b"event: run" not in received:  # the replay has begun: leave, as head -c does
            received += sock.recv(100)
        assert b"200 OK" in received
    wait_until(lambda: "the client went away" in api.log(), 15, "the stream to notice")
    time.sleep(1)
    log = api.log()
    assert "socket.send() raised exception" not in log, log[-2000:]
    assert log.count("the client went away") == 1
    assert api.alive()
