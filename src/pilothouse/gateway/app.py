"""The gateway: `/v1/chat/completions`, `/v1/embeddings` and `/v1/models` as plain ASGI.

A request is served entirely from the in-memory snapshot, in named stages that read top
to bottom in `_serve`: authenticate → read → resolve → call → account. Each later feature
(quotas, fleet choice, session budgets) is one call between them into its own package.
One `RequestRecord` goes to the batch writer at the end; nothing here waits on the
database.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import secrets
import time
from datetime import UTC, datetime
from typing import Any

import orjson

from pilothouse import errors
from pilothouse.fleet.deployments import Deployment
from pilothouse.gateway import validation
from pilothouse.gateway.headers import RequestHeaders
from pilothouse.gateway.http_io import (
    SSE_HEADERS,
    ClientGone,
    Receive,
    Scope,
    Send,
    openai_error_body,
    parse_json_object,
    read_body,
    send_error,
    send_json,
    wait_for_disconnect,
)
from pilothouse.gateway.relay import relay
from pilothouse.gateway.resolve import Resolution, resolve
from pilothouse.logs import request_id_var
from pilothouse.policy.keys import ApiKey, authenticate
from pilothouse.providers.types import UpstreamError, Usage
from pilothouse.registry.catalog import cost_usd
from pilothouse.snapshot import Snapshot, SnapshotHolder
from pilothouse.telemetry.metrics import Metrics
from pilothouse.telemetry.request_log import RequestLogWriter, RequestRecord

log = logging.getLogger("pilothouse.gateway")
# Request ids: a random per-process prefix and a counter: unique across processes, cheap,
# and increasing, so the log's primary-key inserts append.
_ID_PREFIX = "req_" + secrets.token_hex(6)
_ID_COUNTER = itertools.count(1)
CLIENT_CLOSED = 499  # nginx's convention: the client went away before the answer
Headers = list[tuple[bytes, bytes]]


class GatewayApp:
    def __init__(
        self,
        holder: SnapshotHolder,
        writer: RequestLogWriter,
        metrics: Metrics,
        *,
        max_body_bytes: int,
        keepalive_seconds: float,
    ):
        self.holder = holder
        self.writer = writer
        self.metrics = metrics
        self.max_body_bytes = max_body_bytes
        self.keepalive_seconds = keepalive_seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope["path"]
        endpoint = _ENDPOINTS.get(path)
        if endpoint is None:
            await send_json(
                send,
                404,
                openai_error_body(
                    f"unknown endpoint {path}; this gateway serves "
                    + ", ".join(sorted(_ENDPOINTS)),
                    "not_found_error",
                ),
            )
            return
        name, method = endpoint
        if scope["method"] != method:
            await send_json(
                send,
                405,
                openai_error_body(f"{path} takes {method}", "invalid_request_error"),
                [(b"allow", method.encode())],
            )
            return
        await self._serve(name, scope, receive, send)

    async def _serve(self, endpoint: str, scope: Scope, receive: Receive, send: Send) -> None:
        t0 = time.perf_counter()
        request = RequestHeaders.of(scope)
        record = RequestRecord(
            id=request.client_request_id or f"{_ID_PREFIX}{next(_ID_COUNTER):012x}",
            started_at=time.time(),
            endpoint=endpoint,
        )
        request_id_var.set(record.id)
        headers: Headers = [(b"x-request-id", record.id.encode())]
        snapshot = self.holder.current
        try:
            key = self._authenticate(snapshot, request, record)
            if endpoint == "models":
                await send_json(send, 200, _models_body(snapshot, key), headers)
                return
            payload = await self._read(receive, request)
            resolution = self._resolve(snapshot, key, payload, request, endpoint, record)
            headers += _route_headers(record)
            await self._call(endpoint, resolution, record, t0, receive, send, headers)
        except UpstreamError as exc:
            self._fail(record, exc)
            await send_error(send, exc, headers)
        except errors.PilothouseError as exc:
            record.status_code = exc.status
            record.error_class = exc.type
            record.error_message = exc.message
            await send_error(send, exc, headers)
        except ClientGone:
            record.status_code = CLIENT_CLOSED
            record.error_class = "client_disconnected"
        finally:
            record.finished_at = time.time()
            record.latency_ms = (time.perf_counter() - t0) * 1000
            self.writer.submit(record)
            self._observe(record)

    # ------------------------------------------------------------------ the stages

    def _authenticate(
        self, snapshot: Snapshot, request: RequestHeaders, record: RequestRecord
    ) -> ApiKey:
        key = authenticate(snapshot.keys_by_hash, request.authorization, datetime.now(UTC))
        record.key_id, record.user, record.team = key.id, key.user, key.team
        return key

    async def _read(self, receive: Receive, request: RequestHeaders) -> dict[str, Any]:
        body = await read_body(
            receive, limit=self.max_body_bytes, content_length=request.content_length
        )
        return parse_json_object(body)

    def _resolve(
        self,
        snapshot: Snapshot,
        key: ApiKey,
        payload: dict[str, Any],
        request: RequestHeaders,
        endpoint: str,
        record: RequestRecord,
    ) -> Resolution:
        model = validation.model_of(payload)
        user = payload.get("user") if isinstance(payload.get("user"), str) else None
        resolution = resolve(
            snapshot,
            key,
            payload,
            model,
            endpoint=endpoint,
            sticky=request.session or user or key.id,
            arm=request.arm,
        )
        record.model_alias = resolution.alias.alias
        if user is not None:
            record.user = user
        if resolution.route is not None:
            choice = resolution.route
            release = choice.release
            record.route = choice.route
            record.release_id = release.id
            record.release_arm = choice.arm
            record.prompt_name = release.prompt.name
            record.prompt_version = release.prompt.version
            record.prompt_hash = release.prompt.hash
            record.variables = choice.variables or None
        if endpoint == "embeddings":
            validation.check_embeddings(resolution.body)
        else:
            validation.check_chat(resolution.body)
        return resolution

    async def _call(
        self,
        endpoint: str,
        resolution: Resolution,
        record: RequestRecord,
        t0: float,
        receive: Receive,
        send: Send,
        headers: Headers,
    ) -> None:
        deployment = resolution.alias.primary
        record.provider = deployment.provider_name
        record.provider_model = deployment.provider_model
        if endpoint == "embeddings":
            await self._embeddings(deployment, resolution.body, record, send, headers)
        elif resolution.body.get("stream"):
            record.stream = True
            await self._stream(deployment, resolution.body, record, t0, receive, send, headers)
        else:
            await self._complete(deployment, resolution.body, record, send, headers)

    # ------------------------------------------------------------------ the calls

    async def _complete(
        self,
        deployment: Deployment,
        body: dict[str, Any],
        record: RequestRecord,
        send: Send,
        headers: Headers,
    ) -> None:
        result = await deployment.provider.chat(body, deployment.provider_model)
        self._account(deployment, record, result.usage)
        record.finish_reason = result.finish_reason
        cost = (b"x-pilothouse-cost-usd", f"{record.cost_usd:.8f}".encode())
        await send_json(send, 200, result.body, [*headers, cost])

    async def _embeddings(
        self,
        deployment: Deployment,
        body: dict[str, Any],
        record: RequestRecord,
        send: Send,
        headers: Headers,
    ) -> None:
        result = await deployment.provider.embeddings(body, deployment.provider_model)
        self._account(deployment, record, result.usage)
        await send_json(send, 200, result.body, headers)

    async def _stream(
        self,
        deployment: Deployment,
        body: dict[str, Any],
        record: RequestRecord,
        t0: float,
        receive: Receive,
        send: Send,
        headers: Headers,
    ) -> None:
        options = body.get("stream_options")
        include_usage = isinstance(options, dict) and options.get("include_usage") is True
        # The client may leave at any time; when it does, cancel the upstream call.
        this_task = asyncio.current_task()
        assert this_task is not None
        gone = False

        def client_left(_: asyncio.Future[None]) -> None:
            nonlocal gone
            if not watcher.cancelled():
                gone = True
                this_task.cancel()

        watcher = asyncio.ensure_future(wait_for_disconnect(receive))
        watcher.add_done_callback(client_left)
        upstream_start = time.perf_counter()
        try:
            stream = await deployment.provider.chat_stream(body, deployment.provider_model)
            await send(
                {"type": "http.response.start", "status": 200, "headers": SSE_HEADERS + headers}
            )
            result = await relay(
                stream, send, include_usage=include_usage, keepalive_seconds=self.keepalive_seconds
            )
        except asyncio.CancelledError:
            if not gone:
                raise
            this_task.uncancel()
            raise ClientGone from None
        finally:
            # Detach before the final write: once the response is complete, receive()
            # reports a disconnect, which must not count as the client leaving.
            watcher.remove_done_callback(client_left)
            watcher.cancel()
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        record.chunks_in = stream.chunks_in
        record.chunks_out = result.chunks_out
        record.finish_reason = stream.finish_reason
        if result.first_content_written is not None and result.first_content_upstream is not None:
            record.ttft_delivered_ms = (result.first_content_written - t0) * 1000
            record.ttft_upstream_ms = (result.first_content_upstream - upstream_start) * 1000
            record.ttft_gateway_ms = record.ttft_delivered_ms - record.ttft_upstream_ms
        if stream.usage is not None:
            self._account(deployment, record, stream.usage)
        if result.error is not None:
            self._fail(record, result.error, status=200)

    # ------------------------------------------------------------------ accounting

    def _account(self, deployment: Deployment, record: RequestRecord, usage: Usage) -> None:
        record.prompt_tokens = usage.prompt_tokens
        record.completion_tokens = usage.completion_tokens
        record.cached_tokens = usage.cached_tokens
        record.cost_usd = cost_usd(
            deployment.pricing,
            prompt_tokens=usage.prompt_tokens,
            completion_tokens=usage.completion_tokens,
            cached_tokens=usage.cached_tokens,
        )

    def _fail(self, record: RequestRecord, exc: UpstreamError, status: int | None = None) -> None:
        # A stream that already sent 200 keeps that status; its error class says what broke.
        log.warning(
            "upstream call failed: %s",
            exc.message,
            extra={
                "provider": exc.provider,
                "error_class": exc.error_class,
                "model": record.model_alias,
            },
        )
        record.status_code = status or exc.status
        record.error_class = exc.error_class
        record.error_message = exc.message
        self.metrics.upstream_errors.labels(exc.provider, exc.error_class).inc()

    def _observe(self, record: RequestRecord) -> None:
        self.metrics.observe_request(
            endpoint=record.endpoint,
            model=record.model_alias or "",
            provider=record.provider or "",
            status=record.status_code,
            latency_ms=record.latency_ms,
            ttft_ms=record.ttft_delivered_ms,
            prompt_tokens=record.prompt_tokens,
            completion_tokens=record.completion_tokens,
            cached_tokens=record.cached_tokens,
            cost_usd=record.cost_usd,
        )


_ENDPOINTS = {
    "/v1/chat/completions": ("chat", "POST"),
    "/v1/embeddings": ("embeddings", "POST"),
    "/v1/models": ("models", "GET"),
}


def _route_headers(record: RequestRecord) -> Headers:
    """Which release answered a route call (the eval runner and tests read these)."""
    if record.route is None:
        return []
    return [
        (b"x-pilothouse-release", (record.release_id or "").encode()),
        (b"x-pilothouse-prompt", f"{record.prompt_name}@{record.prompt_version}".encode()),
        (b"x-pilothouse-prompt-hash", (record.prompt_hash or "").encode()),
    ]


def _models_body(snapshot: Snapshot, key: ApiKey) -> bytes:
    data = [
        {"id": alias, "object": "model", "created": 0, "owned_by": target.primary.provider_name}
        for alias, target in sorted(snapshot.models.items())
        if key.allows(alias)
    ]
    return orjson.dumps({"object": "list", "data": data})
