"""A webhook endpoint over real HTTP: what it accepted and when (the detect benchmark), and
optionally refusing each alert's first tries with a 500 (the alert tests)."""

from __future__ import annotations

import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import orjson


class Receiver:
    def __init__(self, failures_per_alert: int = 0) -> None:
        self.failures = failures_per_alert
        self.tries: Counter[str] = Counter()
        self.accepted: list[dict] = []
        self.arrived: dict[str, float] = {}  # run id -> when its first alert was accepted
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = orjson.loads(self.rfile.read(int(self.headers["Content-Length"])))
                at = time.perf_counter()
                alert_id = self.headers["X-Lineage-Alert-Id"]
                with receiver.lock:
                    receiver.tries[alert_id] += 1
                    ok = receiver.tries[alert_id] > receiver.failures
                    if ok:
                        receiver.accepted.append(body)
                        receiver.arrived.setdefault(body.get("runId", ""), at)
                self.send_response(200 if ok else 500)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def __enter__(self) -> Receiver:
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()

    def accepted_ids(self) -> list[str]:
        with self.lock:
            return [a["alertId"] for a in self.accepted]
