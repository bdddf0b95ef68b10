"""A webhook endpoint over real HTTP: what it accepted and when (the detect benchmark), and
optionally refusing each alert's first tries with a 500 (the alert tests)."""

from __future__ import annotations

import socket
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import orjson


class Receiver:
    def __init__(
        self,
        failures_per_alert: int = 0,
        answer_after_s: float = 0.0,
        failures_for: dict[str, int] | None = None,
    ) -> None:
        """``answer_after_s``: how long it takes to answer each request (a slow receiver);
        ``failures_for``: 5xx answers before taking a page, by alert id (else
        ``failures_per_alert``)."""
        self.failures = failures_per_alert
        self.failures_for = failures_for or {}
        self.answer_after_s = answer_after_s
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
                    failures = receiver.failures_for.get(alert_id, receiver.failures)
                    ok = receiver.tries[alert_id] > failures
                    if ok:
                        receiver.accepted.append(body)
                        receiver.arrived.setdefault(body.get("runId", ""), at)
                time.sleep(receiver.answer_after_s)
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


class HungReceiver:
    """A webhook that accepts every connection, reads the request and never answers: the
    receiver that is down in the worst way (no refusal, no timeout of its own)."""

    def __init__(self) -> None:
        self.connections: list[socket.socket] = []
        self.requests = 0
        self.lock = threading.Lock()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}/hook"
        self._stopped = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        self.listener.settimeout(0.2)
        while not self._stopped.is_set():
            try:
                conn, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with self.lock:
                self.connections.append(conn)
            threading.Thread(target=self._hold, args=(conn,), daemon=True).start()

    def _hold(self, conn: socket.socket) -> None:
        conn.settimeout(0.5)
        while not self._stopped.is_set():
            try:
                data = conn.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                return
            if not data:
                return
            if b"POST " in data:
                with self.lock:
                    self.requests += data.count(b"POST ")

    def __enter__(self) -> HungReceiver:
        return self

    def __exit__(self, *exc: object) -> None:
        self._stopped.set()
        self.listener.close()
        with self.lock:
            for conn in self.connections:
                conn.close()
