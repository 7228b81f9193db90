"""What the fakes of HTTP providers share (`fake_zns`, `fake_esms`): a real HTTP server in a
thread on 127.0.0.1 that answers JSON (to a POST's JSON or form body, or a GET's query), and the
faults a provider shows: it hangs past a client's timeout (`hang`, until `release`), answers 5xx
(`fail_with`), or is down (`stop`). Every request is kept (`requests`); `changed` wakes a waiter
when one arrives."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl

from service.prefect_server import free_port

HANG_BOUND = 60.0  # a hung request is answered after this at the latest, so no thread outlives a test


class FakeHttpProvider:
    name = "fake-provider"

    def __init__(self) -> None:
        self.port = free_port()
        self.requests: list[tuple[str, dict[str, str], dict[str, Any]]] = []  # path, headers, body
        self.failing: int | None = None
        self._hanging = threading.Event()
        self._released = threading.Event()
        self.lock = threading.Lock()
        self.changed = threading.Condition(self.lock)
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def root(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def route(self, path: str, headers: dict[str, str], body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        raise NotImplementedError  # pragma: no cover

    def failure_answer(self, status: int) -> dict[str, Any]:
        """What the provider answers with a 5xx (`fail_with`), in its own shape."""
        return {"error": -100, "message": "Internal Server Error"}

    def bad_body_answer(self) -> dict[str, Any]:
        """What the provider answers (400) to a body that is not a JSON object."""
        return {"error": -100, "message": "Bad request body"}

    # -- faults ------------------------------------------------------------------------------

    def hang(self) -> None:
        """Hold every request unanswered until `release`."""
        self._released.clear()
        self._hanging.set()

    def release(self) -> None:
        self._hanging.clear()
        self._released.set()

    def fail_with(self, status: int | None = 503) -> None:
        """Answer every request with this status (None: answer normally again)."""
        self.failing = status

    def go_down(self) -> None:
        """Nothing listens on the port any more: connections are refused."""
        self.stop()

    def come_back(self) -> None:
        self.start()

    def wait_for_requests(self, count: int, timeout: float = 30.0) -> None:
        with self.changed:
            if not self.changed.wait_for(lambda: len(self.requests) >= count, timeout=timeout):
                raise AssertionError(f"{self.name}: {len(self.requests)} request(s), not {count}, within {timeout} s")

    # -- the server --------------------------------------------------------------------------

    def start(self) -> None:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:  # quiet
                pass

            def do_GET(self) -> None:  # a GET's query is its body
                path, _, query = self.path.partition("?")
                headers = {key.lower(): value for key, value in self.headers.items()}
                self._reply(*fake._answer(path, headers, dict(parse_qsl(query))))

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                headers = {key.lower(): value for key, value in self.headers.items()}
                if headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
                    body: Any = dict(parse_qsl(raw.decode()))
                else:
                    try:
                        body = json.loads(raw or b"{}")
                    except ValueError:
                        body = None
                self._reply(*fake._answer(self.path, headers, body if isinstance(body, dict) else None))

            def _reply(self, status: int, answer: dict[str, Any]) -> None:
                data = json.dumps(answer).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up waiting
                    pass

        server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        server.daemon_threads = True
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, args=(0.05,), name=self.name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self.release()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def _answer(self, path: str, headers: dict[str, str], body: dict[str, Any] | None) -> tuple[int, dict[str, Any]]:
        with self.changed:
            self.requests.append((path, headers, body or {}))
            self.changed.notify_all()
        if self._hanging.is_set():
            self._released.wait(HANG_BOUND)
        if self.failing is not None:
            return self.failing, self.failure_answer(self.failing)
        if body is None:
            return 400, self.bad_body_answer()
        return self.route(path, headers, body)
