"""The gateway: `/v1/chat/completions`, `/v1/embeddings` and `/v1/models` as plain ASGI.

A request is served entirely from the in-memory snapshot (key, model alias, provider),
then the provider is called over a pooled connection, and one `RequestRecord` goes to the
batch writer. Nothing here waits on the database.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import re
import secrets
import time
from typing import Any

import orjson

from pilothouse import errors
from pilothouse.gateway import resolve, validation
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
from pilothouse.gateway.providers.base import UpstreamError, Usage
from pilothouse.gateway.relay import relay
from pilothouse.gateway.snapshot import ModelTarget, Snapshot, SnapshotHolder
from pilothouse.logs import request_id_var
from pilothouse.policy.keys import ApiKey
from pilothouse.registry.catalog import cost_usd
from pilothouse.telemetry.metrics import Metrics
from pilothouse.telemetry.request_log import RequestLogWriter, RequestRecord

log = logging.getLogger("pilothouse.gateway")
# Request ids: a random per-process prefix and a counter: unique across processes, cheap,
# and increasing, so the log's primary-key inserts append.
_ID_PREFIX = "req_" + secrets.token_hex(6)
_ID_COUNTER = itertools.count(1)
_REQUEST_ID = re.compile(rb"^[A-Za-z0-9._:-]{1,64}$")
CLIENT_CLOSED = 499  # nginx's convention: the client went away before the answer


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
        authorization = content_length = request_id = session = arm = None
        for header, value in scope["headers"]:
            if header == b"authorization":
                authorization = value
            elif header == b"content-length":
                content_length = value
            elif header == b"x-request-id" and _REQUEST_ID.match(value):
                request_id = value.decode()
            elif header == b"x-pilothouse-session":
                session = value.decode("latin-1")
            elif header == b"x-pilothouse-release":
                arm = value.decode("latin-1")
        record = RequestRecord(
            id=request_id or f"{_ID_PREFIX}{next(_ID_COUNTER):012x}",
            started_at=time.time(),
            endpoint=endpoint,
        )
        request_id_var.set(record.id)
        headers = [(b"x-request-id", record.id.encode())]
        snapshot = self.holder.current
        try:
            key = resolve.authenticate(snapshot, authorization)
            record.key_id, record.user, record.team = key.id, key.user, key.team
            if endpoint == "models":
                await send_json(send, 200, _models_body(snapshot, key), headers)
                return
            body = await read_body(
                receive,
                limit=self.max_body_bytes,
                content_length=int(content_length) if content_length else None,
            )
            payload = parse_json_object(body)
            model = validation.model_of(payload)
            extras = payload.pop("pilothouse", None)  # ours: never sent to a provider
            if model.startswith(resolve.ROUTE_PREFIX) and endpoint == "chat":
                sticky = (
                    session
                    or (payload.get("user") if isinstance(payload.get("user"), str) else None)
                    or key.id
                )
                target = resolve.apply_route(
                    snapshot,
                    key,
                    model[len(resolve.ROUTE_PREFIX) :],
                    payload,
                    extras,
                    sticky,
                    arm,
                    record,
                )
                headers += [
                    (b"x-pilothouse-release", (record.release_id or "").encode()),
                    (
                        b"x-pilothouse-prompt",
                        f"{record.prompt_name}@{record.prompt_version}".encode(),
                    ),
                    (b"x-pilothouse-prompt-hash", (record.prompt_hash or "").encode()),
                ]
            else:
                target = resolve.alias_target(snapshot, key, model)
            resolve.refuse_retired(target)
            record.model_alias = target.alias
            record.provider = target.provider_name
            record.provider_model = target.provider_model
            if endpoint == "embeddings":
                validation.check_embeddings(payload)
                await self._embeddings(target, payload, record, send, headers)
                return
            validation.check_chat(payload)
            if isinstance(payload.get("user"), str):
                record.user = payload["user"]
            if payload.get("stream"):
                record.stream = True
                await self._stream(target, payload, record, t0, receive, send, headers)
            else:
                await self._complete(target, payload, record, send, headers)
        except errors.PilothouseError as exc:
            record.status_code = exc.status
            record.error_class = exc.type
            record.error_message = exc.message
            await send_error(send, exc, headers)
        except UpstreamError as exc:
            self._fail(record, exc)
            extra = [(b"retry-after", exc.retry_after.encode())] if exc.retry_after else []
            body = openai_error_body(
                exc.message, exc.error_class, code=exc.error_class, provider=exc.provider
            )
            await send_json(send, exc.status, body, headers + extra)
        except ClientGone:
            record.status_code = CLIENT_CLOSED
            record.error_class = "client_disconnected"
        finally:
            record.finished_at = time.time()
            record.latency_ms = (time.perf_counter() - t0) * 1000
            self.writer.submit(record)
            self._observe(record)

    async def _complete(
        self,
        target: ModelTarget,
        payload: dict[str, Any],
        record: RequestRecord,
        send: Send,
        headers: list[tuple[bytes, bytes]],
    ) -> None:
        result = await target.provider.chat(payload, target.provider_model)
        self._account(target, record, result.usage)
        record.finish_reason = result.finish_reason
        cost = (b"x-pilothouse-cost-usd", f"{record.cost_usd:.8f}".encode())
        await send_json(send, 200, result.body, [*headers, cost])

    async def _embeddings(
        self,
        target: ModelTarget,
        payload: dict[str, Any],
        record: RequestRecord,
        send: Send,
        headers: list[tuple[bytes, bytes]],
    ) -> None:
        result = await target.provider.embeddings(payload, target.provider_model)
        self._account(target, record, result.usage)
        await send_json(send, 200, result.body, headers)

    async def _stream(
        self,
        target: ModelTarget,
        payload: dict[str, Any],
        record: RequestRecord,
        t0: float,
        receive: Receive,
        send: Send,
        headers: list[tuple[bytes, bytes]],
    ) -> None:
        options = payload.get("stream_options")
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
            stream = await target.provider.chat_stream(payload, target.provider_model)
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
            self._account(target, record, stream.usage)
        if result.error is not None:
            self._fail(record, result.error, status=200)

    def _account(self, target: ModelTarget, record: RequestRecord, usage: Usage) -> None:
        record.prompt_tokens = usage.prompt_tokens
        record.completion_tokens = usage.completion_tokens
        record.cached_tokens = usage.cached_tokens
        record.cost_usd = cost_usd(
            target.pricing,
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


def _models_body(snapshot: Snapshot, key: ApiKey) -> bytes:
    data = [
        {"id": alias, "object": "model", "created": 0, "owned_by": target.provider_name}
        for alias, target in sorted(snapshot.models.items())
        if key.allows(alias)
    ]
    return orjson.dumps({"object": "list", "data": data})
