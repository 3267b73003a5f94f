"""A streamed answer (`stream: true`, any front door): choice and retry until content
reaches the client, the relay of the chosen attempt, and what its row keeps (chunks,
TTFT, finish reason, cost, or the failure and what it cost so far).

An attempt that fails (or ends empty) before any content reached the client goes to the
next deployment; after content, never: the stream then ends with the door's error event.
A client that leaves, or an instance that stops, cuts it (`GatewayApp._cut`, shared with
the plain path).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pilothouse import errors
from pilothouse.fleet.failover import Failover, bounded
from pilothouse.gateway.accounting import account, account_partial
from pilothouse.gateway.client_watch import ClientWatch
from pilothouse.gateway.doors.door import DoorStream
from pilothouse.gateway.http_io import SSE_HEADERS, ClientGone, Headers, Receive, Send
from pilothouse.gateway.relay import RelayResult, SseResponse, flush_held, relay
from pilothouse.gateway.stream_frames import StreamFrames
from pilothouse.providers.types import ChatStream, UpstreamError
from pilothouse.telemetry import outcomes
from pilothouse.telemetry.request_log import RequestRecord

log = logging.getLogger("pilothouse.gateway")


# The gateway's own (`GatewayApp._cut`, `GatewayApp._fail`), shared with its plain path:
# a cancelled call's row (True: the client left), an upstream failure's row.
Cut = Callable[..., bool]
Fail = Callable[..., None]


@dataclass(slots=True)
class _Streamed:
    """The stream attempt in progress (what a cancellation or the end reads)."""

    stream: ChatStream | None = None
    result: RelayResult = field(default_factory=RelayResult)
    upstream_start: float = 0.0


class StreamedAnswer:
    """Serves the streamed calls of one gateway; `cut` and `fail` are the gateway's."""

    def __init__(self, keepalive_seconds: float, cut: Cut, fail: Fail):
        self.keepalive_seconds = keepalive_seconds
        self.cut = cut
        self.fail = fail

    async def serve(
        self,
        failover: Failover,
        body: dict[str, Any],
        record: RequestRecord,
        t0: float,
        receive: Receive,
        send: Send,
        headers: Headers,
        frames: StreamFrames,
    ) -> None:
        response = SseResponse(send, SSE_HEADERS + headers)
        state = _Streamed()
        watch = ClientWatch(receive)
        try:
            try:
                await self._answer(failover, body, record, response, state, frames)
            except asyncio.CancelledError:
                self._facts(record, state, t0)
                if self.cut(record, failover, body, state.stream, state.result, gone=watch.gone):
                    raise ClientGone from None
                raise
            except UpstreamError as exc:
                if not response.started:
                    raise  # nothing sent yet: answered as an error by _serve
                state.result.error = exc  # only keep-alives went out: the error ends it
            except Exception as exc:
                if not response.started or isinstance(exc, errors.PilothouseError):
                    raise  # nothing sent yet: answered as an error by _serve
                # Started, then a fault of ours: end the stream with an error event.
                log.exception("gateway fault while relaying a stream")
                fault = UpstreamError(
                    "gateway_error", "the gateway failed while relaying", provider="pilothouse"
                )
                await response.write(frames.error(state.stream, fault))
                record.outcome = outcomes.GATEWAY_ERROR
                record.error_class = "gateway_error"
            if state.result.error is not None:
                await response.write(frames.error(state.stream, state.result.error))
        finally:
            # Detached before the end: once the response is complete, receive() reports a
            # disconnect, which must not count as the client leaving.
            watch.detach()
        await response.end()
        self._facts(record, state, t0)
        stream, error = state.stream, state.result.error
        answered_by = failover.current.deployment if failover.current else None
        if answered_by is None:
            return
        if error is not None:
            self.fail(record, error, status=200)
            account_partial(
                record,
                answered_by,
                stream.usage if stream else None,
                body,
                stream.sample if stream else None,
            )
        elif stream is not None and stream.usage is not None:
            account(record, answered_by, stream.usage)

    async def _answer(
        self,
        failover: Failover,
        body: dict[str, Any],
        record: RequestRecord,
        response: SseResponse,
        state: _Streamed,
        frames: StreamFrames,
    ) -> None:
        """Choice and retry for a stream: an attempt that fails (or ends empty) before any
        content reached the client goes to the next deployment; after content, never."""
        options = body.get("stream_options")
        include_usage = isinstance(options, dict) and options.get("include_usage") is True
        while True:
            attempt = failover.next()
            deployment = attempt.deployment
            record.provider = deployment.provider_name
            record.provider_model = deployment.provider_model
            state.stream, state.result = None, RelayResult()
            state.upstream_start = time.perf_counter()
            try:
                stream = await bounded(
                    attempt, deployment.provider.chat_stream(body, deployment.provider_model)
                )
                state.stream = stream = frames.wrap(stream)
            except UpstreamError as exc:
                failover.failed(attempt, exc)
                continue
            result = state.result
            await relay(
                stream,
                response,
                result,
                include_usage=include_usage,
                keepalive_seconds=self.keepalive_seconds,
                provider=deployment.provider_name,
                first_content_within_seconds=attempt.timeout_seconds,
            )
            if result.error is not None:
                failover.failed(attempt, result.error)
                if result.delivered:  # content reached the client: never restarted
                    return
            elif failover.answered(
                attempt, stream.sample, stream.finish_reason, may_retry=not result.delivered
            ):
                if not result.delivered:
                    await flush_held(response, result)  # no one else left to answer
                return

    @staticmethod
    def _facts(record: RequestRecord, state: _Streamed, t0: float) -> None:
        stream, result = state.stream, state.result
        record.chunks_out = result.chunks_out
        if isinstance(stream, DoorStream):  # its events may carry several frames each
            record.chunks_out += stream.writer.merged_frames
        if stream is not None:
            record.chunks_in = stream.chunks_in
            record.finish_reason = stream.finish_reason
        if result.first_content_written is not None and result.first_content_upstream is not None:
            record.ttft_delivered_ms = (result.first_content_written - t0) * 1000
            record.ttft_upstream_ms = (result.first_content_upstream - state.upstream_start) * 1000
            record.ttft_gateway_ms = record.ttft_delivered_ms - record.ttft_upstream_ms
