"""The front doors where a scripted provider shows what the simulator cannot: a stream cut
mid-way ends in the door's own error events, a stream that fails before content is
answered by the next deployment in the door's shapes; and what the gateway refuses before
any upstream call (unserved paths, embeddings from an alias that cannot embed, an
unknown alias) is counted and logged as the caller's error, never as an upstream one."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import orjson
import pytest

from inprocess import CONFIG, InProcess, Scripted
from pilothouse.gateway.http_io import MAX_JSON_DEPTH

pytestmark = pytest.mark.anyio

FLEET = """
providers:
  primary: {type: openai, base_url: "http://primary.invalid/v1"}
  secondary: {type: openai, base_url: "http://secondary.invalid/v1"}
models:
  fast:
    pricing: {input_per_mtok: 1, output_per_mtok: 2}
    deployments:
      - {provider: primary, model: p-small, priority: 1}
      - {provider: secondary, model: s-small, priority: 2}
"""
USAGE = {"prompt_tokens": 10, "completion_tokens": 3, "total_tokens": 13}


def chunk(content: str | None = None, finish: str | None = None) -> dict[str, Any]:
    delta = {"content": content} if content else {}
    return {
        "id": "c1",
        "object": "chat.completion.chunk",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }


def usage_chunk() -> dict[str, Any]:
    return {"id": "c1", "object": "chat.completion.chunk", "choices": [], "usage": USAGE}


def sse_events(body: bytes) -> list[tuple[str, dict[str, Any]]]:
    """(event name, data) of each SSE event with a name; comments skipped."""
    out = []
    for block in body.split(b"\n\n"):
        lines = dict(
            line.split(b": ", 1) for line in block.split(b"\n") if line and b": " in line[:8]
        )
        if b"event" in lines:
            out.append((lines[b"event"].decode(), orjson.loads(lines[b"data"])))
    return out


CHAT_BODY = {"model": "fast", "messages": [{"role": "user", "content": "hi"}]}
RESPONSES_BODY = {"model": "fast", "input": "hi", "stream": True}
MESSAGES_BODY = {
    "model": "fast",
    "max_tokens": 50,
    "stream": True,
    "messages": [{"role": "user", "content": "hi"}],
}


def frames(*chunks: dict[str, Any]) -> bytes:
    """Several chat chunks arriving in one read."""
    return b"".join(b"data: " + orjson.dumps(c) + b"\n\n" for c in chunks)


async def test_a_responses_stream_counts_every_frame_the_client_received(tmp_path: Path) -> None:
    async with InProcess.start(tmp_path) as gw:
        words = ["The", " fox", " and", " the", " dog"]
        gw.script(
            "sim",
            Scripted.sse(
                frames(chunk(words[0]), chunk(words[1]), chunk(words[2])),  # one read
                chunk(words[3]),
                frames(chunk(words[4]), chunk(finish="stop"), usage_chunk()),
                "[DONE]",
            ),
        )
        response = await gw.client.post("/v1/responses", json=RESPONSES_BODY, headers=gw.auth)
        events = sse_events(response.content)
        assert [data["sequence_number"] for _, data in events] == list(range(len(events)))
        deltas = [data["delta"] for name, data in events if name == "response.output_text.delta"]
        assert deltas == words
        assert events[-1][1]["response"]["output"][0]["content"][0]["text"] == "".join(words)
        [row] = await gw.rows(1)
        assert row["chunks_out"] == len(events) == 13 and row["chunks_in"] == 8


@pytest.mark.parametrize("door", ["responses", "messages"])
async def test_a_door_streams_end_goes_out_with_the_upstreams_last_read(
    tmp_path: Path, door: str
) -> None:
    """A door's closing events are written with the read that carried the upstream's
    `[DONE]`: a door stream takes as many writes as the chat stream of the same upstream
    reads (a write is a send and a system call). Whatever the upstream sends after
    `[DONE]` is not the answer's: the chat path relays it as it came, a door drops it."""

    def upstream() -> Scripted:
        last = frames(chunk(finish="stop"), usage_chunk()) + b"data: [DONE]\n\n"
        return Scripted.sse(frames(chunk("Hel"), chunk("lo")), last, chunk(" late"))

    def writes(sent: list[dict[str, Any]]) -> list[bytes]:
        return [m["body"] for m in sent if m["type"] == "http.response.body" and m.get("body")]

    async with InProcess.start(tmp_path) as gw:
        gw.script("sim", upstream(), upstream())
        chat = writes(await gw.drive({**CHAT_BODY, "stream": True}))
        body = RESPONSES_BODY if door == "responses" else MESSAGES_BODY
        ours = writes(await gw.drive(body, path=f"/v1/{door}"))
        assert len(chat) == 3 and b" late" in chat[-1]
        assert len(ours) == 2 and b" late" not in b"".join(ours)
        end = b"event: response.completed" if door == "responses" else b"event: message_stop"
        assert end in ours[-1]
        text = "".join(
            data.get("delta", {}).get("text", "") if door == "messages" else data.get("delta", "")
            for name, data in sse_events(b"".join(ours))
            if name in ("response.output_text.delta", "content_block_delta")
        )
        assert text == "Hello"
        rows = await gw.rows(2)
        assert [row["outcome"] for row in rows] == ["ok", "ok"]


def nested(levels: int) -> Any:
    value: Any = "x"
    for _ in range(levels):
        value = {"a": value}
    return value


@pytest.mark.parametrize("door", ["chat", "responses", "messages"])
async def test_a_body_nested_past_the_limit_is_refused_before_any_upstream_call(
    tmp_path: Path, door: str
) -> None:
    """A body nested deeper than the gateway can write back out is a 400 in the door's
    shape before any upstream call; at the limit it is served, its deepest value echoed
    back (the Responses door's `metadata`, in a stream: where a deeper one used to be a
    500 after the upstream call). The bodies are written with `json`: orjson itself
    cannot write them."""
    bodies = {
        "chat": lambda v: {**CHAT_BODY, "metadata": v},
        "responses": lambda v: {**RESPONSES_BODY, "metadata": v},
        "messages": lambda v: {**MESSAGES_BODY, "metadata": v},
    }
    async with InProcess.start(tmp_path) as gw:
        gw.script("sim", Scripted.sse(chunk("Hi"), chunk(finish="stop"), usage_chunk(), "[DONE]"))
        at_limit = bodies[door](nested(MAX_JSON_DEPTH - 1))  # the body itself is one level
        too_deep = bodies[door](nested(MAX_JSON_DEPTH))
        sent = {**gw.auth, "content-type": "application/json"}
        path = "/v1/chat/completions" if door == "chat" else f"/v1/{door}"
        for body in (at_limit, too_deep):
            body["stream"] = True
        served = await gw.client.post(path, content=json.dumps(at_limit), headers=sent)
        refused = await gw.client.post(path, content=json.dumps(too_deep), headers=sent)
        assert served.status_code == 200, served.text[:300]
        if door == "responses":
            final = sse_events(served.content)[-1][1]["response"]
            assert final["status"] == "completed" and final["metadata"] == at_limit["metadata"]
        assert refused.status_code == 400
        error = refused.json()["error"]
        assert f"more than {MAX_JSON_DEPTH} levels" in error["message"]
        if door == "messages":
            assert refused.json()["type"] == "error"  # Anthropic's shape
        rows = sorted(await gw.rows(2), key=lambda row: row["status_code"])
        assert [(r["status_code"], r["outcome"]) for r in rows] == [
            (200, "ok"),
            (400, "client_error"),
        ]
        assert rows[1]["attempt_count"] == 0  # refused before any upstream call


@pytest.mark.parametrize("door", ["responses", "messages"])
async def test_a_stream_cut_after_content_ends_with_the_doors_error_event(
    tmp_path: Path, door: str
) -> None:
    async with InProcess.start(tmp_path) as gw:
        gw.script("sim", Scripted.sse(chunk("Hel"), b'data: {"id": "c1", "choi'))
        body = RESPONSES_BODY if door == "responses" else MESSAGES_BODY
        response = await gw.client.post(f"/v1/{door}", json=body, headers=gw.auth)
        assert response.status_code == 200
        events = sse_events(response.content)
        names = [name for name, _ in events]
        if door == "responses":
            assert names[-2:] == ["error", "response.failed"]
            assert events[-2][1]["code"] == "truncated"
            failed = events[-1][1]["response"]
            assert failed["status"] == "failed" and failed["error"]["code"] == "truncated"
            assert "response.completed" not in names
            assert [data["sequence_number"] for _, data in events] == list(range(len(events)))
        else:
            assert names[-1] == "error" and "message_stop" not in names
            assert events[-1][1] == {
                "type": "error",
                "error": {"type": "api_error", "message": events[-1][1]["error"]["message"]},
            }
            assert "ended" in events[-1][1]["error"]["message"], events[-1]
        [row] = await gw.rows(1)
        assert row["endpoint"] == door and row["error_class"] == "truncated"
        assert row["outcome"] == "upstream_truncated" and row["status_code"] == 200


@pytest.mark.parametrize("door", ["responses", "messages"])
async def test_a_stream_that_fails_before_content_is_answered_by_the_next_deployment(
    tmp_path: Path, door: str
) -> None:
    async with InProcess.start(tmp_path, FLEET) as gw:
        gw.script("primary", Scripted.json({"error": {"message": "down"}}, status=500))
        gw.script(
            "secondary",
            Scripted.sse(chunk("Hello"), chunk(" there", "stop"), usage_chunk(), "[DONE]"),
        )
        body = RESPONSES_BODY if door == "responses" else MESSAGES_BODY
        response = await gw.client.post(f"/v1/{door}", json=body, headers=gw.auth)
        events = sse_events(response.content)
        names = [name for name, _ in events]
        if door == "responses":
            assert names[0] == "response.created" and names[-1] == "response.completed"
            assert names.count("response.created") == 1
            final = events[-1][1]["response"]
            assert final["output"][0]["content"][0]["text"] == "Hello there"
            assert final["usage"]["input_tokens"] == 10 and final["usage"]["output_tokens"] == 3
        else:
            assert names[0] == "message_start" and names[-1] == "message_stop"
            text = "".join(d["delta"]["text"] for n, d in events if n == "content_block_delta")
            assert text == "Hello there"
            [delta] = [d for n, d in events if n == "message_delta"]
            assert delta["delta"]["stop_reason"] == "end_turn"
            assert delta["usage"]["output_tokens"] == 3
        [row] = await gw.rows(1)
        assert (row["endpoint"], row["provider"], row["attempt_count"]) == (door, "secondary", 2)
        assert row["outcome"] == "ok" and row["prompt_tokens"] == 10
        assert row["ttft_delivered_ms"] is not None


async def test_an_upstream_error_on_messages_is_in_anthropics_shape(tmp_path: Path) -> None:
    async with InProcess.start(tmp_path) as gw:
        gw.script("sim", Scripted.json({"error": {"message": "slow down"}}, status=429))
        body = {**MESSAGES_BODY, "stream": False}
        response = await gw.client.post("/v1/messages", json=body, headers=gw.auth)
        assert response.status_code == 429
        error = response.json()
        assert error["type"] == "error" and error["error"]["type"] == "rate_limit_error"
        [row] = await gw.rows(1)
        assert row["endpoint"] == "messages" and row["error_class"] == "rate_limited"


UNSERVED = [
    ("POST", "/v1/v1/chat/completions", 404, "doubled_v1", "/v1 twice"),
    ("POST", "/v1/responses/resp_123/cancel", 404, "stored_responses", "nothing to cancel"),
    ("GET", "/v1/responses/resp_123/items", 404, "stored_responses", "input_items"),
    ("POST", "/v1/messages/count_tokens", 404, "count_tokens", "not supported"),
    ("POST", "/v1/assistants", 404, "other", "this gateway serves"),
    ("GET", "/v1/responses", 405, "wrong_method", "takes POST"),
]


async def test_unserved_paths_are_counted_logged_with_the_key_and_answered_cleanly(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="pilothouse.gateway")
    async with InProcess.start(tmp_path) as gw:
        for method, path, status, kind, words in UNSERVED:
            response = await gw.client.request(method, path, json={}, headers=gw.auth)
            assert response.status_code == status, (path, response.text)
            error = response.json()["error"]
            assert words in error["message"], (path, error)
            if kind == "count_tokens":  # only the anthropic SDK calls it: its shape
                assert response.json()["type"] == "error"
                assert error["type"] == "not_found_error"
            else:
                assert set(error) >= {"message", "type", "param", "code"}
        metrics = (await gw.client.get("/metrics")).text
        for kind, count in {"doubled_v1": 1, "stored_responses": 2, "count_tokens": 1}.items():
            line = f'pilothouse_unserved_requests_total{{path_kind="{kind}"}} {count}.0'
            assert line in metrics
        assert "resp_123" not in metrics and "assistants" not in metrics
        logged = [r for r in caplog.records if r.getMessage().startswith("unserved request")]
        assert len(logged) == len(UNSERVED)
        key_id = (await gw.client.get("/api/keys", headers=gw.admin)).json()["data"][0]["id"]
        assert {getattr(r, "key_id", None) for r in logged} == {key_id}
        assert not any(r.levelno > logging.DEBUG for r in logged)


async def test_embeddings_from_an_alias_that_cannot_embed_is_the_callers_error(
    tmp_path: Path,
) -> None:
    async with InProcess.start(tmp_path, CONFIG) as gw:
        response = await gw.client.post(
            "/v1/embeddings", json={"model": "claude", "input": "hi"}, headers=gw.auth
        )
        assert response.status_code == 400
        assert "cannot embed" in response.json()["error"]["message"]
        assert response.json()["error"]["code"] == "model_cannot_embed"
        assert not gw.transports["claude-api"].requests
        [row] = await gw.rows(1)
        assert row["outcome"] == "client_error" and row["error_class"] == "invalid_request_error"
        assert row["attempt_count"] == 0 and row["model_alias"] == "claude"
        metrics = (await gw.client.get("/metrics")).text
        assert "pilothouse_upstream_errors_total{" not in metrics


async def test_an_unknown_alias_is_logged_as_requested_and_never_a_metrics_label(
    tmp_path: Path,
) -> None:
    async with InProcess.start(tmp_path) as gw:
        for path, body in [
            ("/v1/chat/completions", {"messages": [{"role": "user", "content": "hi"}]}),
            ("/v1/responses", {"input": "hi"}),
        ]:
            response = await gw.client.post(
                path, json={"model": "gpt-typo-" + "x" * 300, **body}, headers=gw.auth
            )
            assert response.status_code == 404
            assert response.json()["error"]["code"] == "model_not_found"
        rows = await gw.rows(2)
        for row in rows:
            assert row["model_alias"].startswith("gpt-typo-xxx")  # as requested, cut to fit
            assert len(row["model_alias"]) <= 200
            assert row["outcome"] == "client_error" and row["error_class"] == "not_found_error"
            assert row["attempt_count"] == 0 and row["provider"] is None
        metrics = (await gw.client.get("/metrics")).text
        assert "gpt-typo" not in metrics
        assert 'pilothouse_requests_total{endpoint="responses",model=""' in metrics
