"""The eval's calls to the gateway, through a response cache.

Every call is keyed by its canonical request (plus the repeat index), and every answer is
recorded under that key. A replay reads the record of an earlier run instead of calling
anyone, so the same manifest re-scores to the same numbers; a key the record lacks is a
`ReplayMiss` (the suite, dataset or target changed since).
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Sequence
from typing import Any

import aiohttp
import orjson

from pilothouse.evals.types import Output

TRANSIENT = {408, 409, 429, 500, 502, 503, 504}


class ReplayMiss(RuntimeError):
    """Replay asked for a call the recorded run never made."""


class CallFailed(RuntimeError):
    """A call that is not worth retrying (or failed every retry); the message says why."""


class _Reply:
    """A read HTTP response: status, lower-cased headers, body."""

    def __init__(self, status_code: int, headers: dict[str, str], body: bytes):
        self.status_code = status_code
        self.headers = headers
        self.body = body

    def json(self) -> Any:
        return orjson.loads(self.body)

    @property
    def text(self) -> str:
        return self.body.decode(errors="replace")


def request_key(kind: str, body: dict[str, Any], headers: dict[str, str], repeat: int) -> str:
    canonical = {"kind": kind, "body": body, "headers": headers, "repeat": repeat}
    return hashlib.sha256(orjson.dumps(canonical, option=orjson.OPT_SORT_KEYS)).hexdigest()


class GatewayCalls:
    """Chat, embedding and judge calls for one run, cached and optionally replayed."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        concurrency: int,
        recorded: dict[str, Any] | None = None,
        timeout_seconds: float = 120.0,
        retries: int = 3,
    ):
        self.offline = recorded is not None
        self.cache: dict[str, Any] = dict(recorded or {})
        self.calls_made = 0
        self.retries_made = 0
        self._retries = retries
        # aiohttp (as the gateway's upstream pool): httpx's pool costs O(pool size) CPU per
        # request, which at concurrency 50 is most of the runner's time.
        self._base_url = base_url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {api_key}"}
        self._timeout = aiohttp.ClientTimeout(total=timeout_seconds)
        self._limit = concurrency * 2
        self._session: aiohttp.ClientSession | None = None  # made inside the running loop

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def _request(self, path: str, body: dict[str, Any], headers: dict[str, str]) -> _Reply:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._limit),
                headers=self._headers,
                timeout=self._timeout,
            )
        async with self._session.post(
            self._base_url + path,
            data=orjson.dumps(body),
            headers={"content-type": "application/json", **headers},
        ) as response:
            return _Reply(
                response.status,
                {k.lower(): v for k, v in response.headers.items()},
                await response.read(),
            )

    async def chat(self, body: dict[str, Any], headers: dict[str, str], repeat: int) -> Output:
        key = request_key("chat", body, headers, repeat)
        record = await self._cached(key, lambda: self._post_chat(body, headers))
        return Output(**record["output"])

    async def chat_headers(
        self, body: dict[str, Any], headers: dict[str, str], repeat: int
    ) -> dict[str, str]:
        """The recorded response headers of a chat call made through `chat` first."""
        return dict(self.cache[request_key("chat", body, headers, repeat)].get("headers", {}))

    async def embed(self, model: str, texts: Sequence[str]) -> list[list[float]]:
        body = {"model": model, "input": list(texts)}
        record = await self._cached(
            request_key("embed", body, {}, 0), lambda: self._post_embed(body)
        )
        return [list(map(float, v)) for v in record["vectors"]]

    async def judge(
        self, model: str, params: dict[str, Any], messages: list[dict[str, Any]]
    ) -> tuple[str, str | None]:
        """The judge's reply text and the provider model that answered."""
        body = {"model": model, "messages": messages, **params}
        record = await self._cached(
            request_key("judge", body, {}, 0), lambda: self._post_chat(body, {})
        )
        output = record["output"]
        if output.get("error"):
            raise CallFailed(f"judge call failed: {output['error']}")
        return output.get("text") or "", output.get("model")

    async def _cached(self, key: str, call: Any) -> dict[str, Any]:
        if key in self.cache:
            return self.cache[key]
        if self.offline:
            raise ReplayMiss(
                "the recorded run has no answer for a call this run makes: the suite, dataset, "
                "prompt or target changed since, so it cannot be replayed"
            )
        record = await call()
        self.cache[key] = record
        return record

    async def _post(self, path: str, body: dict[str, Any], headers: dict[str, str]) -> _Reply:
        delay = 0.5
        for attempt in range(self._retries + 1):
            self.calls_made += 1
            try:
                response = await self._request(path, body, headers)
            except (TimeoutError, aiohttp.ClientError) as exc:
                if attempt == self._retries:
                    raise CallFailed(f"{type(exc).__name__}: {exc}") from None
            else:
                if response.status_code not in TRANSIENT or attempt == self._retries:
                    return response
                retry_after = response.headers.get("retry-after", "")
                delay = (
                    max(delay, float(retry_after))
                    if retry_after.replace(".", "", 1).isdigit()
                    else delay
                )
            self.retries_made += 1
            await asyncio.sleep(min(delay, 30.0))
            delay *= 2
        raise AssertionError("unreachable")

    async def _post_chat(self, body: dict[str, Any], headers: dict[str, str]) -> dict[str, Any]:
        started = time.perf_counter()
        try:
            response = await self._post("/v1/chat/completions", body, headers)
        except CallFailed as exc:
            return {"output": {"text": None, "error": str(exc)}, "headers": {}}
        latency_ms = (time.perf_counter() - started) * 1000
        if response.status_code != 200:
            detail = _error_message(response)
            return {
                "output": {
                    "text": None,
                    "error": f"HTTP {response.status_code}: {detail}",
                    "latency_ms": latency_ms,
                },
                "headers": {},
            }
        data = response.json()
        choice = (data.get("choices") or [{}])[0]
        message = choice.get("message") or {}
        usage = data.get("usage") or {}
        kept = {k: v for k, v in response.headers.items() if k.startswith("x-pilothouse-")}
        return {
            "output": {
                "text": message.get("content"),
                "tool_calls": message.get("tool_calls"),
                "finish_reason": choice.get("finish_reason"),
                "latency_ms": latency_ms,
                "prompt_tokens": int(usage.get("prompt_tokens") or 0),
                "completion_tokens": int(usage.get("completion_tokens") or 0),
                "model": data.get("model"),
                "cost_usd": float(response.headers["x-pilothouse-cost-usd"])
                if "x-pilothouse-cost-usd" in response.headers
                else None,
            },
            "headers": kept,
        }

    async def _post_embed(self, body: dict[str, Any]) -> dict[str, Any]:
        response = await self._post("/v1/embeddings", body, {})
        if response.status_code != 200:
            raise CallFailed(
                f"embeddings failed: HTTP {response.status_code}: {_error_message(response)}"
            )
        return {"vectors": [item["embedding"] for item in response.json()["data"]]}


def _error_message(response: _Reply) -> str:
    try:
        error = response.json().get("error")
        return str(error.get("message") if isinstance(error, dict) else error)
    except ValueError:
        return response.text[:200]
