"""The gateway: `/v1/chat/completions`, `/v1/responses`, `/v1/messages`, `/v1/embeddings`
and `/v1/models` as plain ASGI.

A request is served entirely from the in-memory snapshot, in named stages that read top
to bottom in `_serve`: authenticate → read → resolve → call → account. Each later feature
(quotas, fleet choice, session budgets) is one call between them into its own package.
One `RequestRecord` goes to the batch writer at the end; nothing here waits on the
database. The call stage answers in `plain.py` or streams in `streamed.py`; the paths and
the read-only endpoints are `endpoints.py`'s.

The Responses and Messages front doors (`doors/`) go through the same stages: their
request is translated into the chat completions request the stages serve, and the
answer, the stream and the errors are written back in the door's own shapes.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime
from typing import Any

from pilothouse import errors
from pilothouse.clock import Clock
from pilothouse.conversations.stored import StoredResponses
from pilothouse.fleet.failover import Failover
from pilothouse.gateway import endpoints, quota_stage, validation
from pilothouse.gateway.accounting import account_partial, record_signals
from pilothouse.gateway.doors.door import DOORS, Door
from pilothouse.gateway.doors.ids_and_chunks import answer_id
from pilothouse.gateway.doors.stored import Keeper, Turn
from pilothouse.gateway.endpoints import SERVED_PATHS, endpoint_of
from pilothouse.gateway.headers import RequestHeaders
from pilothouse.gateway.http_io import (
    ClientGone,
    Headers,
    Receive,
    Scope,
    Send,
    error_body,
    error_headers,
    parse_json_object,
    read_body,
    send_json,
)
from pilothouse.gateway.plain import PlainAnswer
from pilothouse.gateway.relay import RelayResult
from pilothouse.gateway.resolve import Resolution, resolve
from pilothouse.gateway.stream_frames import StreamFrames
from pilothouse.gateway.streamed import StreamedAnswer
from pilothouse.gateway.unserved import send_unserved, unserved_answer
from pilothouse.logs import request_id_var
from pilothouse.policy.keys import ApiKey, authenticate
from pilothouse.policy.quota_gate import Admission, QuotaGate
from pilothouse.providers.types import ChatStream, UpstreamError
from pilothouse.snapshot import Snapshot
from pilothouse.snapshot_holder import SnapshotHolder
from pilothouse.telemetry import outcomes
from pilothouse.telemetry.ids import new_request_id
from pilothouse.telemetry.metrics import Metrics
from pilothouse.telemetry.request_log import RequestLogWriter, RequestRecord

log = logging.getLogger("pilothouse.gateway")
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
        body_read_timeout_seconds: float = 30.0,
        clock: Clock | None = None,
        quotas: QuotaGate | None = None,
        stored: StoredResponses | None = None,
    ):
        self.now = (clock or Clock()).now  # a row's started_at: the monitors' time
        self.quotas = quotas
        self.keeper = Keeper(stored)
        self.holder = holder
        self.writer = writer
        self.metrics = metrics
        self.max_body_bytes = max_body_bytes
        self.body_read_timeout_seconds = body_read_timeout_seconds
        self.draining = False  # set when the server stops accepting: a cancel is then a cut
        self.streamed = StreamedAnswer(keepalive_seconds, self._cut, self._fail)
        self.plain = PlainAnswer(self.now, quotas, self._cut)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope["path"]
        endpoint = endpoint_of(path, scope["method"])
        if endpoint is None:
            answer = unserved_answer(path, SERVED_PATHS)
            await send_unserved(scope, send, 404, answer, self.metrics, self.holder.current)
            return
        name, method = endpoint
        if scope["method"] != method:
            answer = unserved_answer(path, SERVED_PATHS, method=method)
            allow = [(b"allow", method.encode())]
            await send_unserved(scope, send, 405, answer, self.metrics, self.holder.current, allow)
            return
        await self._serve(name, scope, receive, send)

    async def _serve(self, endpoint: str, scope: Scope, receive: Receive, send: Send) -> None:
        t0 = time.perf_counter()
        door = DOORS.get(endpoint)
        request = RequestHeaders.of(scope)
        record = RequestRecord(
            id=new_request_id(),
            started_at=self.now(),
            endpoint=endpoint,
            client_request_id=request.client_request_id,
            source=request.source,
            eval_run_id=request.eval_run_id,
        )
        request_id_var.set(record.id)
        headers: Headers = [(b"x-request-id", record.id.encode())]
        if request.client_request_id:
            headers.append((b"x-client-request-id", request.client_request_id.encode()))
        snapshot = self.holder.current
        attempts: list[dict[str, Any]] = []  # the upstream calls, for the GenAI metrics
        admission: Admission | None = None
        try:
            key = self._authenticate(snapshot, request, record, endpoint)
            if endpoint == "models":
                await endpoints.models(scope, snapshot, key, send, headers)
                return
            if endpoint in endpoints.STORED_ENDPOINTS:
                await endpoints.stored(self.keeper, endpoint, scope, key, send, headers)
                return
            body = await read_body(
                receive,
                limit=self.max_body_bytes,
                content_length=request.content_length,
                timeout_seconds=self.body_read_timeout_seconds,
            )
            payload, body_bytes = parse_json_object(body), len(body)
            sent_bytes: int | None = body_bytes
            if endpoint == "responses" and self.keeper.names_stored_state(payload):
                payload = await self.keeper.prepare(key, payload)
                sent_bytes = None  # earlier turns joined it: the body no longer bounds the prompt
            resolution = self._resolve(snapshot, key, payload, request, endpoint, record, door)
            turn = None
            if endpoint == "responses":
                response_id = answer_id("resp", record.id)
                turn = self.keeper.turn(snapshot, key, resolution, payload, response_id)
            if snapshot.quotas.policies and self.quotas is not None:
                # A route renders its prompt from the release: only then is it not all in
                # the body the client sent, whose size bounds it.
                sent = sent_bytes if resolution.route is None else None
                gate = self.quotas
                admission = await quota_stage.reserve(gate, snapshot, key, resolution, record, sent)
                if admission is not None:
                    resolution = await quota_stage.degraded(
                        gate, snapshot, admission, resolution, record, headers, sent
                    )
                    headers += admission.headers
            headers += _route_headers(record)
            await self._call(
                endpoint,
                resolution,
                record,
                t0,
                receive,
                send,
                headers,
                attempts,
                door,
                payload,
                admission,
                turn,
            )
        except UpstreamError as exc:
            self._fail(record, exc)
            await self._send_error(send, exc, headers, door)
        except errors.PilothouseError as exc:
            self._refuse(record, exc)
            await self._send_error(send, exc, headers, door)
        except ClientGone:
            record.status_code = CLIENT_CLOSED
            record.error_class = "client_disconnected"
            record.outcome = outcomes.CLIENT_CANCELLED
        except Exception as exc:  # a fault of ours: still an OpenAI error, still a row
            log.exception("gateway fault serving %s", endpoint)
            fault = errors.PilothouseError(
                f"the gateway failed to serve this request ({type(exc).__name__}); "
                f"request id {record.id}"
            )
            self._refuse(record, fault)
            record.outcome = outcomes.GATEWAY_ERROR
            await self._send_error(send, fault, headers, door)
        finally:
            record.finished_at = self.now()
            record.latency_ms = (time.perf_counter() - t0) * 1000
            await quota_stage.settle(self.quotas, admission, record)
            self.writer.submit(record)
            # A metrics label only when the alias is one of ours, never a client's string.
            known = record.model_alias is None or record.model_alias in snapshot.models
            self.metrics.observe(record, attempts, alias_known=known)

    @staticmethod
    async def _send_error(
        send: Send, exc: errors.PilothouseError, headers: Headers, door: Door | None
    ) -> None:
        """The error in the door's own shape (Anthropic's on /v1/messages, else OpenAI's)."""
        body = door.error_body(exc) if door is not None else error_body(exc)
        await send_json(send, exc.status, body, [*headers, *error_headers(exc)])

    # ------------------------------------------------------------------ the stages

    def _authenticate(
        self, snapshot: Snapshot, request: RequestHeaders, record: RequestRecord, endpoint: str
    ) -> ApiKey:
        authorization = request.authorization
        if authorization is None and request.api_key and endpoint == "messages":
            authorization = b"Bearer " + request.api_key  # the anthropic SDK's x-api-key
        key = authenticate(snapshot.keys_by_hash, authorization, datetime.now(UTC))
        record.key_id, record.user, record.team = key.id, key.user, key.team
        return key

    def _resolve(
        self,
        snapshot: Snapshot,
        key: ApiKey,
        payload: dict[str, Any],
        request: RequestHeaders,
        endpoint: str,
        record: RequestRecord,
        door: Door | None,
    ) -> Resolution:
        model = validation.model_of(payload)
        record.model_alias = model  # as requested (bounded by the writer) until resolved
        if door is not None:
            payload = door.to_chat(payload)
        # An application key's caller names its end user; a person's key is that person,
        # whatever its requests say (their user quotas cannot be sidestepped, and a
        # canary buckets them as the one user they are).
        user = validation.user_of(payload)
        if key.user is not None:
            user = key.user
        record.user = user  # a request refused from here on is still that user's
        resolution = resolve(
            snapshot,
            key,
            payload,
            model,
            endpoint="embeddings" if endpoint == "embeddings" else "chat",
            sticky=request.session or user or key.id,
            arm=request.arm,
        )
        record.model_alias = resolution.alias.alias
        if resolution.route is not None:
            choice = resolution.route
            release = choice.release
            record.route = choice.route
            record.release_id = release.id
            record.release_arm = choice.arm
            record.prompt_name = release.prompt.name
            record.prompt_version = release.prompt.version
            record.prompt_hash = release.hash  # the composed prompt: version and fragments
            record.variables = choice.variables or None
        if endpoint == "embeddings":
            validation.check_embeddings(resolution.body)
            validation.check_can_embed(resolution.alias)
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
        attempts: list[dict[str, Any]],
        door: Door | None,
        request: dict[str, Any],
        admission: Admission | None = None,
        turn: Turn | None = None,
    ) -> None:
        body = resolution.body
        failover = Failover(resolution.alias, body, t0)
        try:
            if body.get("stream") and endpoint != "embeddings":
                record.stream = True
                frames = StreamFrames(door, request, int(self.now()), record.id, turn)
                await self.streamed.serve(
                    failover, body, record, t0, receive, send, headers, frames
                )
            else:
                await self.plain.serve(
                    failover,
                    endpoint,
                    body,
                    record,
                    receive,
                    send,
                    headers,
                    door,
                    request,
                    admission,
                    turn,
                )
        finally:
            record.attempts = failover.log()
            record.attempt_count = failover.count
            record_signals(record, failover.signals)
            attempts += failover.tried

    def _cut(
        self,
        record: RequestRecord,
        failover: Failover,
        body: dict[str, Any],
        stream: ChatStream | None,
        result: RelayResult | None,
        *,
        gone: bool,
    ) -> bool:
        """The call was cancelled: by the client leaving (True: carry on as ClientGone), or
        by this instance stopping (False: let the cancellation go on). Either way the row
        keeps what the call cost so far."""
        attempt = failover.current
        if attempt is not None:
            failover.abandoned(attempt)
            account_partial(
                record,
                attempt.deployment,
                stream.usage if stream is not None else None,
                body,
                stream.sample if stream is not None else None,
            )
        if gone:
            asyncio.current_task().uncancel()  # type: ignore[union-attr]
            return True
        record.outcome = outcomes.SHUTDOWN_CUT if self.draining else outcomes.GATEWAY_ERROR
        record.error_class = "shutdown_cut" if self.draining else "cancelled"
        if result is None or (result.chunks_out == 0 and stream is None):
            record.status_code = 503  # nothing was sent: the client saw the connection end
        return False

    # ------------------------------------------------------------------ outcomes

    def _refuse(self, record: RequestRecord, exc: errors.PilothouseError) -> None:
        record.status_code = exc.status
        record.error_class = exc.type
        record.error_message = exc.message
        record.outcome = outcomes.of_status(exc.status)

    def _fail(self, record: RequestRecord, exc: UpstreamError, status: int | None = None) -> None:
        # A stream that already sent 200 keeps that status; its outcome says what broke.
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
        record.outcome = outcomes.of_upstream(exc)
        self.metrics.upstream_errors.labels(exc.provider, exc.error_class).inc()


def _route_headers(record: RequestRecord) -> Headers:
    """Which release answered a route call (the eval runner and tests read these)."""
    if record.route is None:
        return []
    return [
        (b"x-pilothouse-release", (record.release_id or "").encode()),
        (b"x-pilothouse-prompt", f"{record.prompt_name}@{record.prompt_version}".encode()),
        (b"x-pilothouse-prompt-hash", (record.prompt_hash or "").encode()),
    ]
