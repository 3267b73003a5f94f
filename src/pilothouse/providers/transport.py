"""How bytes reach a provider: one pooled keep-alive client per provider, and the one place
where low-level failures become failure classes.

`Transport` is the narrow interface (`post` → `UpstreamResponse`); `HttpTransport` is the
real one over aiohttp. Tests swap in a scripted transport, so everything above it (codecs,
the stream loop, the gateway) runs for real.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from typing import Any, NoReturn, Protocol

import aiohttp
import orjson

from pilothouse.providers.types import ErrorClass, UpstreamError


class UpstreamResponse(Protocol):
    """An upstream answer with its headers read and its body not yet."""

    status: int
    headers: Mapping[str, str]
    content_type: str

    async def read(self) -> bytes:
        """The whole body; releases the connection. Raises a classified UpstreamError."""
        ...

    def chunks(self) -> AsyncIterator[bytes]:
        """Body pieces as they arrive. Raises a classified UpstreamError mid-way."""
        ...

    def release(self) -> None: ...


class Transport(Protocol):
    provider: str

    async def post(self, url: str, payload: dict[str, Any]) -> UpstreamResponse: ...

    async def close(self) -> None: ...


class HttpTransport:
    """A keep-alive connection pool to one provider (created lazily inside the loop)."""

    def __init__(
        self,
        provider: str,
        *,
        timeout_seconds: float,
        connect_timeout_seconds: float,
        max_connections: int,
        headers: Mapping[str, str],
    ):
        self.provider = provider
        self.timeout_seconds = timeout_seconds
        self._timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=connect_timeout_seconds, sock_read=timeout_seconds
        )
        self._max_connections = max_connections
        self._headers = {"Content-Type": "application/json", **headers}
        self._session: aiohttp.ClientSession | None = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(
                limit=self._max_connections, ttl_dns_cache=300, keepalive_timeout=60
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                timeout=self._timeout,
                headers=self._headers,
                skip_auto_headers=("User-Agent",),
                auto_decompress=True,
            )
        return self._session

    async def post(self, url: str, payload: dict[str, Any]) -> UpstreamResponse:
        """POST JSON; return the response with headers read, body not yet read."""
        try:
            response = await self.session.post(url, data=orjson.dumps(payload))
        except BaseException as exc:
            classify(exc, self.provider, self.timeout_seconds)
        return _AiohttpResponse(response, self)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


class _AiohttpResponse:
    __slots__ = ("_response", "_transport", "content_type", "headers", "status")

    def __init__(self, response: aiohttp.ClientResponse, transport: HttpTransport):
        self._response = response
        self._transport = transport
        self.status = response.status
        self.headers: Mapping[str, str] = response.headers
        self.content_type = response.content_type

    async def read(self) -> bytes:
        try:
            return await self._response.read()
        except BaseException as exc:
            classify(exc, self._transport.provider, self._transport.timeout_seconds)
        finally:
            self._response.release()

    async def chunks(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._response.content.iter_any():
                yield chunk
        except (aiohttp.ClientError, TimeoutError) as exc:
            classify(exc, self._transport.provider, self._transport.timeout_seconds)

    def release(self) -> None:
        self._response.release()


def classify(exc: BaseException, provider: str, timeout_seconds: float) -> NoReturn:
    """Re-raise a transport failure as an UpstreamError; pass cancellation through."""
    if isinstance(exc, asyncio.CancelledError | UpstreamError):
        raise exc
    if isinstance(exc, asyncio.TimeoutError):
        raise UpstreamError(
            ErrorClass.TIMEOUT,
            f"provider {provider!r} did not answer within {timeout_seconds:g} s",
            provider=provider,
        ) from exc
    if isinstance(exc, aiohttp.ClientConnectorError):
        raise UpstreamError(
            ErrorClass.CONNECT,
            f"cannot connect to provider {provider!r}: {exc.os_error}",
            provider=provider,
        ) from exc
    if isinstance(exc, aiohttp.ClientPayloadError | aiohttp.ServerDisconnectedError):
        raise UpstreamError(
            ErrorClass.TRUNCATED,
            f"provider {provider!r} closed the connection mid-response",
            provider=provider,
        ) from exc
    if isinstance(exc, aiohttp.ClientError):
        raise UpstreamError(
            ErrorClass.CONNECT, f"provider {provider!r} request failed: {exc}", provider=provider
        ) from exc
    raise exc


def raise_for_status(
    provider: str, status: int, body: bytes, headers: Mapping[str, str]
) -> NoReturn:
    """Turn a non-2xx upstream answer into the error the client should see, keeping the
    provider's own error object (type, code, param, message) when it sent one."""
    upstream = _error_object(body)
    detail = (upstream or {}).get("message") or _text(body) or f"HTTP {status}"
    common: dict[str, Any] = {
        "provider": provider,
        "upstream_status": status,
        "upstream_error": upstream,
    }
    if status == 429:
        raise UpstreamError(
            ErrorClass.RATE_LIMITED,
            f"provider {provider!r} is rate limiting: {detail}",
            retry_after=headers.get("Retry-After") or headers.get("retry-after"),
            **common,
        )
    if status >= 500:
        raise UpstreamError(
            ErrorClass.UPSTREAM_5XX,
            f"provider {provider!r} failed with HTTP {status}: {detail}",
            **common,
        )
    if status in (400, 413, 422):
        raise UpstreamError(
            ErrorClass.UPSTREAM_4XX,
            f"provider {provider!r} rejected the request: {detail}",
            status=status,
            **common,
        )
    # 401/403/404 from the provider are our configuration's fault, not the client's.
    raise UpstreamError(
        ErrorClass.UPSTREAM_4XX,
        f"provider {provider!r} answered HTTP {status}: {detail} (check the provider's "
        "key and model id in the Pilothouse config)",
        status=502,
        **common,
    )


def malformed(provider: str, why: str) -> UpstreamError:
    """The error for a 2xx answer that is not what the provider's API promises."""
    return UpstreamError(
        ErrorClass.MALFORMED,
        f"provider {provider!r} sent a malformed answer: {why}",
        provider=provider,
    )


def json_object(provider: str, raw: bytes) -> dict[str, Any]:
    """Parse a body that must be a JSON object, or raise `malformed`."""
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise malformed(provider, f"the body is not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise malformed(provider, "the body is not a JSON object")
    return data


def _error_object(body: bytes) -> dict[str, Any] | None:
    """The provider's error as {type, code, param, message} (OpenAI's and Anthropic's
    shapes), keeping only scalar fields so nothing odd reaches the client."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    error = data.get("error") if isinstance(data, dict) else None
    if isinstance(error, str):
        return {"message": error[:2000]}
    if not isinstance(error, dict):
        return None
    out = {
        name: value if isinstance(value, int | float) else str(value)[:2000]
        for name in ("type", "code", "param", "message")
        if (value := error.get(name)) is not None and not isinstance(value, dict | list | bool)
    }
    return out or None


def _text(body: bytes) -> str | None:
    text = body[:200].decode("utf-8", "replace").strip()
    return text or None
