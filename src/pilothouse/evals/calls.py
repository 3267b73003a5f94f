"""The eval's calls to the gateway: marked as eval traffic, answered from a record when one
exists, bounded in concurrency, retried, and classified when they fail.

Every call is keyed by its canonical request: kind, body (model alias, messages,
parameters, seed), request headers, repeat index, and the model identity the gateway
resolved before the run (so re-pointing an alias is a different request). An answer is
looked up, in order, in the recorded run (`--replay`, `--rescore`), the journal of the run
being resumed (`--resume`) and the persistent cache (deterministic requests only); only
then is the gateway called. A replay never calls: a key the record lacks is a `ReplayMiss`.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Collection, Sequence
from typing import Any

import aiohttp
import orjson

from pilothouse.evals.cache import Journal, ResponseCache
from pilothouse.evals.types import Output

TRANSIENT = {408, 409, 429, 500, 502, 503, 504}
# The gateway refused this request itself for what it contains (context too long, a
# content rule): the case's failure, not the infrastructure's.
REFUSED = {400, 413, 422}
# The most one call sleeps between its retries. A gateway whose breaker stays open longer
# (Retry-After past this) fails the call now as infrastructure: `--resume` retries it later.
RETRY_WAIT_SECONDS = 30.0


class ReplayMiss(RuntimeError):
    """Replay asked for a call the recorded run never made."""


class CallFailed(RuntimeError):
    """A judge or embedding call that failed after retries; the message says why."""

    def __init__(self, message: str, *, infra: bool):
        super().__init__(message)
        self.infra = infra


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


def request_key(
    kind: str,
    body: dict[str, Any],
    headers: dict[str, str],
    repeat: int,
    identity: Any = None,
) -> str:
    canonical = {
        "kind": kind,
        "body": body,
        "headers": headers,
        "repeat": repeat,
        "identity": identity,
    }
    return hashlib.sha256(orjson.dumps(canonical, option=orjson.OPT_SORT_KEYS)).hexdigest()


def deterministic(params: dict[str, Any]) -> bool:
    """Whether a request with these parameters is worth caching: temperature 0 or a seed."""
    return params.get("temperature") == 0 or params.get("seed") is not None


class GatewayCalls:
    """Chat, judge and embedding calls for one run, answered from records when possible.

    `recorded`: answers of an earlier run; `offline_kinds` are the kinds that must come
    from it (all three for a replay, `chat` for a re-score). `resumed`: the journal
    records of the run being continued. `cache`: the persistent cache (None: off).
    `journal`: where this run appends every answer it gets from the gateway.
    """

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        concurrency: int,
        run_id: str = "",
        recorded: dict[str, Any] | None = None,
        offline_kinds: Collection[str] = (),
        resumed: dict[str, Any] | None = None,
        cache: ResponseCache | None = None,
        journal: Journal | None = None,
        timeout_seconds: float = 120.0,
        retries: int = 3,
        breaker_after: int | None = None,
    ):
        self.recorded = dict(recorded or {})
        self.offline_kinds = frozenset(offline_kinds)
        self.resumed = dict(resumed or {})
        self.cache = cache
        self.journal = journal
        self.used: dict[str, dict[str, Any]] = {}  # every answer this run relied on
        self.kind_of: dict[str, str] = {}  # key -> chat, judge or embed
        self.source_of: dict[str, str] = {}  # key -> hits, misses, uncached, replayed, resumed
        self.counts: Counter[str] = Counter()
        self.spent_usd: dict[str, float] = {}  # live calls of this run, by kind
        self.broken: str | None = None
        self._consecutive_infra = 0
        self._breaker_after = breaker_after or max(10, 2 * concurrency)
        self._retries = retries
        self._slots = asyncio.Semaphore(concurrency)
        # aiohttp (as the gateway's upstream pool): httpx's pool costs O(pool size) CPU per
        # request, which at concurrency 50 is most of the runner's time.
        self._base_url = base_url.rstrip("/")
        self._headers = {
            "Authorization": f"Bearer {api_key}",
            "X-Pilothouse-Source": "eval",
            "X-Pilothouse-Eval-Run": run_id,
        }
        self._timeout = aiohttp.ClientTimeout(total=timeout_seconds)
        self._limit = concurrency * 2
        self._session: aiohttp.ClientSession | None = None  # made inside the running loop

    @property
    def offline(self) -> bool:
        return bool(self.offline_kinds)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    # ------------------------------------------------------------------ the three kinds

    async def chat(
        self,
        body: dict[str, Any],
        headers: dict[str, str],
        repeat: int,
        *,
        identity: Any = None,
        cacheable: bool = True,
    ) -> tuple[Output, dict[str, str]]:
        """The target's answer for one case and repeat, and its `x-pilothouse-*` headers."""
        key = request_key("chat", body, headers, repeat, identity)
        record = await self._answer(
            "chat", key, cacheable, lambda: self._post_chat("chat", body, headers)
        )
        return Output(**record["output"]), dict(record.get("headers") or {})

    async def judge(
        self,
        model: str,
        params: dict[str, Any],
        messages: list[dict[str, Any]],
        response_format: dict[str, Any] | None = None,
        *,
        identity: Any = None,
    ) -> tuple[str, str | None]:
        """The judge's reply text and the provider model that answered; CallFailed if none."""
        body = {"model": model, "messages": messages, **params}
        if response_format is not None:
            body["response_format"] = response_format
        key = request_key("judge", body, {}, 0, identity)
        record = await self._answer(
            "judge", key, deterministic(params), lambda: self._post_chat("judge", body, {})
        )
        output = record["output"]
        if output.get("error"):
            raise CallFailed(
                f"judge call failed: {output['error']}", infra=output.get("error_kind") == "infra"
            )
        return output.get("text") or "", output.get("model")

    async def embed(
        self, model: str, texts: Sequence[str], *, identity: Any = None
    ) -> list[list[float]]:
        body = {"model": model, "input": list(texts)}
        key = request_key("embed", body, {}, 0, identity)
        record = await self._answer("embed", key, True, lambda: self._post_embed(body))
        if record.get("error"):
            raise CallFailed(
                f"embeddings failed: {record['error']}", infra=record.get("error_kind") == "infra"
            )
        return [list(map(float, v)) for v in record["vectors"]]

    # ------------------------------------------------------------------ where answers come from

    async def _answer(
        self,
        kind: str,
        key: str,
        cacheable: bool,
        call: Callable[[], Awaitable[dict[str, Any]]],
    ) -> dict[str, Any]:
        record = self.used.get(key)
        if record is not None:
            return record
        source: str
        if key in self.recorded:
            source = "replayed"
            record = self.recorded[key]
        elif kind in self.offline_kinds:
            raise ReplayMiss(
                "the recorded run has no answer for a call this run makes: the suite, dataset, "
                "prompt or target changed since, so it cannot be replayed"
            )
        elif key in self.resumed:
            source = "resumed"
            record = self.resumed[key]
        elif self.cache is not None and cacheable and (cached := self.cache.get(key)) is not None:
            source = "hits"
            record = cached
        else:
            source = "misses" if self.cache is not None and cacheable else "uncached"
            record = await call()
            if not _failed(record):
                if self.journal is not None:
                    self.journal.append(key, record)
                if self.cache is not None and cacheable:
                    self.cache.put(key, record)
        self.counts[source] += 1
        self.counts[f"{kind}:{'live' if source in ('misses', 'uncached') else source}"] += 1
        self.used[key] = record
        self.kind_of[key] = kind
        self.source_of[key] = source
        return record

    # ------------------------------------------------------------------ the gateway

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

    async def _post(
        self, path: str, body: dict[str, Any], headers: dict[str, str]
    ) -> _Reply | tuple[str, str]:
        """The reply, or (error kind, message) when the call failed every attempt."""
        if self.broken is not None:
            return "infra", f"not attempted: {self.broken}"
        delay = 0.5
        waited = 0.0
        async with self._slots:
            for attempt in range(self._retries + 1):
                self.counts["calls"] += 1
                try:
                    response = await self._request(path, body, headers)
                except (TimeoutError, aiohttp.ClientError) as exc:
                    failure = f"{type(exc).__name__}: {exc}"
                    if attempt == self._retries:
                        return self._infra_failure(failure)
                else:
                    message = f"HTTP {response.status_code}: {_error_message(response)}"
                    if response.status_code not in TRANSIENT or attempt == self._retries:
                        if response.status_code == 200:
                            self._consecutive_infra = 0
                            return response
                        if response.status_code in REFUSED:
                            return "refused", message
                        return self._infra_failure(message)
                    retry_after = response.headers.get("retry-after", "")
                    if retry_after.replace(".", "", 1).isdigit():
                        delay = max(delay, float(retry_after))
                    failure = message
                if self.broken is not None:
                    return "infra", f"not attempted: {self.broken}"
                if waited + delay > RETRY_WAIT_SECONDS:
                    return self._infra_failure(
                        f"{failure} (retrying would wait past {RETRY_WAIT_SECONDS:g} s)"
                    )
                self.counts["retries"] += 1
                await asyncio.sleep(delay)
                waited += delay
                delay *= 2
        raise AssertionError("unreachable")

    def _infra_failure(self, message: str) -> tuple[str, str]:
        self.counts["infra_failures"] += 1
        self._consecutive_infra += 1
        if self._consecutive_infra >= self._breaker_after and self.broken is None:
            self.broken = (
                f"the gateway failed {self._consecutive_infra} calls in a row (last: {message})"
            )
        return "infra", message

    async def _post_chat(
        self, kind: str, body: dict[str, Any], headers: dict[str, str]
    ) -> dict[str, Any]:
        started = time.perf_counter()
        response = await self._post("/v1/chat/completions", body, headers)
        latency_ms = (time.perf_counter() - started) * 1000
        if isinstance(response, tuple):
            error_kind, message = response
            return {
                "output": {
                    "text": None,
                    "error": message,
                    "error_kind": error_kind,
                    "latency_ms": latency_ms,
                },
                "headers": {},
            }
        data = response.json()
        choice = (data.get("choices") or [{}])[0]
        message_part = choice.get("message") or {}
        usage = data.get("usage") or {}
        cost = _cost(response)
        if cost is not None:
            self.spent_usd[kind] = self.spent_usd.get(kind, 0.0) + cost
        kept = {k: v for k, v in response.headers.items() if k.startswith("x-pilothouse-")}
        return {
            "output": {
                "text": message_part.get("content"),
                "refusal": message_part.get("refusal"),
                "tool_calls": message_part.get("tool_calls"),
                "finish_reason": choice.get("finish_reason"),
                "latency_ms": latency_ms,
                "prompt_tokens": int(usage.get("prompt_tokens") or 0),
                "completion_tokens": int(usage.get("completion_tokens") or 0),
                "model": data.get("model"),
                "cost_usd": cost,
            },
            "headers": kept,
        }

    async def _post_embed(self, body: dict[str, Any]) -> dict[str, Any]:
        response = await self._post("/v1/embeddings", body, {})
        if isinstance(response, tuple):
            error_kind, message = response
            return {"error": message, "error_kind": error_kind}
        data = response.json()
        cost = _cost(response)
        if cost is not None:
            self.spent_usd["embed"] = self.spent_usd.get("embed", 0.0) + cost
        return {
            "vectors": [item["embedding"] for item in data["data"]],
            "model": data.get("model"),
            "prompt_tokens": int((data.get("usage") or {}).get("prompt_tokens") or 0),
            "cost_usd": cost,
        }


def _failed(record: dict[str, Any]) -> bool:
    return bool(record.get("error") or (record.get("output") or {}).get("error"))


def _cost(response: _Reply) -> float | None:
    raw = response.headers.get("x-pilothouse-cost-usd")
    try:
        return float(raw) if raw is not None else None
    except ValueError:
        return None


def _error_message(response: _Reply) -> str:
    try:
        error = response.json().get("error")
        return str(error.get("message") if isinstance(error, dict) else error)
    except (ValueError, AttributeError):
        return response.text[:200]
