"""Every request's outcome, and its cost up to wherever it ended (in-process tier)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import orjson
import pytest

from inprocess import InProcess, Scripted
from pilothouse.telemetry import outcomes

pytestmark = pytest.mark.anyio

HELLO = [{"role": "user", "content": "Say hello to the whole wide world, twice over."}]


def chunk(content: str | None = None, finish: str | None = None) -> dict[str, Any]:
    delta = {"content": content} if content else {}
    return {
        "id": "c",
        "object": "chat.completion.chunk",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }


def words(n: int) -> list[dict[str, Any]]:
    return [chunk("word ") for _ in range(n)]


def test_the_cli_lists_the_same_outcomes_as_the_server() -> None:
    from pilothouse.cli.logs import OUTCOMES

    assert OUTCOMES == outcomes.ALL


async def test_a_stream_the_provider_cut_is_logged_truncated_with_its_cost(tmp_path: Path) -> None:
    async with InProcess.start(tmp_path) as gw:
        gw.script("sim", Scripted.sse(*words(8), b'data: {"cut'))
        response = await gw.chat(stream=True, messages=HELLO)
        assert response.status_code == 200  # the client was told 200 before the cut
        [row] = await gw.rows(1)
        assert row["outcome"] == outcomes.UPSTREAM_TRUNCATED and row["status_code"] == 200
        # 8 x "word " delivered = 40 characters ~ 10 tokens; the prompt counted from the request
        assert row["completion_tokens"] == 10 and row["prompt_tokens"] > 0
        assert row["usage_estimated"] is True and row["cost_usd"] > 0


async def test_a_broken_frame_mid_stream_is_malformed(tmp_path: Path) -> None:
    async with InProcess.start(tmp_path) as gw:
        gw.script("sim", Scripted.sse(*words(2), b"data: {oops\n\n", "[DONE]"))
        response = await gw.chat(stream=True)
        assert b'"type":"malformed"' in response.content
        [row] = await gw.rows(1)
        assert row["outcome"] == outcomes.UPSTREAM_MALFORMED


@pytest.mark.parametrize(
    ("answer", "status", "outcome"),
    [
        (Scripted(body=b"not json"), 502, outcomes.UPSTREAM_MALFORMED),
        (Scripted.json({"error": {"message": "down"}}, status=500), 502, outcomes.UPSTREAM_ERROR),
        (
            Scripted.json({"error": {"message": "slow down"}}, status=429),
            429,
            outcomes.UPSTREAM_ERROR,
        ),
        # The provider refused the request itself: the client's error, passed through.
        (Scripted.json({"error": {"message": "too long"}}, status=400), 400, outcomes.CLIENT_ERROR),
        # The provider refused our key: our configuration's fault, not the client's.
        (
            Scripted.json({"error": {"message": "bad key"}}, status=401),
            502,
            outcomes.UPSTREAM_ERROR,
        ),
    ],
)
async def test_each_upstream_failure_has_its_outcome(
    tmp_path: Path, answer: Scripted, status: int, outcome: str
) -> None:
    async with InProcess.start(tmp_path) as gw:
        gw.script("sim", answer)
        response = await gw.chat()
        assert response.status_code == status
        [row] = await gw.rows(1)
        assert (row["status_code"], row["outcome"]) == (status, outcome)


async def test_our_refusals_are_client_errors(tmp_path: Path) -> None:
    async with InProcess.start(tmp_path) as gw:
        await gw.client.post("/v1/chat/completions", json={"model": "fast"})
        await gw.client.post("/v1/chat/completions", content=b"{", headers=gw.auth)
        await gw.chat("no-such-model")
        rows = await gw.rows(3)
        assert [r["outcome"] for r in rows] == [outcomes.CLIENT_ERROR] * 3
        assert sorted(r["status_code"] for r in rows) == [400, 401, 404]


async def test_a_fault_of_ours_is_an_openai_error_and_a_gateway_error_row(
    tmp_path: Path,
) -> None:
    async with InProcess.start(tmp_path) as gw:
        gw.script("sim", RuntimeError("a bug"))
        response = await gw.chat()
        assert response.status_code == 500
        error = response.json()["error"]
        assert (
            error["type"] == "internal_error"
            and response.headers["x-request-id"] in error["message"]
        )
        [row] = await gw.rows(1)
        assert (row["status_code"], row["outcome"]) == (500, outcomes.GATEWAY_ERROR)


async def test_a_client_that_leaves_a_stream_keeps_its_cost(tmp_path: Path) -> None:
    async with InProcess.start(tmp_path) as gw:
        stream = Scripted.sse(*words(50), chunk(finish="stop"), "[DONE]")
        stream.chunk_delay_seconds = 0.01
        gw.script("sim", stream)
        sent = await gw.drive(
            {"model": "fast", "messages": HELLO, "stream": True}, leave_after_frames=5
        )
        assert sent[0]["status"] == 200
        [row] = await gw.rows(1)
        assert row["status_code"] == 499 and row["outcome"] == outcomes.CLIENT_CANCELLED
        assert row["completion_tokens"] > 0 and row["prompt_tokens"] > 0
        assert row["usage_estimated"] is True and row["cost_usd"] > 0
        assert row["ttft_delivered_ms"] is not None and row["chunks_out"] >= 4


async def test_a_client_that_leaves_a_plain_request_cancels_the_upstream_call(
    tmp_path: Path,
) -> None:
    async with InProcess.start(tmp_path) as gw:
        slow = Scripted.json({"never": "read"})
        slow.delay_seconds = 30  # the provider is slow to answer
        gw.script("sim", slow)
        task = asyncio.create_task(
            gw.drive({"model": "fast", "messages": HELLO}, leave_after_frames=0)
        )
        done, _ = await asyncio.wait({task}, timeout=5)
        assert done, "the gateway kept waiting for the provider after the client left"
        [row] = await gw.rows(1)
        assert row["outcome"] == outcomes.CLIENT_CANCELLED and row["status_code"] == 499
        assert row["prompt_tokens"] > 0 and row["usage_estimated"] is True


async def test_a_stream_cut_by_the_shutdown_deadline_says_so_and_keeps_its_cost(
    tmp_path: Path,
) -> None:
    async with InProcess.start(tmp_path) as gw:
        stream = Scripted.sse(*words(100), "[DONE]")
        stream.chunk_delay_seconds = 0.01
        gw.script("sim", stream)
        task = asyncio.create_task(gw.drive({"model": "fast", "messages": HELLO, "stream": True}))
        await asyncio.sleep(0.2)  # a few words out
        assert gw.server.gateway is not None
        gw.server.gateway.draining = True
        task.cancel()  # what the server does to requests still running at its deadline
        with pytest.raises(asyncio.CancelledError):
            await task
        [row] = await gw.rows(1)
        assert row["outcome"] == outcomes.SHUTDOWN_CUT and row["status_code"] == 200
        assert row["completion_tokens"] > 0 and row["usage_estimated"] is True


async def test_the_gateway_makes_every_row_id_and_keeps_the_callers_as_a_label(
    tmp_path: Path,
) -> None:
    hostile = ["same", "same", "same", "x" * 300, "id\twith\ttabs", "é-not-ascii", ""]
    async with InProcess.start(tmp_path) as gw:
        gw.transports["sim"].default = Scripted.json(
            {"choices": [{"message": {"content": "ok"}, "finish_reason": "stop"}]}
        )
        ids = []
        for value in hostile:
            response = await gw.client.post(
                "/v1/chat/completions",
                json={"model": "fast", "messages": HELLO},
                headers=[*gw.auth.items(), ("x-request-id", value.encode())],
            )
            assert response.status_code == 200
            ids.append(response.headers["x-request-id"])
        rows = await gw.rows(len(hostile))
        assert len(rows) == len(hostile) == len(set(ids))  # one row per request, always
        assert {r["id"] for r in rows} == set(ids)
        labels = [r["client_request_id"] for r in rows]
        assert labels.count("same") == 3
        assert max(len(label or "") for label in labels) == 128  # kept, bounded
        assert all(label is None or label.isprintable() for label in labels)


async def test_embeddings_and_models_by_id(tmp_path: Path) -> None:
    async with InProcess.start(tmp_path) as gw:
        gw.script(
            "sim", Scripted.json({"data": [{"embedding": [0.1]}], "usage": {"prompt_tokens": 2}})
        )
        response = await gw.client.post(
            "/v1/embeddings", json={"model": "embed", "input": "hi"}, headers=gw.auth
        )
        assert response.status_code == 200
        model = await gw.client.get("/v1/models/fast", headers=gw.auth)
        assert model.json() == {"id": "fast", "object": "model", "created": 0, "owned_by": "sim"}
        missing = await gw.client.get("/v1/models/nope", headers=gw.auth)
        assert missing.status_code == 404 and missing.json()["error"]["code"] == "model_not_found"
        rows = await gw.rows(3)
        [row] = [r for r in rows if r["endpoint"] == "embeddings"]
        assert row["prompt_tokens"] == 2
        assert orjson.loads(orjson.dumps(row))["outcome"] == "ok"
