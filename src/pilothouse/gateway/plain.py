"""A plain answer (no `stream`, any front door, and embeddings): choice and retry until a
deployment answers, then the answer in the door's shape, with what it cost.

A client that leaves, or an instance that stops, cuts the call (`GatewayApp._cut`, shared
with the streamed path): the row keeps what it cost so far.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import orjson

from pilothouse.fleet.deployments import Deployment
from pilothouse.fleet.failover import Failover, bounded
from pilothouse.gateway import quota_stage
from pilothouse.gateway.accounting import account
from pilothouse.gateway.client_watch import WATCH_AFTER_SECONDS, ClientWatch
from pilothouse.gateway.doors.door import Door
from pilothouse.gateway.doors.stored import Turn
from pilothouse.gateway.http_io import ClientGone, Headers, Receive, Send, send_json
from pilothouse.gateway.streamed import Cut
from pilothouse.policy.quota_gate import Admission, QuotaGate
from pilothouse.providers.types import UpstreamError
from pilothouse.telemetry.request_log import RequestRecord


class PlainAnswer:
    """Serves the plain calls of one gateway; `now`, `quotas` and `cut` are the gateway's."""

    def __init__(self, now: Callable[[], float], quotas: QuotaGate | None, cut: Cut):
        self.now = now
        self.quotas = quotas
        self.cut = cut

    async def serve(
        self,
        failover: Failover,
        endpoint: str,
        body: dict[str, Any],
        record: RequestRecord,
        receive: Receive,
        send: Send,
        headers: Headers,
        door: Door | None,
        request: dict[str, Any],
        admission: Admission | None,
        turn: Turn | None,
    ) -> None:
        watch = ClientWatch(receive, WATCH_AFTER_SECONDS)
        try:
            deployment, result = await self._answer(failover, endpoint, body, record)
        except asyncio.CancelledError:
            if self.cut(record, failover, body, None, None, gone=watch.gone):
                raise ClientGone from None
            raise
        finally:
            watch.detach()
        account(record, deployment, result.usage)
        answer = result.body
        if endpoint != "embeddings":
            record.finish_reason = result.finish_reason
            if door is not None:
                answer = door.answer_json(
                    result, request, request["model"], int(self.now()), record.id
                )
                if turn is not None:
                    kept = orjson.loads(answer)
                    if not await turn.keep(kept):  # before the client can ask for it
                        answer = orjson.dumps(kept)  # it says `store: false` now
        # Before the answer: the caller's next request sees it.
        await quota_stage.settle(self.quotas, admission, record)
        cost = (b"x-pilothouse-cost-usd", f"{record.cost_usd:.8f}".encode())
        await send_json(send, 200, answer, [*headers, cost])

    @staticmethod
    async def _answer(
        failover: Failover, endpoint: str, body: dict[str, Any], record: RequestRecord
    ) -> tuple[Deployment, Any]:
        """Choice and retry: one loop around the one send, until a deployment answers or
        `failover.next()` raises the request's error."""
        while True:
            attempt = failover.next()
            deployment = attempt.deployment
            record.provider = deployment.provider_name
            record.provider_model = deployment.provider_model
            provider, model = deployment.provider, deployment.provider_model
            try:
                if endpoint == "embeddings":
                    result: Any = await bounded(attempt, provider.embeddings(body, model))
                    answered = failover.answered(attempt, None, None)
                else:
                    result = await bounded(attempt, provider.chat(body, model))
                    answered = failover.answered(attempt, result.sample, result.finish_reason)
            except UpstreamError as exc:
                failover.failed(attempt, exc)  # raises what another deployment would repeat
                continue
            if answered:
                return deployment, result
