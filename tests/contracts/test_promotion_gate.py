"""The scripted scenario, in-process on SQLite and PostgreSQL: version 7 of `triage` is a
wording change after which billing tickets no longer carry the `label` key downstream
parsers read. The billing team's contract catches it, the gate refuses to move
`production`, a forced move is audited, and the subscriber's webhook gets the signed
changelog entry. A rephrase-only version passes the same contract."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from contract_harness import BREAKING, REPHRASED, SAFE, SCENARIO, contract, push, triage, verify

from inprocess import InProcess
from webhook_receiver import Receiver, receiving, verified

pytestmark = pytest.mark.anyio
SECRET = "billing-team-shared-secret"


@pytest.fixture
async def gw(tmp_path: Path, database_url: str) -> AsyncIterator[InProcess]:
    async with InProcess.start(
        tmp_path, simulated=True, scenario=SCENARIO, database_url=database_url
    ) as server:
        yield server


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async with receiving() as hook:
        yield hook


async def ci_key(gw: InProcess) -> str:
    made = await gw.client.post(
        "/api/keys", json={"name": "ci", "scopes": ["evals"]}, headers=gw.admin
    )
    assert made.status_code == 201, made.text
    return str(made.json()["secret"])


async def delivered(hook: Receiver, count: int) -> list[tuple[dict[str, str], bytes]]:
    deadline = time.monotonic() + 15
    while len(hook.seen) < count:
        assert time.monotonic() < deadline, f"{len(hook.seen)} of {count} deliveries arrived"
        await asyncio.sleep(0.05)
    return hook.seen


async def label(gw: InProcess, version: int, **body: Any) -> Any:
    return await gw.client.post(
        "/api/prompts/triage/labels/production",
        json={"version": version, **body},
        headers=gw.admin,
    )


async def test_a_wording_change_that_drops_a_label_is_held_at_the_gate_and_told_to_subscribers(
    gw: InProcess, receiver: Receiver
) -> None:
    key = await ci_key(gw)
    for revision in range(1, 7):  # six harmless revisions; the sixth is in production
        assert await push(gw, f"{SAFE} (revision {revision})") == revision
    assert (await label(gw, 6, reason="release 6")).status_code == 200
    subscribed = await gw.client.post(
        "/api/changelog/subscriptions",
        json={"prompt": "triage", "url": receiver.url, "secret": SECRET, "owner": "billing"},
        headers=gw.admin,
    )
    assert subscribed.status_code == 200, subscribed.text
    assert "secret" not in subscribed.json()

    # The billing team registers what it relies on: pending until it first passes.
    added = (await gw.client.post("/api/contracts", json=contract(), headers=gw.admin)).json()
    assert added["status"] == "pending" and added["outcome"] == "created"
    first = await verify(gw, key, added, {"prompt": "triage@6"})
    assert first["verification"]["passed"] and first["activated"]
    assert first["contract"]["status"] == "active"
    assert first["contract"]["activated_on"] == "triage@6"

    # Version 7 rewords the instructions; billing tickets come back without `label`.
    assert await push(gw, BREAKING) == 7
    seventh = await verify(gw, key, added, {"prompt": "triage@7"})
    failed = seventh["verification"]
    assert not failed["passed"] and failed["outputs"] == 12 and failed["passed_outputs"] == 6
    assert {f["sample"] for f in failed["failures"]} == {"charge", "refund", "invoice"}
    example = failed["failures"][0]
    assert example["output"] == '{"team": "billing"}'
    assert any("no value at 'label'" in r for r in example["reasons"])

    asked = await gw.client.post(
        "/api/can-i-promote", json={"prompt": "triage@7", "label": "production"},
        headers={"Authorization": f"Bearer {key}"},
    )  # fmt: skip
    answer = asked.json()
    assert asked.status_code == 200 and answer["allowed"] is False
    assert "contract billing/billing-router" in answer["reasons"][0]
    shown = answer["contracts"][0]["verification"]["failures"]
    assert shown and shown[0]["sample"] in {"charge", "refund", "invoice"}

    refused = await label(gw, 7, reason="ship the new wording")
    assert refused.status_code == 409, refused.text
    error = refused.json()["error"]
    assert "refused by the promotion gate" in error["message"] and "--force" in error["hint"]
    current = await gw.client.get("/api/prompts/triage", headers=gw.admin)
    assert current.json()["version"] == 6, "a refused move changes nothing"

    forced = await label(gw, 7, force=True, reason="the billing parser is fixed today")
    assert forced.status_code == 200, forced.text
    history = (await gw.client.get("/api/prompts/triage/history", headers=gw.admin)).json()
    moved = next(h for h in history["data"] if h["action"] == "prompt.label")
    assert moved["after"]["version"] == 7 and moved["after"]["forced"] is True
    assert "contract billing/billing-router" in moved["after"]["gate_refused"][0]
    assert moved["reason"] == "the billing parser is fixed today"

    # The subscriber hears of the forced move, signed with its secret.
    [(headers, raw)] = await delivered(receiver, 1)
    assert verified(headers, raw, SECRET)
    assert not verified(headers, raw, "someone-elses-secret-value")
    envelope = receiver.bodies()[0]
    assert envelope["event"] == "changelog.entry"
    entry = envelope["data"]
    assert entry["subject"] == {"kind": "prompt", "name": "triage"}
    assert entry["action"] == "label_move" and entry["forced"] is True
    assert entry["change"]["from"]["version"] == 6 and entry["change"]["to"]["version"] == 7
    assert entry["gate"]["allowed"] is False and entry["diff"] is None
    assert entry["author"] == "admin" and entry["reason"] == "the billing parser is fixed today"

    # A rephrase-only version keeps every label: the contract holds, the gate says yes.
    assert await push(gw, REPHRASED) == 8
    eighth = await verify(gw, key, added, {"prompt": "triage@8"})
    assert eighth["verification"]["passed"] and eighth["verification"]["failures"] == []
    again = await gw.client.post(
        "/api/can-i-promote", json={"prompt": "triage@8"}, headers=gw.admin
    )
    assert again.json()["allowed"] is True and again.json()["reasons"] == []
    assert (await label(gw, 8, reason="rephrased")).status_code == 200
    feed = (
        await gw.client.get("/api/changelog", params={"prompt": "triage"}, headers=gw.admin)
    ).json()
    assert [e["change"]["to"]["version"] for e in feed["data"]] == [8, 7, 6]
    assert [e["forced"] for e in feed["data"]] == [False, True, False]
    await delivered(receiver, 2)


async def test_a_pending_contract_is_reported_but_never_blocks_until_it_first_passes(
    gw: InProcess,
) -> None:
    key = await ci_key(gw)
    await push(gw, SAFE)
    await push(gw, BREAKING)
    added = (await gw.client.post("/api/contracts", json=contract(), headers=gw.admin)).json()
    failing = await verify(gw, key, added, {"prompt": "triage@2"})
    assert not failing["verification"]["passed"] and not failing["activated"]
    assert failing["contract"]["status"] == "pending"
    asked = (
        await gw.client.post("/api/can-i-promote", json={"prompt": "triage@2"}, headers=gw.admin)
    ).json()
    assert asked["allowed"] is True and asked["reasons"] == []
    assert any("pending: reported, not blocking" in n for n in asked["notes"])
    assert (await label(gw, 2, reason="nothing blocks a pending contract")).status_code == 200
    # Its first pass makes it active, recording when and on what.
    passing = await verify(gw, key, added, {"prompt": "triage@1"})
    assert passing["activated"] and passing["contract"]["activated_on"] == "triage@1"
    assert passing["contract"]["activated_at"]
    listed = (
        await gw.client.get("/api/contracts", params={"prompt": "triage"}, headers=gw.admin)
    ).json()
    [shown] = listed["data"]
    assert shown["status"] == "active" and shown["last_verification"]["subject"] == "triage@1"
    # Now active: version 2 has failed it, so moving back onto 2 is refused...
    assert (await label(gw, 1, reason="back to 1")).status_code == 200
    assert (await label(gw, 2, reason="again")).status_code == 409
    # A push that would move production onto an unverified version is refused whole.
    pushed = await gw.client.post(
        "/api/prompts/triage/versions",
        json={**triage(REPHRASED), "labels": ["production"]},
        headers=gw.admin,
    )
    assert pushed.status_code == 409 and "no verification of triage@3" in pushed.text
    versions = (await gw.client.get("/api/prompts/triage/versions", headers=gw.admin)).json()
    assert [v["version"] for v in versions["data"]] == [1, 2], "nothing was stored"
    # ...and a changed contract is pending again until it passes.
    changed = contract(tolerance={"min_pass_rate": 0.5, "repeats": 2})
    again = (await gw.client.post("/api/contracts", json=changed, headers=gw.admin)).json()
    assert again["outcome"] == "changed" and again["status"] == "pending"
    same = await gw.client.post("/api/contracts", json=changed, headers=gw.admin)
    assert same.status_code == 200 and same.json()["outcome"] == "unchanged"
    assert (await label(gw, 2, reason="the new revision is pending")).status_code == 200


async def test_a_release_is_held_to_the_routes_contracts_and_every_change_is_in_its_changelog(
    gw: InProcess,
) -> None:
    key = await ci_key(gw)
    await push(gw, SAFE)
    await push(gw, BREAKING)
    route = "/api/routes/support"
    made = await gw.client.post(
        f"{route}/promote",
        json={"prompt": "triage@1", "model": "fast", "params": {"temperature": 0}, "reason": "v1"},
        headers=gw.admin,
    )
    assert made.status_code == 201, made.text
    on_route = contract(route="support", prompt=None, model=None, params={})
    on_route = {k: v for k, v in on_route.items() if v is not None}
    added = (await gw.client.post("/api/contracts", json=on_route, headers=gw.admin)).json()
    assert "route" in added and added["status"] == "pending"
    held = await verify(gw, key, added, {"route": "support", "release": "active"})
    assert held["activated"] and held["contract"]["activated_on"].startswith("route:support")

    canary = await gw.client.post(
        f"{route}/canary",
        json={"prompt": "triage@2", "model": "fast", "params": {"temperature": 0}, "weight": 10},
        headers=gw.admin,
    )
    assert canary.status_code == 200, canary.text
    missing = await gw.client.post(f"{route}/promote", json={"from_canary": True}, headers=gw.admin)
    assert missing.status_code == 409
    assert (
        "no verification of route:support: triage@2 on fast" in missing.json()["error"]["message"]
    )
    broken = await verify(gw, key, added, {"route": "support", "release": "canary"})
    assert not broken["verification"]["passed"]
    asked = await gw.client.post(
        "/api/can-i-promote", json={"route": "support", "from_canary": True}, headers=gw.admin
    )
    assert asked.json()["allowed"] is False
    # The same composition, model and parameters promoted directly is the same candidate.
    direct = await gw.client.post(
        f"{route}/promote",
        json={"prompt": "triage@2", "model": "fast", "params": {"temperature": 0}},
        headers=gw.admin,
    )
    assert direct.status_code == 409 and "3 of 6" not in direct.text
    assert "6 of 12 outputs met it" in direct.json()["error"]["message"]
    forced = await gw.client.post(
        f"{route}/promote",
        json={"from_canary": True, "force": True, "reason": "billing agreed"},
        headers=gw.admin,
    )
    assert forced.status_code == 201, forced.text
    rolled = await gw.client.post(
        f"{route}/rollback", json={"reason": "billing broke"}, headers=gw.admin
    )
    assert rolled.status_code == 200, rolled.text
    feed = (
        await gw.client.get("/api/changelog", params={"route": "support"}, headers=gw.admin)
    ).json()
    assert [e["action"] for e in feed["data"]] == ["rollback", "promote", "canary", "promote"]
    rollback, promote, started, first = feed["data"]
    assert rollback["gate"]["allowed"] is True and not rollback["forced"]
    assert promote["forced"] and promote["gate"]["allowed"] is False
    assert promote["change"]["from"]["prompt"] == "triage@1"
    assert promote["change"]["to"]["prompt"] == "triage@2" and promote["changed"] == ["prompt"]
    assert started["change"]["canary_weight"] == {"from": 0, "to": 10}
    assert first["change"]["from"] is None and first["change"]["to"]["params"] == {"temperature": 0}
    page = (
        await gw.client.get(
            "/api/changelog", params={"route": "support", "limit": 2}, headers=gw.admin
        )
    ).json()
    rest = (
        await gw.client.get(
            "/api/changelog",
            params={"route": "support", "limit": 2, "after": page["next_after"]},
            headers=gw.admin,
        )
    ).json()
    assert [e["id"] for e in page["data"] + rest["data"]] == [e["id"] for e in feed["data"]]
    assert rest["next_after"] is not None


async def test_gating_suites_need_a_passing_run_on_the_exact_version(tmp_path: Path) -> None:
    config = (
        "providers: {sim: {type: openai, base_url: 'http://sim.invalid/v1'}}\n"
        "models: {fast: {provider: sim, model: sim-small}}\n"
        "promotion: {suites: [{suite: triage-quality, prompt: triage}]}\n"
    )
    async with InProcess.start(tmp_path, config) as gw:
        await push(gw, SAFE)
        await push(gw, REPHRASED)
        assert (await label(gw, 1, reason="no run yet")).status_code == 409
        assert (
            await label(gw, 1, force=True, reason="before the suite existed")
        ).status_code == 200
        refused = await label(gw, 2, reason="no run yet")
        assert refused.status_code == 409
        assert (
            "suite triage-quality: no stored run on triage@2" in refused.json()["error"]["message"]
        )
        prompt = (
            await gw.client.get("/api/prompts/triage", params={"version": 2}, headers=gw.admin)
        ).json()

        async def record(run_id: str, passed: bool, composition: str) -> None:
            target = {
                "name": "triage@2/fast",
                "kind": "prompt",
                "prompt": "triage@2",
                "prompt_hash": prompt["hash"],
                "composition_hash": composition,
                "model_alias": "fast",
            }
            artifact = {
                "id": run_id,
                "suite": "triage-quality",
                "passed": passed,
                "manifest": {"targets": [target]},
                "summary": {
                    "passed": passed,
                    "gated_targets": [target["name"]],
                    "targets": {
                        target["name"]: {
                            "passed": passed,
                            "reasons": []
                            if passed
                            else ["label_in: pass rate 40.0% is below 90.0%"],
                        }
                    },
                },
                "results": {"cases": []},
            }
            stored = await gw.client.post("/api/evals/runs", json=artifact, headers=gw.admin)
            assert stored.status_code == 201, stored.text

        await record("run_other_composition", True, "0" * 64)
        assert (await label(gw, 2, reason="a run on something else")).status_code == 409
        await record("run_failed", False, prompt["composition_hash"])
        failed = await label(gw, 2, reason="a failing run")
        assert "run_failed on triage@2 failed: label_in: pass rate 40.0%" in failed.text
        await asyncio.sleep(0.01)  # the newest run decides
        await record("run_passed", True, prompt["composition_hash"])
        assert (await label(gw, 2, reason="the suite passed")).status_code == 200
        rollback = await gw.client.post(
            "/api/prompts/triage/labels/production/rollback",
            json={"reason": "undo"},
            headers=gw.admin,
        )
        assert rollback.status_code == 200, "a rollback is never held"


async def test_a_fragment_move_that_changes_a_protected_includer_is_told_to_its_subscribers(
    gw: InProcess, receiver: Receiver
) -> None:
    key = await ci_key(gw)
    tone = "/api/prompts/tone/versions"
    made = await gw.client.post(
        tone, json={"text": "Be kind.", "labels": ["production"]}, headers=gw.admin
    )
    assert made.status_code == 201, made.text
    assert await push(gw, SAFE + " {{> tone}}", labels=["production"]) == 1
    await gw.client.post(
        "/api/changelog/subscriptions",
        json={"prompt": "triage", "url": receiver.url, "secret": SECRET},
        headers=gw.admin,
    )
    added = (await gw.client.post("/api/contracts", json=contract(), headers=gw.admin)).json()
    assert (await verify(gw, key, added, {"prompt": "triage@1"}))["activated"]
    assert (
        await gw.client.post(tone, json={"text": "Be terse."}, headers=gw.admin)
    ).status_code == 201

    # triage@production now composes with tone 2: no version of triage moved, yet its
    # readers get new behaviour; its subscribers are told, with what the gate finds.
    moved = await gw.client.post(
        "/api/prompts/tone/labels/production",
        json={"version": 2, "reason": "terser"},
        headers=gw.admin,
    )
    assert moved.status_code == 200, moved.text
    [(headers, raw)] = await delivered(receiver, 1)
    assert verified(headers, raw, SECRET)
    entry = receiver.bodies()[0]["data"]
    assert entry["subject"] == {"kind": "prompt", "name": "triage"}
    assert entry["action"] == "include_move" and entry["changed"] == ["fragments"]
    assert entry["change"]["via"] == "tone@production"
    assert entry["change"]["from"]["fragments"] == {"tone@production": 1}
    assert entry["change"]["to"]["fragments"] == {"tone@production": 2}
    assert entry["change"]["from"]["version"] == entry["change"]["to"]["version"] == 1
    assert entry["gate"]["allowed"] is False, "no verification of the new composition yet"
    assert "no verification of triage@1" in entry["gate"]["reasons"][0]
    again = await verify(gw, key, added, {"prompt": "triage@1"})
    assert again["verification"]["passed"], "the new composition verified after the fact"
    fragment_log = (
        await gw.client.get("/api/changelog", params={"prompt": "tone"}, headers=gw.admin)
    ).json()
    assert [e["action"] for e in fragment_log["data"]] == ["label_move", "label_move"]
