"""The wedge of issue 10, end to end, with two instances on one database (SQLite file;
PostgreSQL with Redis): deleting the label of a fragment that a live prompt and release
include is refused (409, naming them); forced, it is committed and answered as such, the
route keeps serving its frozen release, readers get a clear error, and keys, other routes
and promotions keep moving on both instances. A damaged row quarantines its route (a
clear 503) while everything else is served, on both instances and after a restart."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from harness import Gateway, Simulator, gateway_config, start_gateway

TRIAGE = {
    "variables": {"ticket": {}},
    "messages": [
        {"role": "system", "content": "Sort. {{> house-style}}"},
        {"role": "user", "content": "{{ticket}}"},
    ],
}
OTHER = {"variables": {"q": {}}, "messages": [{"role": "user", "content": "Q: {{q}}"}]}


def call(gw: Gateway, key: str, route: str, **variables: str) -> httpx.Response:
    body = {"model": f"route:{route}", "messages": [], "pilothouse": {"variables": variables}}
    return httpx.post(
        gw.url + "/v1/chat/completions",
        json=body,
        headers={"Authorization": f"Bearer {key}"},
        timeout=30,
    )


def within_a_second(check: Callable[[], bool], what: str) -> None:
    started = time.monotonic()
    while not check():
        assert time.monotonic() - started < 1.0, what
        time.sleep(0.02)


def support(gw: Gateway, key: str) -> httpx.Response:
    return call(gw, key, "support", ticket="REFUND please")


def search(gw: Gateway, key: str) -> httpx.Response:
    return call(gw, key, "search", q="hi")


@pytest.mark.parametrize("shared", ["sqlite", "postgresql+redis"])
def test_the_wedge_is_refused_forced_through_safely_and_damage_is_quarantined(
    simulator: Simulator, tmp_path: Path, shared: str, request: pytest.FixtureRequest
) -> None:
    env: dict[str, str] = {}
    if shared == "sqlite":
        url = f"sqlite:///{tmp_path / 'shared.db'}"
    else:
        url = request.getfixturevalue("postgres_url")
        env["PILOTHOUSE_REDIS_URL"] = request.getfixturevalue("redis_url")
    config = gateway_config(simulator)
    first = start_gateway(config, url, tmp_path / "a", env)
    second = start_gateway(config, url, tmp_path / "b", env)
    gateways = [first, second]
    try:
        admin = first.admin
        admin.post(
            "/api/prompts/house-style/versions",
            json={"text": "Be brief.", "labels": ["production"]},
        )
        admin.post("/api/prompts/triage/versions", json={**TRIAGE, "labels": ["production"]})
        admin.post("/api/prompts/other/versions", json={**OTHER, "labels": ["production"]})
        release = admin.post(
            "/api/routes/support/promote", json={"prompt": "triage@production", "model": "fast"}
        ).json()
        assert (
            admin.post(
                "/api/routes/search/promote", json={"prompt": "other@1", "model": "fast"}
            ).status_code
            == 201
        )
        key = first.create_key(name="app")
        for gw in gateways:
            within_a_second(lambda gw=gw: support(gw, key).status_code == 200, "support serves")
            assert search(gw, key).status_code == 200

        # 1. Refused, naming the dependents; nothing changes.
        refused = second.admin.request(
            "DELETE", "/api/prompts/house-style/labels/production", json={"reason": "cleanup"}
        )
        assert refused.status_code == 409, refused.text
        error = refused.json()["error"]
        assert error["code"] == "would_break_dependents"
        assert [d["name"] for d in error["dependents"]] == ["triage"]
        assert [r["name"] for r in error["routes_unaffected"]] == ["support"]
        assert admin.get("/api/prompts/triage").status_code == 200

        # 2. Forced through: the write answers its own outcome, and nothing wedges.
        forced = second.admin.request(
            "DELETE",
            "/api/prompts/house-style/labels/production",
            json={"reason": "moving to tone", "force": True},
        )
        assert forced.status_code == 200 and forced.json()["forced"] is True, forced.text
        for gw in gateways:
            served = support(gw, key)
            assert served.status_code == 200  # frozen: the route is not affected
            assert served.headers["x-pilothouse-release"] == release["id"]
            assert served.headers["x-pilothouse-prompt-hash"] == release["prompt_hash"]
            read = gw.admin.get("/api/prompts/triage")
            assert read.status_code == 409  # every instance reads the store as it is now
            assert "include {{> house-style@production}}" in read.json()["error"]["message"]
        again = admin.post(
            "/api/routes/support/promote", json={"prompt": "triage@production", "model": "fast"}
        )
        assert again.status_code == 409 and "cannot be composed" in again.text

        # 3. Keys and other routes keep moving on both instances.
        assert (
            first.admin.post("/api/keys/app/disable", json={"reason": "rotate"}).status_code == 200
        )
        within_a_second(lambda: search(second, key).status_code == 401, "second obeys the disable")
        fresh = second.create_key(name="fresh")
        within_a_second(lambda: search(first, fresh).status_code == 200, "first knows the new key")
        admin.post(
            "/api/prompts/other/versions",
            json={**OTHER, "messages": [{"role": "user", "content": "Q2: {{q}}"}]},
        )
        promoted = second.admin.post(
            "/api/routes/search/promote", json={"prompt": "other@2", "model": "fast"}
        )
        assert promoted.status_code == 201
        within_a_second(
            lambda: (
                search(first, fresh).headers.get("x-pilothouse-release") == promoted.json()["id"]
            ),
            "first serves the new search release",
        )

        # 4. A damaged row: the release's frozen fragment version is gone.
        engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
        with engine.begin() as conn:
            conn.execute(sa.text("DELETE FROM prompt_versions WHERE prompt_name = 'house-style'"))
            conn.execute(sa.text("UPDATE config_version SET version = version + 1"))
        engine.dispose()
        for gw in gateways:
            within_a_second(lambda gw=gw: support(gw, fresh).status_code == 503, "quarantined")
            error = support(gw, fresh).json()["error"]
            assert error["code"] == "route_quarantined"
            assert "fragment house-style@1 is not in the store" in error["message"]
            assert search(gw, fresh).status_code == 200
            metrics = httpx.get(gw.url + "/metrics").text
            assert 'pilothouse_quarantined_items{kind="release"} 1.0' in metrics
        made = first.admin.post("/api/keys", json={"name": "after-damage"})
        assert made.status_code == 201  # an admin write answers its own outcome
    finally:
        first.stop()
        second.stop()

    # 5. A restart starts, and serves everything but the damaged route.
    restarted = start_gateway(config, url, tmp_path / "a", env)
    try:
        assert support(restarted, fresh).status_code == 503
        assert search(restarted, fresh).status_code == 200
        assert restarted.admin.get("/api/routes/support").status_code == 200
    finally:
        restarted.stop()
