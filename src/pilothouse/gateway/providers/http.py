"""The pooled upstream HTTP client every adapter uses, and how its failures are classified."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any, NoReturn

import aiohttp
import orjson

from pilothouse.gateway.providers.base import ErrorClass, UpstreamError


class UpstreamClient:
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
        self._timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=connect_timeout_seconds, sock_read=timeout_seconds
        )
        self._max_connections = max_connections
        self._headers = dict(headers)
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

    async def post(self, url: str, payload: dict[str, Any]) -> aiohttp.ClientResponse:
        """POST JSON; return the response with headers read, body not yet read."""
        try:
            return await self.session.post(url, data=orjson.dumps(payload))
        except BaseException as exc:
            self.raise_classified(exc)

    async def read(self, response: aiohttp.ClientResponse) -> bytes:
        try:
            return await response.read()
        except BaseException as exc:
            self.raise_classified(exc)
        finally:
            response.release()

    def raise_classified(self, exc: BaseException) -> NoReturn:
        """Re-raise a transport failure as an UpstreamError; pass cancellation through."""
        if isinstance(exc, asyncio.CancelledError | UpstreamError):
            raise exc
        if isinstance(exc, asyncio.TimeoutError):
            raise UpstreamError(
                ErrorClass.TIMEOUT,
                f"provider {self.provider!r} did not answer within {self._timeout.sock_read:g} s",
                provider=self.provider,
            ) from exc
        if isinstance(exc, aiohttp.ClientConnectorError):
            raise UpstreamError(
                ErrorClass.CONNECT,
                f"cannot connect to provider {self.provider!r}: {exc.os_error}",
                provider=self.provider,
            ) from exc
        if isinstance(exc, aiohttp.ClientPayloadError | aiohttp.ServerDisconnectedError):
            raise UpstreamError(
                ErrorClass.TRUNCATED,
                f"provider {self.provider!r} closed the connection mid-response",
                provider=self.provider,
            ) from exc
        if isinstance(exc, aiohttp.ClientError):
            raise UpstreamError(
                ErrorClass.CONNECT,
                f"provider {self.provider!r} request failed: {exc}",
                provider=self.provider,
            ) from exc
        raise exc

    def raise_for_status(self, status: int, body: bytes, headers: Mapping[str, str]) -> NoReturn:
        """Turn a non-2xx upstream answer into the error the client should see."""
        detail = _error_message(body) or f"HTTP {status}"
        name = self.provider
        if status == 429:
            raise UpstreamError(
                ErrorClass.RATE_LIMITED,
                f"provider {name!r} is rate limiting: {detail}",
                provider=name,
                retry_after=headers.get("Retry-After") or headers.get("retry-after"),
                upstream_status=status,
            )
        if status >= 500:
            raise UpstreamError(
                ErrorClass.UPSTREAM_5XX,
                f"provider {name!r} failed with HTTP {status}: {detail}",
                provider=name,
                upstream_status=status,
            )
        if status in (400, 413, 422):
            raise UpstreamError(
                ErrorClass.UPSTREAM_4XX,
                f"provider {name!r} rejected the request: {detail}",
                provider=name,
                status=status,
                upstream_status=status,
            )
        # 401/403/404 from the provider are our configuration's fault, not the client's.
        raise UpstreamError(
            ErrorClass.UPSTREAM_4XX,
            f"provider {name!r} answered HTTP {status}: {detail} (check the provider's "
            "key and model id in the Pilothouse config)",
            provider=name,
            status=502,
            upstream_status=status,
        )

    def malformed(self, why: str) -> UpstreamError:
        """The error for a 2xx answer that is not what the provider's API promises."""
        return UpstreamError(
            ErrorClass.MALFORMED,
            f"provider {self.provider!r} sent a malformed answer: {why}",
            provider=self.provider,
        )

    def json_object(self, raw: bytes) -> dict[str, Any]:
        """Parse a body that must be a JSON object, or raise `malformed`."""
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise self.malformed(f"the body is not valid JSON ({exc})") from None
        if not isinstance(data, dict):
            raise self.malformed("the body is not a JSON object")
        return data

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def _error_message(body: bytes) -> str | None:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        text = body[:200].decode("utf-8", "replace").strip()
        return text or None
    error = data.get("error") if isinstance(data, dict) else None
    if isinstance(error, dict):
        return str(error.get("message") or error)
    if isinstance(error, str):
        return error
    return None


class HttpProvider:
    """What every adapter over HTTP shares: its name and one pooled upstream client."""

    def __init__(
        self,
        name: str,
        *,
        headers: Mapping[str, str],
        timeout_seconds: float,
        connect_timeout_seconds: float,
        max_connections: int,
    ):
        self.name = name
        self.http = UpstreamClient(
            name,
            timeout_seconds=timeout_seconds,
            connect_timeout_seconds=connect_timeout_seconds,
            max_connections=max_connections,
            headers={"Content-Type": "application/json", **headers},
        )

    async def close(self) -> None:
        await self.http.close()
