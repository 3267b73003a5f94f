"""Concurrent writes through two gateway instances on one database: pushes, label moves and
promotions never answer 5xx, no version is lost or duplicated, and the audit trail's
before/after values chain exactly; If-Match turns a lost update into a 409 with the current
state (PostgreSQL, and SQLite sharing one file)."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from harness import ADMIN_TOKEN, Gateway, Simulator, gateway_config, start_gateway

WRITERS = 20


@pytest.fixture(params=["postgresql", "sqlite"])
def pair(
    request: pytest.FixtureRequest, simulator: Simulator, tmp_path: Path
) -> Iterator[tuple[Gateway, Gateway]]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'shared.db'}"
    else:
        url = request.getfixturevalue("postgres_url")
    first = start_gateway(gateway_config(simulator), url, tmp_path / "a")
    second = start_gateway(gateway_config(simulator), url, tmp_path / "b")
    yield first, second
    first.stop()
    second.stop()


def at_once(count: int, call: Callable[[int], httpx.Response]) -> list[httpx.Response]:
    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(call, range(count)))


def client(gw: Gateway) -> httpx.Client:
    return httpx.Client(
        base_url=gw.url, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=60
    )


def chained(entries: list[dict[str, Any]], key: str) -> None:
    """Each entry's `before` is the previous entry's `after` (oldest first)."""
    for earlier, later in itertools.pairwise(entries):
        assert later["before"][key] == earlier["after"][key], (earlier, later)


def test_concurrent_pushes_label_moves_and_promotions(pair: tuple[Gateway, Gateway]) -> None:
    clients = [client(gw) for gw in pair]
    try:

        def push(i: int) -> httpx.Response:
            body = {"text": f"Version from writer {i}.", "labels": ["production"]}
            return clients[i % 2].post("/api/prompts/busy/versions", json=body)

        pushed = at_once(WRITERS, push)
        assert [r.status_code for r in pushed] == [201] * WRITERS, [r.text for r in pushed]
        versions = clients[0].get("/api/prompts/busy/versions").json()["data"]
        assert [v["version"] for v in versions] == list(range(1, WRITERS + 1))
        assert len({v["hash"] for v in versions}) == WRITERS  # none lost, none twice
        assert {r.json()["version"] for r in pushed} == set(range(1, WRITERS + 1))

        def move(i: int) -> httpx.Response:
            body = {"version": i + 1, "reason": f"move {i}"}
            return clients[i % 2].post("/api/prompts/busy/labels/staging", json=body)

        moved = at_once(WRITERS, move)
        assert [r.status_code for r in moved] == [200] * WRITERS, [r.text for r in moved]
        history = clients[1].get("/api/prompts/busy/history").json()["data"][::-1]
        staging = [
            e for e in history if e["action"] == "prompt.label" and e["after"]["label"] == "staging"
        ]
        assert len(staging) == WRITERS and staging[0]["before"]["version"] is None
        chained(staging, "version")
        production = [
            e
            for e in history
            if e["action"] == "prompt.label" and e["after"]["label"] == "production"
        ]
        assert len(production) == WRITERS
        chained(production, "version")
        final = clients[0].get("/api/prompts/busy", params={"label": "staging"}).json()
        assert final["version"] == staging[-1]["after"]["version"]

        qa = {"variables": {"q": {}}, "messages": [{"role": "user", "content": "{{q}}"}]}
        assert clients[0].post("/api/prompts/qa/versions", json=qa).status_code == 201

        def promote(i: int) -> httpx.Response:
            body = {"prompt": "qa@1", "model": "fast", "params": {"seed": i}}
            return clients[i % 2].post("/api/routes/concurrent/promote", json=body)

        promoted = at_once(WRITERS, promote)
        assert [r.status_code for r in promoted] == [201] * WRITERS, [r.text for r in promoted]
        events = clients[0].get("/api/routes/concurrent/history").json()["data"][::-1]
        assert [e["kind"] for e in events] == ["promote"] * WRITERS
        for earlier, later in itertools.pairwise(events):
            assert later["previous_release_id"] == earlier["release"]["id"]
    finally:
        for c in clients:
            c.close()


def test_if_match_turns_a_lost_update_into_a_409_with_the_current_state(
    pair: tuple[Gateway, Gateway],
) -> None:
    clients = [client(gw) for gw in pair]
    try:
        for text in ("one", "two", "three"):
            body = {"text": text, "labels": ["production"] if text == "one" else None}
            assert clients[0].post("/api/prompts/locked/versions", json=body).status_code == 201

        def move(i: int) -> httpx.Response:
            return clients[i % 2].post(
                "/api/prompts/locked/labels/production",
                json={"version": 2 + i % 2, "reason": "race"},
                headers={"If-Match": '"1"'},
            )

        results = at_once(2, move)
        assert sorted(r.status_code for r in results) == [200, 409], [r.text for r in results]
        lost = next(r for r in results if r.status_code == 409).json()["error"]
        won = next(r for r in results if r.status_code == 200).json()
        assert lost["code"] == "if_match_failed"
        assert lost["current"] == {
            "name": "locked",
            "label": "production",
            "version": won["version"],
        }

        route = clients[1].post(
            "/api/routes/guarded/promote", json={"prompt": "locked@1", "model": "fast"}
        )
        assert route.status_code == 400  # a fragment is not a release: checked before locking
        qa = {"variables": {}, "messages": [{"role": "user", "content": "hi"}]}
        clients[0].post("/api/prompts/hi/versions", json=qa)
        assert (
            clients[0]
            .post("/api/routes/guarded/promote", json={"prompt": "hi@1", "model": "fast"})
            .status_code
            == 201
        )
        shown = clients[1].get("/api/routes/guarded")
        etag = shown.headers["etag"]
        ok = clients[0].post(
            "/api/routes/guarded/canary",
            json={"prompt": "hi@1", "model": "smart", "weight": 5},
            headers={"If-Match": etag},
        )
        assert ok.status_code == 200
        stale = clients[1].post(
            "/api/routes/guarded/rollback", json={"reason": "x"}, headers={"If-Match": etag}
        )
        assert stale.status_code == 409 and stale.json()["error"]["code"] == "if_match_failed"
        assert stale.json()["error"]["current"]["canary"] == ok.json()["canary"]["id"]
    finally:
        for c in clients:
            c.close()
