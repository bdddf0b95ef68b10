"""A webhook endpoint over real HTTP, for the alert tests."""

from __future__ import annotations

import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import orjson


class Receiver:
    """A webhook endpoint that answers 500 to the first two tries of every alert."""

    def __init__(self, failures_per_alert: int = 2) -> None:
        self.failures = failures_per_alert
        self.tries: Counter[str] = Counter()
        self.accepted: list[dict] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = orjson.loads(self.rfile.read(int(self.headers["Content-Length"])))
                alert_id = self.headers["X-Lineage-Alert-Id"]
                with receiver.lock:
                    receiver.tries[alert_id] += 1
                    ok = receiver.tries[alert_id] > receiver.failures
                    if ok:
                        receiver.accepted.append(body)
                self.send_response(200 if ok else 500)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def accepted_ids(self) -> list[str]:
        with self.lock:
            return [a["alertId"] for a in self.accepted]
