"""Strict inputs on every path: one name pattern for prompts, fragments, labels and routes
(also for labels given during a push), bounded release parameters, `tools: []` normalised
away, one label syntax with the old one read with a warning (in-process tier)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from control_setup import OTHER, call_route, last_sent, promote, push, standard

from inprocess import InProcess
from pilothouse.registry import names
from pilothouse.store import tables

pytestmark = pytest.mark.anyio

BAD_NAMES = ["..", ".hidden", "a b", "a/b", "n" * 101, "é", "-x", "a\nb"]


@pytest.mark.parametrize("bad", BAD_NAMES)
def test_the_name_rule_refuses_what_breaks_files_urls_and_columns(bad: str) -> None:
    assert not names.is_name(bad)
    with pytest.raises(names.InvalidName, match="a letter or digit"):
        names.check_name(bad)


def test_every_name_column_holds_the_longest_name() -> None:
    for table, column in [
        (tables.prompts, "name"),
        (tables.prompt_versions, "prompt_name"),
        (tables.prompt_labels, "prompt_name"),
        (tables.prompt_labels, "label"),
        (tables.prompt_events, "label"),
        (tables.routes, "name"),
        (tables.releases, "route"),
        (tables.releases, "prompt_name"),
        (tables.route_events, "route"),
        (tables.request_log, "route"),
    ]:
        assert table.c[column].type.length >= names.MAX_NAME_CHARS, (table.name, column)
    assert tables.audit_log.c.target.type.length >= len("prompt:") + names.MAX_NAME_CHARS


def test_references_use_at_and_read_the_old_colon_with_a_warning() -> None:
    assert names.parse_ref("triage@3") == names.PromptRef("triage", version=3)
    assert names.parse_ref("triage@staging") == names.PromptRef("triage", label="staging")
    old = names.parse_ref("triage:staging")
    assert (old.name, old.label, old.legacy) == ("triage", "staging", True)
    assert old.warning == "`triage:staging` is the old spelling; write `triage@staging`"
    for bad in ("triage@", "triage@0", "tri age@1", "triage@a b", "@3"):
        with pytest.raises(names.InvalidName):
            names.parse_ref(bad)


async def test_bad_names_are_400s_naming_the_field_on_every_write_path(tmp_path: Path) -> None:
    async with InProcess.start(tmp_path) as gw:
        await standard(gw)
        cases: list[tuple[str, str, dict[str, Any], str]] = [
            ("post", "/api/prompts/..x/versions", {"text": "t"}, "name"),
            ("post", "/api/prompts/x/versions", {"text": "t", "labels": ["a b"]}, "labels.0"),
            ("post", "/api/prompts/x/versions", {"text": "t", "labels": ["12"]}, "labels.0"),
            ("post", "/api/prompts/house-style/labels/12", {"version": 1}, "label"),
            ("post", "/api/prompts/house-style/labels/b%20c", {"version": 1}, "label"),
            ("post", "/api/routes/" + "r" * 101 + "/promote", {"prompt": "other@1"}, "route"),
            ("post", "/api/routes/new/promote", {"prompt": "oth er@1", "model": "fast"}, "prompt"),
            (
                "post",
                "/api/prompts:batch",
                {"prompts": [{"name": "..", "text": "t"}]},
                "prompts.0.name",
            ),
            (
                "post",
                "/api/prompts:batch",
                {"prompts": [{"name": "ok", "text": "t"}], "labels": ["no good"]},
                "labels.0",
            ),
        ]
        for method, path, body, field in cases:
            response = await getattr(gw.client, method)(path, json=body, headers=gw.admin)
            assert response.status_code == 400, (path, response.text)
            error = response.json()["error"]
            assert error["type"] == "invalid_request_error" and error["field"] == field, (
                path,
                error,
            )
        listed = (await gw.client.get("/api/prompts", headers=gw.admin)).json()["data"]
        assert {row["name"] for row in listed} == {"house-style", "triage", "other"}


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"max_tokens": 2**31}, "params.max_tokens"),
        ({"max_tokens": 0}, "params.max_tokens"),
        ({"seed": 2**63}, "params.seed"),
        ({"temperature": 2.5}, "params.temperature"),
        ({"stop": ["a", "b", "c", "d", "e"]}, "params.stop"),
        ({"stop": [""]}, "params.stop"),
        ({"top_p": True}, "params.top_p"),
        ({"temprature": 1}, "params"),
    ],
)
async def test_release_parameters_are_bounded(
    tmp_path: Path, params: dict[str, Any], field: str
) -> None:
    async with InProcess.start(tmp_path) as gw:
        await push(gw, "other", OTHER, labels=["production"])
        response = await promote(gw, "search", "other@1", params=params)
        assert response.status_code == 400, response.text
        assert response.json()["error"]["field"] == field
        assert (await gw.client.get("/api/routes", headers=gw.admin)).json()["data"] == []


async def test_empty_tools_are_normalised_away_and_never_forwarded(tmp_path: Path) -> None:
    async with InProcess.start(tmp_path) as gw:
        await standard(gw)
        with_empty = {**OTHER, "tools": []}
        pushed = await push(gw, "other", with_empty)
        assert pushed.status_code == 200 and pushed.json()["version"] == 1  # same content
        assert pushed.json()["tools"] is None
        assert (await call_route(gw, "search", q="x")).status_code == 200
        assert "tools" not in gw.transports["sim"].requests[-1][1]
        assert last_sent(gw)[0]["content"] == "Answer: x"


async def test_the_old_label_spelling_is_accepted_with_a_warning(tmp_path: Path) -> None:
    async with InProcess.start(tmp_path) as gw:
        await standard(gw)
        response = await promote(gw, "support", "triage:production")
        assert response.status_code == 201
        assert response.json()["warnings"] == [
            "`triage:production` is the old spelling; write `triage@production`"
        ]
        assert response.json()["prompt"] == "triage@1"
        fresh = await promote(gw, "support", "triage@production")
        assert "warnings" not in fresh.json()


async def test_openapi_path_parameters_carry_the_name_pattern(tmp_path: Path) -> None:
    async with InProcess.start(tmp_path) as gw:
        spec = (await gw.client.get("/openapi.json")).json()
        label = spec["paths"]["/api/prompts/{name}/labels/{label}"]["post"]["parameters"]
        assert {p["name"]: p["schema"]["pattern"] for p in label} == {
            "name": names.NAME_PATTERN,
            "label": names.NAME_PATTERN,
        }
        route = spec["paths"]["/api/routes/{route}/promote"]["post"]["parameters"][0]
        assert route["schema"]["pattern"] == names.NAME_PATTERN
        batch = spec["paths"]["/api/prompts:batch"]["post"]["requestBody"]
        assert batch["content"]["application/json"]["schema"]["$ref"].endswith("/PushBatch")


async def test_if_match_on_versions_and_labels(tmp_path: Path) -> None:
    async with InProcess.start(tmp_path) as gw:
        assert (await push(gw, "tone", {"text": "one"})).status_code == 201
        stale = await gw.client.post(
            "/api/prompts/tone/versions",
            json={"text": "two"},
            headers={**gw.admin, "If-Match": '"0"'},
        )
        assert stale.status_code == 409
        assert stale.json()["error"]["current"] == {"name": "tone", "latest_version": 1}
        fresh = await gw.client.post(
            "/api/prompts/tone/versions",
            json={"text": "two"},
            headers={**gw.admin, "If-Match": '"1"'},
        )
        assert fresh.status_code == 201 and fresh.json()["version"] == 2
        path = "/api/prompts/tone/labels/production"
        create = await gw.client.post(
            path, json={"version": 1}, headers={**gw.admin, "If-Match": '"0"'}
        )
        assert create.status_code == 200
        again = await gw.client.post(
            path, json={"version": 2}, headers={**gw.admin, "If-Match": '"0"'}
        )
        assert again.status_code == 409 and again.json()["error"]["current"]["version"] == 1
        bad = await gw.client.post(
            path, json={"version": 2}, headers={**gw.admin, "If-Match": "nope"}
        )
        assert bad.status_code == 400 and bad.json()["error"]["field"] == "If-Match"
