"""Incremental snapshots (in-process tier, real SQLite): a change re-reads only what it
touched, an admin write answers with the configuration version that includes it and is
served at once by the instance that took it, the consistency check finds and repairs a
change the snapshot missed, and a damaged row in an incremental load is quarantined while
the rest of the change applies."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from control_setup import OTHER, answer_everything, call_route, promote, push, statements

from inprocess import InProcess
from pilothouse.policy import keys as key_policy
from pilothouse.registry import labels
from pilothouse.releases.promotion import Promoter
from pilothouse.snapshot_holder import SnapshotHolder
from pilothouse.store import changes, open_store
from pilothouse.store.changes import Change

pytestmark = pytest.mark.anyio

ROUTES = [f"route-{n}" for n in range(6)]
HEADER = "x-pilothouse-config-version"


def reads_of(seen: list[tuple[str, Any]], names: set[str]) -> list[str]:
    """The statements that read routes or releases beyond the ones named: a read of the
    whole table (no WHERE) or one whose parameters name another route or release."""
    found = []
    for statement, parameters in seen:
        text = " ".join(statement.split())
        if not text.startswith("SELECT") or not ("FROM routes" in text or "FROM releases" in text):
            continue
        values = {str(v) for v in _flat(parameters)}
        if "WHERE" not in text or values & names:
            found.append(f"{text} {parameters}")
    return found


def _flat(parameters: Any) -> Iterator[Any]:
    if isinstance(parameters, dict):
        yield from parameters.values()
    elif isinstance(parameters, list | tuple):
        for item in parameters:
            yield from _flat(item)
    else:
        yield parameters


async def catalogue(gw: InProcess) -> dict[str, str]:
    """Six routes on one prompt; each route's active release id."""
    answer_everything(gw)
    assert (await push(gw, "other", OTHER, labels=["production"])).status_code == 201
    v2 = {**OTHER, "messages": [{"role": "user", "content": "Answer briefly: {{q}}"}]}
    assert (await push(gw, "other", v2)).status_code == 201
    releases = {}
    for route in ROUTES:
        made = await promote(gw, route, "other@1")
        assert made.status_code == 201, made.text
        releases[route] = made.json()["id"]
    return releases


async def test_a_promotion_reads_its_own_route_and_no_other(tmp_path: Path) -> None:
    async with InProcess.start(tmp_path) as gw:
        releases = await catalogue(gw)
        others = {r for r in ROUTES if r != "route-0"} | {
            releases[r] for r in ROUTES if r != "route-0"
        }
        with statements(gw.server.store.engine) as seen:
            promoted = await promote(gw, "route-0", "other@2", reason="v2")
        assert promoted.status_code == 201, promoted.text
        assert reads_of(seen, others) == []
        # The write answered with the version that includes it, already served here.
        with gw.server.store.connect() as conn:
            assert int(promoted.headers[HEADER]) == changes.current(conn)
        assert gw.server.holder is not None
        snapshot = gw.server.holder.current
        assert snapshot.version == int(promoted.headers[HEADER])
        active = snapshot.routes["route-0"].active
        assert active is not None and active.id == promoted.json()["id"]
        assert (await call_route(gw, "route-0", q="x")).headers["x-pilothouse-release"] == (
            promoted.json()["id"]
        )

        # The detector does see a full load, so the assertion above could fail.
        with statements(gw.server.store.engine) as seen:
            await gw.server.holder.refresh(force=True)
        assert reads_of(seen, others) != []


async def test_structural_sharing_keeps_the_untouched_items(tmp_path: Path) -> None:
    async with InProcess.start(tmp_path) as gw:
        await catalogue(gw)
        assert gw.server.holder is not None
        before = gw.server.holder.current
        assert (await promote(gw, "route-1", "other@2")).status_code == 201
        after = gw.server.holder.current
        assert after.routes["route-2"] is before.routes["route-2"]
        assert after.routes["route-1"] is not before.routes["route-1"]
        assert after.keys_by_hash is before.keys_by_hash  # a route change leaves the keys


async def test_the_consistency_check_repairs_a_change_the_snapshot_missed(
    tmp_path: Path,
) -> None:
    async with InProcess.start(tmp_path) as gw:
        await catalogue(gw)
        holder = gw.server.holder
        assert holder is not None
        assert await holder.check() == {}  # nothing to repair yet
        # Another writer disables our key and announces the version naming nothing (a
        # writer that forgot what it touched): the snapshot moves on, the key stays.
        outside = open_store(f"sqlite:///{tmp_path / 'pilothouse.db'}")
        key = key_policy.list_keys(outside)[0]
        key_policy.set_disabled(outside, key.id, True, actor="test")
        with outside.connect() as conn:
            version = changes.current(conn)
        outside.close()
        await holder.receive(Change(version, frozenset()))
        assert holder.current.version == version
        assert (await gw.chat()).status_code == 200  # the missed change is not obeyed

        assert await holder.check() == {"key": [key_policy.secret_hash(gw.key)]}
        assert (await gw.chat()).status_code == 401
        metrics = (await gw.client.get("/metrics")).text
        assert 'pilothouse_config_drift_repaired_total{kind="key"} 1.0' in metrics
        assert await holder.check() == {}  # repaired: the next check finds nothing


async def test_a_damaged_row_in_an_incremental_load_is_quarantined_and_the_rest_applies(
    tmp_path: Path,
) -> None:
    async with InProcess.start(tmp_path) as gw:
        await catalogue(gw)
        holder = gw.server.holder
        assert holder is not None
        # One change touches two routes: route-1 is promoted, route-2's row is damaged.
        outside = open_store(f"sqlite:///{tmp_path / 'pilothouse.db'}")
        promoted = Promoter(outside, gw.server.settings.config.models).promote(
            "route-1", prompt="other@2", model="fast", params={}, reason=None, actor="test"
        )
        with outside.begin() as conn:
            conn.execute(
                sa.text("UPDATE routes SET created_at = 'yesterday-ish' WHERE name = 'route-2'")
            )
            version = changes.bump(conn, ("route", "route-1"), ("route", "route-2"))
        outside.close()
        # The commit listener belongs to the server's store, not this one: the change
        # arrives as another instance's would, on the bus.
        await holder.receive(Change(version - 1, frozenset({("route", "route-1")})))
        await holder.receive(
            Change(version, frozenset({("route", "route-1"), ("route", "route-2")}))
        )
        assert holder.current.version == version

        served = await call_route(gw, "route-1", q="x")
        assert served.status_code == 200 and served.headers["x-pilothouse-release"] == promoted.id
        broken = await call_route(gw, "route-2", q="x")
        assert broken.status_code == 503
        assert "route-2" in broken.json()["error"]["message"]
        assert [(q.kind, q.id) for q in holder.current.quarantined] == [("route", "route-2")]
        assert (await call_route(gw, "route-3", q="x")).status_code == 200
        assert await holder.check() == {}  # the incremental result is what a full load sees


async def test_a_change_with_unknown_items_or_a_gap_loads_in_full(tmp_path: Path) -> None:
    async with InProcess.start(tmp_path) as gw:
        await catalogue(gw)
        holder = gw.server.holder
        assert holder is not None
        outside = open_store(f"sqlite:///{tmp_path / 'pilothouse.db'}")
        key = key_policy.list_keys(outside)[0]
        key_policy.set_disabled(outside, key.id, True, actor="test")
        with outside.connect() as conn:
            disabled = changes.current(conn)
        key_policy.set_disabled(outside, key.id, False, actor="test")
        outside.close()
        # The newer change arrives first: held back until the gap is filled.
        await holder.receive(Change(disabled + 1, frozenset({("key", key.id)})))
        assert holder.current.version == disabled - 1
        await holder.receive(Change.parse(str(disabled)))  # an old-style message: unknown
        assert holder.current.version == disabled + 1
        assert (await gw.chat()).status_code == 200
        metrics = (await gw.client.get("/metrics")).text
        assert 'pilothouse_config_loads_total{mode="full",reason="unknown change"} 1.0' in metrics


async def test_waiting_for_a_configuration_version(tmp_path: Path) -> None:
    async with InProcess.start(tmp_path) as gw:
        made = await gw.client.post("/api/keys", json={"name": "k"}, headers=gw.admin)
        version = int(made.headers[HEADER])
        now = await gw.client.get("/api/config/version", headers=gw.auth)
        assert now.json() == {"version": version}
        reached = await gw.client.get(f"/api/config/version?min={version}&wait=5", headers=gw.admin)
        assert reached.json() == {"version": version, "min": version, "reached": True}
        ahead = await gw.client.get(
            f"/api/config/version?min={version + 1}&wait=0.05", headers=gw.admin
        )
        assert ahead.status_code == 200
        assert ahead.json() == {"version": version, "min": version + 1, "reached": False}
        for query, words in [
            ("min=-1", "`min`"),
            ("min=abc", "`min`"),
            ("min=1&wait=31", "`wait`"),
            ("min=1&wait=nan", "`wait`"),
            ("wait=1", "`wait` needs `min`"),
        ]:
            bad = await gw.client.get(f"/api/config/version?{query}", headers=gw.admin)
            assert bad.status_code == 400, (query, bad.text)
            assert words in bad.json()["error"]["message"], (query, bad.text)
        assert (await gw.client.get("/api/config/version")).status_code == 401


async def test_lists_are_paginated(tmp_path: Path) -> None:
    async with InProcess.start(tmp_path) as gw:
        await catalogue(gw)
        for n in range(4):
            assert await gw.client.post("/api/keys", json={"name": f"k{n}"}, headers=gw.admin)
        for path, field, expected in [
            ("/api/routes", "name", ROUTES),
            ("/api/keys", "name", ["inprocess", "k0", "k1", "k2", "k3"]),
        ]:
            seen: list[str] = []
            after = None
            pages = 0
            while True:
                params: dict[str, Any] = {"limit": 2, **({"after": after} if after else {})}
                page = (await gw.client.get(path, params=params, headers=gw.admin)).json()
                seen += [item[field] for item in page["data"]]
                pages += 1
                after = page["next_after"]
                if not after:
                    break
            assert seen == expected and pages == len(expected) // 2 + 1, path
        whole = (await gw.client.get("/api/prompts", headers=gw.admin)).json()
        assert [p["name"] for p in whole["data"]] == ["other"] and whole["next_after"] is None
        assert whole["data"][0]["latest_version"] == 2
        assert whole["data"][0]["labels"] == {"production": 1}
        for query, words in [("limit=0", "`limit`"), ("after=a%00b", "`after`: not a cursor")]:
            refused = await gw.client.get(f"/api/keys?{query}", headers=gw.admin)
            assert refused.status_code == 400, refused.text
            assert words in refused.json()["error"]["message"], refused.text


async def test_a_missed_change_is_read_from_the_change_log_without_a_full_load(
    tmp_path: Path,
) -> None:
    """A change announced to nobody (no bus, or a lost message): the next poll reads it
    from the store's change log and re-reads only what it names; a change the log cannot
    name (a version moved by hand) is a full load."""
    store = open_store(f"sqlite:///{tmp_path / 'pilothouse.db'}")
    store.upgrade()
    loads: list[tuple[str, str]] = []
    holder = SnapshotHolder(store, {}, count_load=lambda mode, why: loads.append((mode, why)))
    outside = open_store(f"sqlite:///{tmp_path / 'pilothouse.db'}")
    early, _ = key_policy.create_key(outside, name="early")
    late, _ = key_policy.create_key(outside, name="late")
    with statements(store.engine) as seen:
        await holder._tick()
    served = {k.id for k in holder.current.keys_by_hash.values()}
    assert {early.id, late.id} <= served
    assert loads == [("incremental", "poll")]
    key_reads = [s for s, _ in seen if "FROM api_keys" in s]
    assert key_reads and all("WHERE" in s for s in key_reads)  # those two keys, not all

    with outside.begin() as conn:  # a fix by hand: the version moves, the log says nothing
        conn.execute(
            sa.text("UPDATE api_keys SET name = 'renamed' WHERE id = :id"), {"id": late.id}
        )
        conn.execute(sa.text("UPDATE config_version SET version = version + 1"))
    outside.close()
    await holder._tick()
    assert loads[-1] == ("full", "poll")
    assert [k.name for k in holder.current.keys_by_hash.values() if k.id == late.id] == ["renamed"]
    await holder.close()
    store.close()


async def test_concurrent_reads_of_a_prompt_share_store_reads_and_see_every_write(
    tmp_path: Path,
) -> None:
    """When a fragment moves, every SDK client holding an includer asks at once: reads
    that arrive together share at most two store reads, and a read that comes after a
    write sees it (a write made on another instance too: nothing is cached)."""
    async with InProcess.start(tmp_path) as gw:
        await catalogue(gw)

        async def reads(count: int) -> tuple[list[httpx.Response], int]:
            with statements(gw.server.store.engine) as seen:
                answers = await asyncio.gather(
                    *(gw.client.get("/api/prompts/other", headers=gw.admin) for _ in range(count))
                )
            return list(answers), len([s for s, _ in seen if "prompt_versions" in s])

        _, one = await reads(1)
        answers, many = await reads(30)
        assert {(a.status_code, a.json()["version"]) for a in answers} == {(200, 1)}
        assert 0 < many <= 2 * one
        # Moved behind this instance's back (no announcement): the next read sees it.
        outside = open_store(f"sqlite:///{tmp_path / 'pilothouse.db'}")
        labels.move_label(outside, "other", "production", 2)
        outside.close()
        answers, _ = await reads(3)
        assert {a.json()["version"] for a in answers} == {2}
