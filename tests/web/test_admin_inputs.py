"""The admin API is as strict as /v1: every error JSON with a type and a message, every
query value and body field checked and bounded (in-process tier, real SQLite)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from inprocess import CONFIG, InProcess

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("since=99999999999d", "since"),
        ("since=%C2%B2m", "since"),  # a superscript two is a digit to str.isdigit
        ("status=99999999999999999999", "status"),
        ("status=abc", "status"),
        ("key=%00", "key"),
        ("key=" + "k" * 300, "key"),
        ("limit=0", "limit"),
        ("outcome=fine", "outcome"),
    ],
)
async def test_bad_query_values_are_400s_naming_the_parameter(
    tmp_path: Path, query: str, field: str
) -> None:
    async with InProcess.start(tmp_path) as gw:
        response = await gw.client.get(f"/api/requests?{query}", headers=gw.admin)
        assert response.status_code == 400, response.text
        error = response.json()["error"]
        assert error["type"] == "invalid_request_error" and error["field"] == field


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "a\x00b"}, "name"),
        ({"name": "n" * 201}, "name"),
        ({"name": 5}, "name"),
        ({"name": "ok", "teem": "typo"}, "teem"),
        ({"name": "ok", "models": ["nope"]}, "models"),
        ({"name": "ok", "expires_at": "tomorrow"}, "expires_at"),
    ],
)
async def test_bad_body_fields_are_400s_naming_the_field(
    tmp_path: Path, body: dict[str, Any], field: str
) -> None:
    async with InProcess.start(tmp_path) as gw:
        response = await gw.client.post("/api/keys", json=body, headers=gw.admin)
        assert response.status_code == 400, response.text
        assert response.json()["error"]["field"] == field


async def test_bodies_that_are_not_json_objects_are_refused_clearly(tmp_path: Path) -> None:
    async with InProcess.start(tmp_path) as gw:
        for raw, words in [(b"{", "not valid JSON"), (b"[1]", "JSON object"), (b"", "empty")]:
            response = await gw.client.post("/api/keys", content=raw, headers=gw.admin)
            assert response.status_code == 400 and words in response.json()["error"]["message"]


async def test_a_body_over_the_limit_is_413(tmp_path: Path) -> None:
    async with InProcess.start(tmp_path) as gw:
        huge = b'{"name": "' + b"x" * (33 * 1024 * 1024) + b'"}'
        response = await gw.client.post("/api/keys", content=huge, headers=gw.admin)
        assert response.status_code == 413
        assert response.json()["error"]["type"] == "request_too_large"


async def test_unknown_paths_wrong_methods_and_bad_path_values_answer_json(
    tmp_path: Path,
) -> None:
    async with InProcess.start(tmp_path) as gw:
        missing = await gw.client.get("/api/nothing-here", headers=gw.admin)
        assert missing.status_code == 404 and missing.json()["error"]["type"] == "not_found_error"
        wrong = await gw.client.delete("/api/keys", headers=gw.admin)
        assert wrong.status_code == 405 and "GET" in wrong.headers["allow"]
        assert wrong.json()["error"]["type"] == "invalid_request_error"
        nul = await gw.client.get("/api/prompts/a%00b", headers=gw.admin)
        assert nul.status_code == 400 and nul.json()["error"]["field"] == "name"


async def test_a_body_shorter_than_its_content_length_times_out_on_both_doors(
    tmp_path: Path,
) -> None:
    config = CONFIG + "gateway: {body_read_timeout_seconds: 0.3}\n"
    async with InProcess.start(tmp_path, config) as gw:
        for path in ("/v1/chat/completions", "/api/keys"):
            sent: list[dict[str, Any]] = []
            first = True

            async def receive() -> dict[str, Any]:
                nonlocal first
                if first:
                    first = False
                    return {"type": "http.request", "body": b'{"mod', "more_body": True}
                await asyncio.sleep(3600)  # the rest never comes
                raise AssertionError

            async def send(message: dict[str, Any], sent: list[dict[str, Any]] = sent) -> None:
                sent.append(message)

            token = gw.key if path.startswith("/v1") else "pha-inprocess-admin"
            scope = {
                "type": "http",
                "method": "POST",
                "path": path,
                "query_string": b"",
                "headers": [
                    (b"authorization", f"Bearer {token}".encode()),
                    (b"content-length", b"500"),
                    (b"content-type", b"application/json"),
                ],
            }
            await asyncio.wait_for(gw.server(scope, receive, send), 5)
            assert sent[0]["status"] == 408, (path, sent)
