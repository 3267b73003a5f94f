"""A release freezes everything it serves: a fragment's label moving after a promotion
changes nothing a route serves (output, release id, prompt hash); the next promotion takes
the new fragment, and the request log shows it (in-process tier)."""

from __future__ import annotations

from pathlib import Path

import pytest
from control_setup import TRIAGE, call_route, last_sent, promote, push, standard

from inprocess import InProcess

pytestmark = pytest.mark.anyio


async def test_a_fragment_label_move_after_promotion_changes_nothing_the_route_serves(
    tmp_path: Path,
) -> None:
    async with InProcess.start(tmp_path) as gw:
        releases = await standard(gw)
        first = await call_route(gw, "support", ticket="Card declined")
        assert first.status_code == 200, first.text
        served = last_sent(gw)
        assert served[0]["content"] == "Sort tickets. Be brief."
        release_id = first.headers["x-pilothouse-release"]
        prompt_hash = first.headers["x-pilothouse-prompt-hash"]
        assert release_id == releases["support"]["id"]
        assert prompt_hash == releases["support"]["prompt_hash"]

        moved = await push(gw, "house-style", {"text": "Be thorough."}, labels=["production"])
        assert moved.status_code == 201 and moved.json()["version"] == 2
        live = (await gw.client.get("/api/prompts/triage", headers=gw.admin)).json()
        assert live["fragments"]["house-style@production"]["version"] == 2  # readers follow

        again = await call_route(gw, "support", ticket="Card declined")
        assert again.status_code == 200
        assert last_sent(gw) == served  # the provider got exactly what it got before
        assert again.json()["choices"] == first.json()["choices"]
        assert again.headers["x-pilothouse-release"] == release_id
        assert again.headers["x-pilothouse-prompt-hash"] == prompt_hash

        shown = (await gw.client.get("/api/routes/support", headers=gw.admin)).json()
        (fragment,) = shown["active"]["fragments"]
        assert (fragment["ref"], fragment["version"], fragment["label"]) == (
            "house-style@production",
            1,
            "production",
        )
        assert (
            fragment["label_now"] == 2 and "version 2 is now under production" in fragment["note"]
        )

        repromoted = await promote(gw, "support", "triage@production", reason="take the new style")
        assert repromoted.status_code == 201
        newer = await call_route(gw, "support", ticket="Card declined")
        assert last_sent(gw)[0]["content"] == "Sort tickets. Be thorough."
        assert newer.headers["x-pilothouse-release"] == repromoted.json()["id"] != release_id
        assert newer.headers["x-pilothouse-prompt-hash"] not in (prompt_hash, "")
        assert repromoted.json()["fragments"]["house-style@production"]["version"] == 2

        rows = sorted(await gw.rows(3), key=lambda r: r["started_at"])
        logged = [(r["release_id"], r["prompt_hash"], r["prompt_version"]) for r in rows]
        assert logged == [
            (release_id, prompt_hash, 1),
            (release_id, prompt_hash, 1),
            (repromoted.json()["id"], repromoted.json()["prompt_hash"], 1),
        ]


async def test_the_prompt_hash_covers_the_composition_and_is_the_version_hash_alone(
    tmp_path: Path,
) -> None:
    async with InProcess.start(tmp_path) as gw:
        releases = await standard(gw)
        search = releases["search"]  # `other` includes nothing
        assert search["prompt_hash"] == search["version_hash"] and search["fragments"] == {}
        support = releases["support"]
        assert support["prompt_hash"] != support["version_hash"]
        assert support["frozen"] is True


async def test_a_release_that_would_not_render_is_refused_at_promotion(tmp_path: Path) -> None:
    async with InProcess.start(tmp_path) as gw:
        await standard(gw)
        # A fragment that needs a variable triage does not declare, pushed without a label.
        assert (await push(gw, "tone", {"text": "Sound {{mood}}."})).status_code == 201
        needs_tone = {
            **TRIAGE,
            "messages": [{"role": "system", "content": "{{> tone@1}}"}, *TRIAGE["messages"][1:]],
        }
        refused = await push(gw, "triage", needs_tone)
        assert refused.status_code == 400
        assert "{{mood}}, which triage does not declare" in refused.json()["error"]["message"]
        assert (await promote(gw, "support", "triage@2")).status_code == 404  # never stored
