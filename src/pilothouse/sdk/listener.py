"""Keeping the SDK's cache fresh: two daemon threads per client.

- **stream** follows `GET /api/prompts/stream` (Server-Sent Events) and hands each
  `prompt` event to the cache; when the stream drops it polls once at once, then
  reconnects with jittered exponential backoff and `Last-Event-ID`.
- **poll** is the backstop: while the stream is down it revalidates every cached entry
  every `poll_interval` seconds. A thread of its own, so that a stream connection that
  hangs cannot hold it up.
"""

from __future__ import annotations

import contextlib
import json
import logging
import random
import socket
import threading
import time
from collections.abc import Mapping, Sized
from typing import Any, Protocol

from pilothouse.sdk.connection import RegistryConnection
from pilothouse.sdk.sse import SSEParser

log = logging.getLogger("pilothouse.sdk")

BACKOFF_MIN = 0.2
BACKOFF_MAX = 5.0
STABLE_CONNECTION = 5.0  # a stream that stayed up this long resets the backoff


class StreamRefused(Exception):
    """The registry answered the stream request with something other than 200."""


class Cache(Protocol):
    """What the listener keeps fresh (the SDK's core): its entries, and how to refresh."""

    registry: RegistryConnection
    stats: dict[str, int]

    @property
    def entries(self) -> Sized: ...

    def refresh_all(self, *, only_unconfirmed: bool = False) -> None: ...

    def server_ok(self) -> None: ...

    def handle_event(self, data: Mapping[str, Any]) -> None: ...


class Listener:
    def __init__(self, core: Cache, poll_interval: float):
        self._core = core
        self._poll_interval = poll_interval
        self.connected = False
        self.last_event_id: str | None = None
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._socket: socket.socket | None = None

    def start(self) -> None:
        """Start both threads, once, as soon as there is something to keep fresh."""
        if self._threads or self._stop.is_set() or not self._core.entries:
            return
        with self._lock:
            if self._threads:
                return
            self._threads = [
                threading.Thread(target=target, name=f"pilothouse-prompts-{what}", daemon=True)
                for what, target in (("stream", self._run_stream), ("poll", self._run_poll))
            ]
            for thread in self._threads:
                thread.start()

    def close(self) -> None:
        self._stop.set()
        sock = self._socket
        if sock is not None:  # unblock a read that would otherwise wait for the next ping
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join(timeout=2)

    def _poll(self) -> None:
        self._core.stats["polls"] += 1
        try:
            self._core.refresh_all()
        except Exception:
            log.exception("pilothouse: prompt poll failed")

    def _run_poll(self) -> None:
        while not self._stop.wait(self._poll_interval):
            if not self.connected:
                self._poll()

    def _run_stream(self) -> None:
        backoff = BACKOFF_MIN
        while not self._stop.is_set():
            started = time.monotonic()
            connected = False
            try:
                connected = self._stream()
            except Exception as exc:
                if not self._stop.is_set():
                    self._core.stats["stream_errors"] += 1
                    log.debug("pilothouse: prompt stream: %s: %s", type(exc).__name__, exc)
            finally:
                self.connected = False
                self._socket = None
            if self._stop.is_set():
                break
            if connected:
                if time.monotonic() - started >= STABLE_CONNECTION:
                    backoff = BACKOFF_MIN
                self._poll()  # whatever the drop was, find out now
            self._stop.wait(random.uniform(backoff / 2, backoff))
            backoff = min(backoff * 2, BACKOFF_MAX)

    def _stream(self) -> bool:
        """Follow the event stream until it ends; True if it connected at all."""
        core = self._core
        resume = self.last_event_id
        with core.registry.event_stream(resume) as response:
            if response.status_code != 200:
                raise StreamRefused(f"stream: HTTP {response.status_code}")
            network = response.extensions.get("network_stream")
            if network is not None:
                self._socket = network.get_extra_info("socket")
            if self._stop.is_set():
                return True
            self.connected = True
            core.stats["stream_connects"] += 1
            core.server_ok()
            # Without a Last-Event-ID, events before this connection are not replayed:
            # revalidate everything. With one, they are; only copies from disk need checking.
            core.refresh_all(only_unconfirmed=resume is not None)
            parser = SSEParser()
            for line in response.iter_lines():
                if self._stop.is_set():
                    break
                event = parser.feed(line)
                if event is None:
                    continue
                if event.event == "prompt":
                    try:
                        data = json.loads(event.data)
                    except ValueError:
                        log.debug("pilothouse: ignoring a malformed event: %r", event.data[:200])
                    else:
                        if isinstance(data, dict):
                            core.handle_event(data)
                if event.id is not None:
                    self.last_event_id = event.id
        return True
