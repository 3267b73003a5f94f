"""Bad input to contracts, verifications, the gate, the changelog and the dependency map:
a clear 4xx naming what is wrong, never a 500, and nothing stored."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from contract_harness import SAFE, SCENARIO, contract, push, run_samples

from inprocess import InProcess

pytestmark = pytest.mark.anyio


@pytest.fixture
async def gw(tmp_path: Path, database_url: str) -> AsyncIterator[InProcess]:
    async with InProcess.start(
        tmp_path, simulated=True, scenario=SCENARIO, database_url=database_url
    ) as server:
        yield server


async def test_contracts_refuse_unknown_subjects_and_bad_expectations(gw: InProcess) -> None:
    post = gw.client.post
    unknown = await post("/api/contracts", json=contract(), headers=gw.admin)
    assert unknown.status_code == 404 and "no prompt 'triage'" in unknown.text
    await push(gw, SAFE)
    cases = [
        (contract(expect={"patterns": ["(oops"]}), 400, "expect.patterns[0]"),
        (
            contract(expect={"json_schema": {"type": "object", "anyOf": []}}),
            400,
            "expect.json_schema",
        ),
        (
            contract(expect={"labels": {"path": "label", "allowed": []}}),
            400,
            "expect.labels.allowed",
        ),
        (contract(samples={"dataset": "nope", "version": 1}), 404, "no dataset 'nope' version 1"),
        (contract(route="support"), 400, "exactly one"),
        (contract(tolerance={"min_pass_rate": 2}), 400, "tolerance.min_pass_rate"),
        (contract(model="gpt-9"), 400, "unknown model alias 'gpt-9'"),
        ({**contract(), "prompt": "house-style"}, 404, "no prompt 'house-style'"),
    ]
    for body, status, says in cases:
        answer = await post("/api/contracts", json=body, headers=gw.admin)
        assert answer.status_code == status, (says, answer.text)
        assert says in answer.text, answer.text
    fragment = await gw.client.post(
        "/api/prompts/tone/versions", json={"text": "Be kind."}, headers=gw.admin
    )
    assert fragment.status_code == 201
    on_fragment = await post(
        "/api/contracts", json={**contract(), "prompt": "tone"}, headers=gw.admin
    )
    assert on_fragment.status_code == 400 and "is a fragment" in on_fragment.text
    listed = await gw.client.get("/api/contracts", params={"prompt": "triage"}, headers=gw.admin)
    assert listed.json()["data"] == [], "nothing was stored"
    both = await gw.client.get(
        "/api/contracts", params={"prompt": "triage", "route": "x"}, headers=gw.admin
    )
    assert both.status_code == 400
    assert (await gw.client.get("/api/contracts/ctr_00", headers=gw.admin)).status_code == 404
    assert (await gw.client.get("/api/contracts/nonsense", headers=gw.admin)).status_code == 400
    key_only = await post("/api/contracts", json=contract(), headers=gw.auth)
    assert key_only.status_code in (401, 403)


async def test_a_huge_bad_value_is_named_not_echoed_back(gw: InProcess) -> None:
    await push(gw, SAFE)
    huge = "a" * 1_000_000
    answer = await gw.client.post(
        "/api/contracts", json={**contract(), "name": huge}, headers=gw.admin
    )
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert error["field"] == "name" and "should match pattern" in error["message"]
    assert "got 'aaaa" in error["message"] and len(answer.content) < 1000, len(answer.content)


async def test_a_verification_must_be_evidence_for_what_it_claims(gw: InProcess) -> None:
    await push(gw, SAFE)
    await push(gw, SAFE + " Thanks.")
    added = (await gw.client.post("/api/contracts", json=contract(), headers=gw.admin)).json()
    key = (
        await gw.client.post(
            "/api/keys", json={"name": "ci", "scopes": ["evals"]}, headers=gw.admin
        )
    ).json()["secret"]
    body = await run_samples(gw, key, added, {"prompt": "triage@1"})
    url = f"/api/contracts/{added['id']}/verifications"

    async def send(changed: dict[str, object]) -> tuple[int, str]:
        answer = await gw.client.post(url, json={**body, **changed}, headers=gw.admin)
        return answer.status_code, answer.text

    status, text = await send({"subject": {"prompt": "triage@2"}})
    assert status == 409 and "not evidence for triage@2" in text and "composition" in text
    status, text = await send({"spec_hash": "0" * 64})
    assert status == 409 and "changed since these samples ran" in text
    status, text = await send({"samples": body["samples"][:-1]})
    assert status == 400 and "missing invoice" in text
    short = [{**s, "outputs": s["outputs"][:1]} for s in body["samples"]]
    status, text = await send({"samples": short})
    assert status == 400 and "runs each sample 2 time(s)" in text
    status, text = await send({"subject": {"prompt": "triage@9"}})
    assert status == 404 and "versions are 1 to 2" in text
    status, text = await send({"subject": {"route": "support", "release": "canary"}})
    assert status == 400 and "verified on {prompt: triage@VERSION}" in text
    status, text = await send({"target": {**body["target"], "model_alias": "claude"}})
    assert status == 409 and "model 'claude'" in text
    status, text = await send({"spec_hash": "not-a-hash"})
    assert status == 400 and "spec_hash" in text
    listed = (
        await gw.client.get("/api/contracts", params={"prompt": "triage"}, headers=gw.admin)
    ).json()
    assert listed["data"][0]["last_verification"] is None, "no refused verification was stored"
    ok = await gw.client.post(url, json=body, headers=gw.admin)
    assert ok.status_code == 201 and ok.json()["verification"]["passed"]


async def test_the_gate_changelog_and_dependencies_refuse_bad_questions(gw: InProcess) -> None:
    ask = "/api/can-i-promote"
    answer = await gw.client.post(ask, json={"prompt": "triage@1"}, headers=gw.admin)
    assert answer.status_code == 404 and "no prompt 'triage'" in answer.text
    await push(gw, SAFE)
    for body, status, says in [
        ({"prompt": "triage@1", "label": "7"}, 400, "label"),
        ({"prompt": "triage@x y"}, 400, "invalid prompt reference"),
        ({"route": "nope", "from_canary": True}, 404, "no route 'nope'"),
        ({"route": "r", "from_canary": True, "model": "fast"}, 400, "from_canary"),
        ({"model": "fast"}, 400, "ask about a prompt"),
    ]:
        got = await gw.client.post(ask, json=body, headers=gw.admin)
        assert got.status_code == status and says in got.text, (body, got.text)
    # A diff attached to a promote must be a diff summary, and of what is promoted.
    summary = {"cases": 1, "compared": 1, "changed": False, "behaviour": {}, "meaning": {}}
    for diff, says in [
        ({"label_flips": {}}, "not a semantic diff summary (missing cases"),
        ({**summary, "new": "triage@2"}, "new side is triage@2, but this change moves to triage@1"),
        ({**summary, "pad": "x" * 40_000}, "over 32768 bytes"),
    ]:
        body = {"prompt": "triage@1", "model": "fast", "diff": diff}
        got = await gw.client.post("/api/routes/r/promote", json=body, headers=gw.admin)
        assert got.status_code == 400 and says in got.text, got.text
    label = await gw.client.post(
        "/api/prompts/triage/labels/staging", json={"version": 1, "diff": summary}, headers=gw.admin
    )
    assert label.status_code == 400 and "only moves of a protected label" in label.text
    made = await gw.client.post(
        "/api/routes/r/promote",
        json={"prompt": "triage@1", "model": "fast", "diff": {**summary, "new": "triage@1"}},
        headers=gw.admin,
    )
    assert made.status_code == 201
    for body, status, says in [
        ({"route": "r", "from_canary": True}, 409, "has no canary"),
        ({"route": "r", "prompt": "triage@1", "model": "gpt-9"}, 400, "unknown model alias"),
        (
            {"route": "r", "prompt": "triage@1", "model": "fast", "params": {"temp": 1}},
            400,
            "unknown release parameter",
        ),
    ]:
        got = await gw.client.post(ask, json=body, headers=gw.admin)
        assert got.status_code == status and says in got.text, (body, got.text)
    yes = await gw.client.post(
        ask, json={"route": "r", "prompt": "triage@1", "model": "fast"}, headers=gw.admin
    )
    assert yes.json()["allowed"] is True, "no contract and no suite: nothing to hold it to"

    feed = "/api/changelog"
    assert (
        await gw.client.get(feed, params={"prompt": "nope"}, headers=gw.admin)
    ).status_code == 404
    assert (await gw.client.get(feed, params={"after": "abc"}, headers=gw.admin)).status_code == 400
    both = await gw.client.get(feed, params={"prompt": "triage", "route": "r"}, headers=gw.admin)
    assert both.status_code == 400
    subscribe = "/api/changelog/subscriptions"
    for body, says in [
        ({"prompt": "triage", "url": "ftp://x", "secret": "s" * 20}, "url"),
        ({"prompt": "triage", "url": "http://127.0.0.1:9/h", "secret": "short"}, "secret"),
        ({"url": "http://127.0.0.1:9/h", "secret": "s" * 20}, "give `prompt` or `route`"),
    ]:
        got = await gw.client.post(subscribe, json=body, headers=gw.admin)
        assert got.status_code == 400 and says in got.text, got.text
    gone = await gw.client.post(
        subscribe,
        json={"route": "nope", "url": "http://127.0.0.1:9/h", "secret": "s" * 20},
        headers=gw.admin,
    )
    assert gone.status_code == 404
    assert (await gw.client.get(subscribe, headers=gw.admin)).json()["data"] == []
    assert (await gw.client.delete(f"{subscribe}/sub_00", headers=gw.admin)).status_code == 404
    deps = await gw.client.get("/api/prompts/nope/dependencies", headers=gw.admin)
    assert deps.status_code == 404


async def test_the_dependency_map_names_routes_versions_includers_and_contract_holders(
    gw: InProcess,
) -> None:
    post = gw.client.post
    assert (
        await post(
            "/api/prompts/tone/versions",
            json={"text": "Be kind.", "labels": ["production"]},
            headers=gw.admin,
        )
    ).status_code == 201
    body = {
        "messages": [
            {"role": "system", "content": "Triage. {{> tone}}"},
            {"role": "user", "content": "{{ticket}}"},
        ],
        "variables": {"ticket": {"required": True}},
        "labels": ["production"],
    }
    assert (
        await post("/api/prompts/triage/versions", json=body, headers=gw.admin)
    ).status_code == 201
    assert (
        await post(
            "/api/routes/support/promote",
            json={"prompt": "triage@1", "model": "fast"},
            headers=gw.admin,
        )
    ).status_code == 201
    assert (
        await post("/api/prompts/tone/versions", json={"text": "Be very kind."}, headers=gw.admin)
    ).status_code == 201
    assert (
        await post(
            "/api/routes/support/canary",
            json={"prompt": "triage@1", "model": "fast", "weight": 5},
            headers=gw.admin,
        )
    ).status_code == 200
    on_route = {
        k: v for k, v in contract(route="support").items() if k not in ("prompt", "model", "params")
    }
    assert (await post("/api/contracts", json=on_route, headers=gw.admin)).status_code == 201
    assert (await post("/api/contracts", json=contract(), headers=gw.admin)).status_code == 201
    triage = (await gw.client.get("/api/prompts/triage/dependencies", headers=gw.admin)).json()
    assert triage["labels"] == {"production": 1}
    assert {(r["route"], r["arm"], r["as"], r["version"]) for r in triage["routes"]} == {
        ("support", "active", "prompt", 1),
        ("support", "canary", "prompt", 1),
    }
    assert {(c.get("prompt"), c.get("route"), c["consumer"]) for c in triage["contracts"]} == {
        ("triage", None, "billing"),
        (None, "support", "billing"),
    }
    tone = (await gw.client.get("/api/prompts/tone/dependencies", headers=gw.admin)).json()
    assert [(r["route"], r["as"], r["include"], r["version"]) for r in tone["routes"]] == [
        ("support", "fragment", "tone@production", 1),
        ("support", "fragment", "tone@production", 1),
    ]
    assert tone["included_by"] == [
        {
            "prompt": "triage",
            "label": "production",
            "version": 1,
            "include": "tone@production",
            "includes_version": 1,
        }
    ]
    assert [c["route"] for c in tone["contracts"]] == ["support"]
