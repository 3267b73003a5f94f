"""Scoped keys: an application key reads only what it was given. A key limited to one route
reads that route's prompt (and the fragments its release froze) and nothing else; audit
history, routes, datasets and eval runs need the admin token or a scope; pinning a
release arm needs a scope (in-process tier)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from control_setup import call_route, push, standard

from inprocess import InProcess

pytestmark = pytest.mark.anyio


async def key(gw: InProcess, **body: Any) -> dict[str, str]:
    response = await gw.client.post("/api/keys", json={"name": "scoped", **body}, headers=gw.admin)
    assert response.status_code == 201, response.text
    await gw.server.refresh()
    return {"Authorization": f"Bearer {response.json()['secret']}"}


async def test_a_key_limited_to_one_route_reads_that_routes_prompt_and_nothing_else(
    tmp_path: Path,
) -> None:
    async with InProcess.start(tmp_path) as gw:
        await standard(gw)
        await push(gw, "secret-plan", {"text": "Not for you."}, labels=["production"])
        only = await key(gw, models=["route:support"])
        get = gw.client.get
        assert (await get("/api/prompts/triage", headers=only)).status_code == 200
        assert (await get("/api/prompts/house-style", headers=only)).status_code == 200
        assert (await get("/api/prompts/triage/versions", headers=only)).status_code == 200
        for name in ("other", "secret-plan", "does-not-exist"):
            refused = await get(f"/api/prompts/{name}", headers=only)
            assert refused.status_code == 403, (name, refused.text)
            assert "may not read prompt" in refused.json()["error"]["message"]
        listed = (await get("/api/prompts", headers=only)).json()["data"]
        assert sorted(row["name"] for row in listed) == ["house-style", "triage"]
        for path in (
            "/api/prompts/triage/history",
            "/api/routes",
            "/api/routes/support",
            "/api/routes/support/history",
            "/api/datasets",
            "/api/evals/runs",
        ):
            response = await get(path, headers=only)
            assert response.status_code == 403, (path, response.text)
            assert "scope" in response.json()["error"]["message"]
        assert (await call_route(gw, "support", key=None, ticket="x")).status_code == 200
        narrow = only["Authorization"].removeprefix("Bearer ")
        assert (await call_route(gw, "support", key=narrow, ticket="x")).status_code == 200
        assert (await call_route(gw, "search", key=narrow, q="x")).status_code == 404


async def test_grants_and_scopes_open_exactly_what_they_name(tmp_path: Path) -> None:
    async with InProcess.start(tmp_path) as gw:
        await standard(gw)
        granted = await key(gw, models=["fast"], prompts=["oth*"])
        assert (await gw.client.get("/api/prompts/other", headers=granted)).status_code == 200
        assert (await gw.client.get("/api/prompts/triage", headers=granted)).status_code == 403
        history = await key(gw, models=["fast"], scopes=["history:read"])
        assert (await gw.client.get("/api/prompts/x/history", headers=history)).status_code == 404
        assert (await gw.client.get("/api/routes", headers=history)).status_code == 403
        evals = await key(gw, models=["fast"], scopes=["evals"])
        for path in ("/api/routes", "/api/datasets", "/api/evals/runs", "/api/prompts/triage"):
            assert (await gw.client.get(path, headers=evals)).status_code == 200, path
        assert (await gw.client.get("/api/keys", headers=evals)).status_code == 401
        unrestricted = await key(gw)  # no limits: reads every prompt, as the SDK expects
        assert (await gw.client.get("/api/prompts/triage", headers=unrestricted)).status_code == 200
        assert (await gw.client.get("/api/routes", headers=unrestricted)).status_code == 403
        bad = await gw.client.post(
            "/api/keys", json={"name": "x", "scopes": ["root"]}, headers=gw.admin
        )
        assert bad.status_code == 400 and bad.json()["error"]["field"].startswith("scopes")


async def test_the_change_stream_only_carries_prompts_the_key_may_read(tmp_path: Path) -> None:
    async with InProcess.start(tmp_path) as gw:
        await standard(gw)
        only = await key(gw, models=["route:support"])
        connected, first_event, leave = asyncio.Event(), asyncio.Event(), asyncio.Event()
        frames: list[bytes] = []
        requested: list[bool] = []

        async def receive() -> dict[str, Any]:
            if not requested:
                requested.append(True)
                return {"type": "http.request", "body": b"", "more_body": False}
            await leave.wait()
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            body = message.get("body") or b""
            frames.append(body)
            if b": connected" in body:
                connected.set()
            if b"data:" in body:
                first_event.set()

        scope = {
            "type": "http",
            "method": "GET",
            "path": "/api/prompts/stream",
            "query_string": b"",
            "headers": [(b"authorization", only["Authorization"].encode())],
        }
        stream = asyncio.create_task(gw.server(scope, receive, send))
        await asyncio.wait_for(connected.wait(), 5)
        other_v2 = {"variables": {"q": {}}, "messages": [{"role": "user", "content": "Q2: {{q}}"}]}
        assert (await push(gw, "other", other_v2)).status_code == 201
        assert (await push(gw, "triage-notes", {"text": "unrelated"})).status_code == 201
        moved = await gw.client.post(
            "/api/prompts/house-style/labels/staging", json={"version": 1}, headers=gw.admin
        )
        assert moved.status_code == 200
        await asyncio.wait_for(first_event.wait(), 5)
        leave.set()
        await asyncio.wait_for(stream, 5)
        events = [f for f in frames if b"data:" in f]
        assert b'"name":"house-style"' in events[0] and b'"label":"staging"' in events[0]
        assert not any(b'"name":"other"' in f or b"triage-notes" in f for f in frames)


async def test_pinning_a_release_arm_needs_the_scope(tmp_path: Path) -> None:
    async with InProcess.start(tmp_path) as gw:
        await standard(gw)
        body = {
            "model": "route:support",
            "messages": [],
            "pilothouse": {"variables": {"ticket": "x"}},
        }
        plain = {"Authorization": f"Bearer {gw.key}", "X-Pilothouse-Release": "active"}
        refused = await gw.client.post("/v1/chat/completions", json=body, headers=plain)
        assert refused.status_code == 403
        assert (
            "release:pin"
            in refused.json()["error"]["message"] + str(refused.json()["error"].get("param"))
            or "release:pin" in refused.text
        )
        pinner = await key(gw, scopes=["release:pin"])
        allowed = await gw.client.post(
            "/v1/chat/completions", json=body, headers={**pinner, "X-Pilothouse-Release": "active"}
        )
        assert allowed.status_code == 200 and allowed.headers["x-pilothouse-release"]
