"""A real HTTP server on loopback playing the National Public Service Portal's sync
endpoint: it takes each change once per `Idempotency-Key` (a repeat is answered 200
and not taken again), and can be told to fail: the next N requests answered with a
status (taking the change first or not: a lost answer), a given change refused, or the
whole server down (stopped, then started again on the same port)."""

from __future__ import annotations

import json
import threading
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Planned:
    status: int
    take: bool = False  # take the change before answering (the answer is what gets lost)


@dataclass
class Request:
    key: str | None
    status: int
    authorization: str | None


@dataclass
class FakePortal:
    host: str = "127.0.0.1"
    port: int = 0
    token: str | None = None  # when set, other bearer tokens get 401
    taken: list[tuple[str, dict[str, Any]]] = field(default_factory=list)  # (Idempotency-Key, body), first time only
    requests: list[Request] = field(default_factory=list)  # every request, with its answer
    plan: deque[Planned] = field(default_factory=deque)
    refuse: dict[str, int] = field(default_factory=dict)  # Idempotency-Key -> a 4xx
    _server: ThreadingHTTPServer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/api/dongbo/hoso"

    def start(self) -> FakePortal:
        portal = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                status = portal.answer(self.headers.get("Idempotency-Key"), body, self.headers.get("Authorization"))
                payload = json.dumps({"status": status}).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer((self.host, self.port), Handler)
        self.port = self._server.server_address[1]  # the same port when started again
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def answer(self, key: str | None, body: bytes, authorization: str | None) -> int:
        with self._lock:
            status = self._answer(key, body, authorization)
            self.requests.append(Request(key, status, authorization))
            return status

    def _answer(self, key: str | None, body: bytes, authorization: str | None) -> int:
        if self.token is not None and authorization != f"Bearer {self.token}":
            return 401
        if key is None:
            return 400
        if key in self.refuse:
            return self.refuse[key]
        planned = self.plan.popleft() if self.plan else Planned(200, take=True)
        if planned.take and key not in self.keys():
            self.taken.append((key, json.loads(body)))
        return planned.status

    def keys(self) -> list[str]:
        return [key for key, _ in self.taken]

    def attempts(self, key: str) -> int:
        return sum(1 for request in self.requests if request.key == key)
