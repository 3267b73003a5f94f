"""The control plane never wedges: each kind of row is damaged in SQL, and the item it
belongs to answers a clear error while every other key and route keeps working, admin
writes answer their own outcome, the metric counts it, and a restart still starts
(in-process tier, real SQLite)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from control_setup import answer_everything, call_route, standard

from inprocess import ADMIN_TOKEN, InProcess
from pilothouse.policy import admin_token
from pilothouse.store import open_store

pytestmark = pytest.mark.anyio


def damage(data_dir: Path, *statements: str, **params: Any) -> None:
    """Run SQL against the store behind the server's back, then bump the version."""
    engine = sa.create_engine(f"sqlite:///{data_dir / 'pilothouse.db'}")
    with engine.begin() as conn:
        for statement in statements:
            conn.execute(sa.text(statement), params)
        conn.execute(sa.text("UPDATE config_version SET version = version + 1"))
    engine.dispose()


async def metric(gw: InProcess, kind: str) -> float:
    text = (await gw.client.get("/metrics")).text
    line = f'pilothouse_quarantined_items{{kind="{kind}"}}'
    return float(next(row.split()[-1] for row in text.splitlines() if row.startswith(line)))


VARIABLES = {"search": {"q": "hello"}, "support": {"ticket": "Card declined"}}


async def still_serving(gw: InProcess, *, routes: tuple[str, ...] = ("search",)) -> None:
    """Other routes, plain models, keys and admin writes all work."""
    for route in routes:
        response = await call_route(gw, route, **VARIABLES[route])
        assert response.status_code == 200, response.text
    assert (await gw.chat()).status_code == 200
    created = await gw.client.post("/api/keys", json={"name": "after"}, headers=gw.admin)
    assert created.status_code == 201, created.text
    fresh = created.json()["secret"]
    await gw.server.refresh()
    assert (await gw.chat(headers=None)).status_code == 200
    new_key = await gw.client.post(
        "/v1/chat/completions",
        json={"model": "fast", "messages": [{"role": "user", "content": "hi"}]},
        headers={"Authorization": f"Bearer {fresh}"},
    )
    assert new_key.status_code == 200


CASES = {
    "release row (unreadable params)": (
        ["UPDATE releases SET params = 'not json{' WHERE route = 'support'"],
        "release",
        "cannot be read",
    ),
    "prompt version a release froze (deleted)": (
        ["DELETE FROM prompt_versions WHERE prompt_name = 'house-style'"],
        "release",
        "fragment house-style@1 is not in the store",
    ),
    "prompt version content (unreadable)": (
        ["UPDATE prompt_versions SET content = '{{{' WHERE prompt_name = 'triage'"],
        "release",
        "cannot be read",
    ),
    "route row (names a release that does not exist)": (
        ["UPDATE routes SET active_release_id = 'rel_gone' WHERE name = 'support'"],
        "release",
        "release rel_gone is not in the store",
    ),
    "route row (unreadable timestamp)": (
        ["UPDATE routes SET created_at = 'yesterday-ish' WHERE name = 'support'"],
        "route",
        "cannot be read",
    ),
}


@pytest.mark.parametrize("case", list(CASES))
async def test_a_damaged_row_quarantines_its_route_and_nothing_else(
    tmp_path: Path, case: str
) -> None:
    statements, kind, words = CASES[case]
    async with InProcess.start(tmp_path) as gw:
        await standard(gw)
        assert (await call_route(gw, "support", ticket="x")).status_code == 200
        damage(tmp_path, *statements)
        await gw.server.refresh()
        broken = await call_route(gw, "support", ticket="x")
        assert broken.status_code == 503, broken.text
        error = broken.json()["error"]
        assert error["code"] == "route_quarantined" and words in error["message"]
        assert "support" in error["message"]
        assert await metric(gw, kind) == 1
        await still_serving(gw)
        shown = await gw.client.get("/api/routes", headers=gw.admin)
        assert shown.status_code == 200  # the control plane still lists routes
    async with InProcess.start(tmp_path) as again:  # a restart starts, and serves the rest
        answer_everything(again)
        assert (await call_route(again, "support", ticket="x")).status_code == 503
        await still_serving(again)


async def test_a_damaged_key_answers_its_own_error_and_every_other_key_works(
    tmp_path: Path,
) -> None:
    async with InProcess.start(tmp_path) as gw:
        await standard(gw)
        made = await gw.client.post("/api/keys", json={"name": "victim"}, headers=gw.admin)
        victim = made.json()
        damage(tmp_path, "UPDATE api_keys SET models = '[1, 2' WHERE id = :id", id=victim["id"])
        await gw.server.refresh()
        refused = await gw.client.post(
            "/v1/chat/completions",
            json={"model": "fast", "messages": [{"role": "user", "content": "hi"}]},
            headers={"Authorization": f"Bearer {victim['secret']}"},
        )
        assert refused.status_code == 503
        assert f"API key {victim['id']} cannot be loaded" in refused.json()["error"]["message"]
        assert await metric(gw, "key") == 1
        listed = await gw.client.get("/api/keys", headers=gw.admin)
        assert listed.status_code == 200 and victim["id"] in listed.text
        await still_serving(gw, routes=("search", "support"))
    async with InProcess.start(tmp_path) as again:
        answer_everything(again)
        await still_serving(again, routes=("search", "support"))


async def test_a_damaged_admin_token_setting_is_reported_and_can_be_reset(
    tmp_path: Path,
) -> None:
    async with InProcess.start(tmp_path) as gw:
        await standard(gw)
        damage(tmp_path, "UPDATE settings SET value = 'garbage' WHERE name = 'admin_token_sha256'")
        await gw.server.refresh()
        assert await metric(gw, "setting") == 1
        assert (await gw.client.get("/api/keys", headers=gw.admin)).status_code == 401
        assert (await call_route(gw, "support", ticket="x")).status_code == 200
        assert (await gw.chat()).status_code == 200
        store = open_store(f"sqlite:///{tmp_path / 'pilothouse.db'}")
        admin_token.reset(store, ADMIN_TOKEN, actor="test", reason="repair")
        store.close()
        await gw.server.refresh()
        assert (await gw.client.get("/api/keys", headers=gw.admin)).status_code == 200
        assert await metric(gw, "setting") == 0


async def test_a_label_pointing_nowhere_is_a_clear_read_error_and_routes_keep_serving(
    tmp_path: Path,
) -> None:
    async with InProcess.start(tmp_path) as gw:
        await standard(gw)
        damage(
            tmp_path,
            "UPDATE prompt_labels SET version = 99 WHERE prompt_name = 'house-style'",
        )
        await gw.server.refresh()
        read = await gw.client.get("/api/prompts/triage", headers=gw.admin)
        assert read.status_code == 409
        assert "include {{> house-style@production}}" in read.json()["error"]["message"]
        assert (await gw.client.get("/api/prompts/other", headers=gw.admin)).status_code == 200
        assert (await call_route(gw, "support", ticket="x")).status_code == 200  # frozen
        await still_serving(gw)
