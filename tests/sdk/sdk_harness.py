"""Helpers for the SDK tests: a registry (a real `pilothouse serve` process) to write
prompts to, a fault-injecting HTTP proxy in front of it, and waiting for a condition."""

from __future__ import annotations

import contextlib
import json
import signal
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

from harness import Gateway, free_port, start_gateway

# The SDK tests need no upstream model: one provider pointing nowhere is a valid config.
CONFIG = """
providers:
  nowhere: {type: openai, base_url: 'http://127.0.0.1:9/v1'}
models:
  m: {provider: nowhere, model: m}
"""


class Registry:
    """A gateway process plus what the tests write to it. Restartable on the same port and
    database, so clients that know its URL find it again."""

    def __init__(self, data_dir: Path):
        self.data_dir = data_dir
        self.database_url = f"sqlite:///{data_dir / 'pilothouse.db'}"
        self.port = free_port()
        self.gateway: Gateway | None = start_gateway(
            CONFIG, self.database_url, data_dir, port=self.port
        )
        self.url = self.gateway.url
        self.key = self.gateway.create_key()

    @property
    def admin(self) -> httpx.Client:
        assert self.gateway is not None, "the registry is stopped"
        return self.gateway.admin

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """SIGKILL for an outage: a graceful stop waits for open event streams to end."""
        if self.gateway is not None:
            self.gateway.stop(sig)
            self.gateway = None

    def start(self) -> None:
        assert self.gateway is None
        self.gateway = start_gateway(CONFIG, self.database_url, self.data_dir, port=self.port)

    def chat(self, name: str, *contents: str, labels: tuple[str, ...] = (), **body: Any) -> int:
        """A chat prompt version (one user message per content); returns its number."""
        body.setdefault("variables", {})
        messages = [{"role": "user", "content": c} for c in contents]
        return self._create(name, {"messages": messages, **body}, labels)

    def fragment(self, name: str, text: str, labels: tuple[str, ...] = ()) -> int:
        return self._create(name, {"text": text}, labels)

    def _create(self, name: str, body: dict[str, Any], labels: tuple[str, ...]) -> int:
        response = self.admin.post(
            f"/api/prompts/{name}/versions", json={**body, "labels": list(labels)}
        )
        assert response.status_code in (200, 201), response.text
        return int(response.json()["version"])

    def move(self, name: str, label: str, version: int) -> None:
        response = self.admin.post(
            f"/api/prompts/{name}/labels/{label}", json={"version": version, "reason": "test"}
        )
        assert response.status_code == 200, response.text

    def delete_label(self, name: str, label: str) -> None:
        response = self.admin.delete(f"/api/prompts/{name}/labels/{label}")
        assert response.status_code == 200, response.text


def wait_for(condition: Callable[[], Any], timeout: float = 10, what: str = "condition") -> float:
    """Poll `condition` every 5 ms; returns the seconds it took. Fails after `timeout`."""
    start = time.monotonic()
    while not condition():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.005)
    return time.monotonic() - start


@dataclass(frozen=True)
class Seen:
    """A request the proxy received."""

    method: str
    path: str
    mode: str
    last_event_id: str | None


class FaultProxy:
    """An HTTP proxy in front of the registry that a test switches between modes:

    - "pass": forward everything (the event stream too, chunk by chunk);
    - "no_stream": forward everything except the event stream, which gets 503;
    - "error": answer every request with 500;
    - "down": accept and hang up without an answer;
    - "hang": accept and never answer (a black hole), until the mode changes.

    Switching mode cuts the streams it is forwarding, as a real outage would.
    """

    def __init__(self, upstream: str):
        self.upstream = upstream
        self.mode = "pass"
        self.requests: list[Seen] = []
        self._streams: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._http = httpx.Client(timeout=httpx.Timeout(5, read=None))
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()

    def set_mode(self, mode: str) -> None:
        assert mode in ("pass", "no_stream", "error", "down", "hang")
        self.mode = mode
        with self._lock:
            for sock in self._streams:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
            self._streams.clear()

    def close(self) -> None:
        self.set_mode("down")
        self._server.shutdown()
        self._server.server_close()
        self._http.close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                self._handle()

            def do_POST(self) -> None:
                self._handle()

            def do_DELETE(self) -> None:
                self._handle()

            def _answer(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _handle(self) -> None:
                mode = proxy.mode
                proxy.requests.append(
                    Seen(self.command, self.path, mode, self.headers.get("last-event-id"))
                )
                is_stream = self.path.startswith("/api/prompts/stream")
                if mode == "hang":
                    while proxy.mode == "hang":
                        time.sleep(0.02)
                    mode = "down"
                if mode == "down":
                    self.close_connection = True
                    return
                if mode == "error":
                    error = {"type": "server_error", "message": "injected by the test proxy"}
                    self._answer(500, {"error": error})
                    return
                if mode == "no_stream" and is_stream:
                    self._answer(503, {"error": {"type": "unavailable", "message": "no stream"}})
                    return
                cut: list[socket.socket] = []
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else None
                headers = {
                    k: v
                    for k, v in self.headers.items()
                    if k.lower() not in ("host", "connection", "content-length")
                }
                try:
                    with proxy._http.stream(
                        self.command, proxy.upstream + self.path, headers=headers, content=body
                    ) as upstream:
                        self.send_response(upstream.status_code)
                        for k, v in upstream.headers.items():
                            if k.lower() not in (
                                "transfer-encoding",
                                "connection",
                                "content-length",
                            ):
                                self.send_header(k, v)
                        self.send_header("connection", "close")
                        self.end_headers()
                        if is_stream:
                            network = upstream.extensions.get("network_stream")
                            cut = [self.connection, network.get_extra_info("socket")]
                            with proxy._lock:
                                proxy._streams.update(cut)
                        for chunk in upstream.iter_raw():
                            self.wfile.write(chunk)
                            self.wfile.flush()
                except (httpx.HTTPError, OSError):
                    pass
                finally:
                    self.close_connection = True
                    with proxy._lock:
                        proxy._streams.difference_update(cut)

        return Handler
