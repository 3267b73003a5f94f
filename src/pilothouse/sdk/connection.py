"""How the SDK talks to the registry: one connection pool for fetches, one for the
long-lived event stream, sharing one TLS context (building one costs ~100 ms)."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import quote

import httpx

STREAM_PATH = "/api/prompts/stream"
STREAM_READ_TIMEOUT = 45.0  # the server sends `: ping` every ~15 s


class RegistryConnection:
    def __init__(
        self,
        base_url: str,
        api_key: str | None,
        timeout_seconds: float,
        *,
        tls: ssl.SSLContext | None = None,
    ):
        self.base_url = base_url
        self._api_key = api_key
        self._timeout_seconds = timeout_seconds
        self._tls = tls or _tls_context(base_url)
        headers = {"User-Agent": "pilothouse-sdk"}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        self._http = httpx.Client(
            base_url=base_url, headers=headers, timeout=timeout_seconds, verify=self._tls
        )
        self._stream_http = httpx.Client(
            base_url=base_url,
            headers=headers,
            timeout=httpx.Timeout(timeout_seconds, read=STREAM_READ_TIMEOUT),
            verify=self._tls,
        )

    def reopened(self) -> RegistryConnection:
        """The same registry over new pools: for a forked child, whose inherited sockets
        are the parent's. The old pools are dropped, not closed: closing would shut
        sockets the parent is still using."""
        return RegistryConnection(
            self.base_url, self._api_key, self._timeout_seconds, tls=self._tls
        )

    def get_prompt(
        self, name: str, label: str | None, version: int | None, etag: str | None
    ) -> httpx.Response:
        params = {"version": str(version)} if version is not None else {"label": str(label)}
        headers = {"If-None-Match": etag} if etag else {}
        return self._http.get(
            f"/api/prompts/{quote(name, safe='')}", params=params, headers=headers
        )

    @contextmanager
    def event_stream(self, last_event_id: str | None) -> Iterator[httpx.Response]:
        headers = {"Accept": "text/event-stream", "Cache-Control": "no-cache"}
        if last_event_id is not None:
            headers["Last-Event-ID"] = last_event_id
        with self._stream_http.stream("GET", STREAM_PATH, headers=headers) as response:
            yield response

    def close(self) -> None:
        self._http.close()
        self._stream_http.close()


def payload_of(response: httpx.Response) -> tuple[dict[str, Any], str | None]:
    """A prompt answer's JSON object and ETag; ValueError when it is not an object."""
    payload = response.json()
    if not isinstance(payload, dict):
        raise ValueError("the registry answered with something other than a JSON object")
    return payload, response.headers.get("etag")


def error_text(response: httpx.Response) -> str:
    """The registry's error, as `type: message` (or the start of the body)."""
    try:
        error = response.json()["error"]
        return f"{error.get('type', 'error')}: {error.get('message', '')}"
    except Exception:
        return response.text[:200]


def _tls_context(base_url: str) -> ssl.SSLContext:
    """A plain-http registry gets a context with no CA loaded: never used, and it could
    verify nothing."""
    if base_url.lower().startswith("https:"):
        return httpx.create_ssl_context()
    return ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
