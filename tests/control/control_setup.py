"""Shared set-up for the control-plane tests on the in-process tier: prompts, fragments and
routes made through the admin API, a provider that answers every call, and a look at what
the provider was sent."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import sqlalchemy as sa

from inprocess import InProcess, Scripted

TRIAGE = {
    "variables": {"ticket": {}},
    "messages": [
        {"role": "system", "content": "Sort tickets. {{> house-style}}"},
        {"role": "user", "content": "{{ticket}}"},
    ],
}
OTHER = {
    "variables": {"q": {}},
    "messages": [{"role": "user", "content": "Answer: {{q}}"}],
}


def completion(content: str = "queue: billing") -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1,
        "model": "sim-small",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 10, "completion_tokens": 3, "total_tokens": 13},
    }


def answer_everything(gw: InProcess) -> None:
    gw.transports["sim"].default = Scripted.json(completion())


async def push(gw: InProcess, name: str, body: dict[str, Any], **extra: Any) -> httpx.Response:
    response = await gw.client.post(
        f"/api/prompts/{name}/versions", json={**body, **extra}, headers=gw.admin
    )
    return response


async def promote(gw: InProcess, route: str, prompt: str, **extra: Any) -> httpx.Response:
    body = {"prompt": prompt, "model": "fast", **extra}
    return await gw.client.post(f"/api/routes/{route}/promote", json=body, headers=gw.admin)


async def standard(gw: InProcess) -> dict[str, Any]:
    """house-style (production v1), triage including it, other (no includes); route
    `support` on triage, route `search` on other. Returns both releases."""
    answer_everything(gw)
    assert (
        await push(gw, "house-style", {"text": "Be brief."}, labels=["production"])
    ).status_code == 201
    assert (await push(gw, "triage", TRIAGE, labels=["production"])).status_code == 201
    assert (await push(gw, "other", OTHER, labels=["production"])).status_code == 201
    support = await promote(gw, "support", "triage@production")
    search = await promote(gw, "search", "other@1")
    assert support.status_code == 201 and search.status_code == 201, (support.text, search.text)
    return {"support": support.json(), "search": search.json()}


async def call_route(
    gw: InProcess, route: str, key: str | None = None, **variables: Any
) -> httpx.Response:
    body = {"model": f"route:{route}", "messages": [], "pilothouse": {"variables": variables}}
    headers = {"Authorization": f"Bearer {key or gw.key}"}
    return await gw.client.post("/v1/chat/completions", json=body, headers=headers)


def last_sent(gw: InProcess) -> list[dict[str, Any]]:
    """The messages the provider received last."""
    return list(gw.transports["sim"].requests[-1][1]["messages"])


@contextmanager
def statements(engine: sa.Engine) -> Iterator[list[tuple[str, Any]]]:
    """Every SQL statement `engine` runs meanwhile, with its parameters."""
    seen: list[tuple[str, Any]] = []

    def record(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        seen.append((statement, parameters))

    sa.event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        sa.event.remove(engine, "before_cursor_execute", record)
