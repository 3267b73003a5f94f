"""POST /api/diff: the same report from answers a caller already has, in process; the
noise floor's two rules on answers built to show them; bad bodies are 400s naming the
field."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from inprocess import InProcess
from pilothouse.behaviour import summarise

pytestmark = pytest.mark.anyio


@pytest.fixture
async def gw(tmp_path: Path) -> AsyncIterator[InProcess]:
    async with InProcess.start(tmp_path) as running:
        yield running


def label(value: str) -> dict[str, Any]:
    return {"text": json.dumps({"label": value})}


def case(i: int, old: str, new: str, again: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"id": f"c{i:02d}", "old": label(old), "new": label(new)}
    if again is not None:
        body["old_again"] = label(again)
    return body


async def test_a_report_from_answers_the_caller_has(gw: InProcess) -> None:
    body = {
        "old": "triage@6",
        "new": "triage@7",
        "label_path": "label",
        "cases": [
            case(1, "billing", "billing"),
            {"id": "c02", "old": label("billing"), "new": {"text": "Billing."}},
            {
                "id": "c03",
                "old": {"text": None, "tool_calls": [_tool("lookup", '{"id": 1}')]},
                "new": {"text": None, "tool_calls": [_tool("lookup", '{"id": 2}')]},
            },
            {"id": "c04", "old": {"text": "Sure."}, "new": {"refusal": "I can't help."}},
            {"id": "c05", "old": label("bug"), "new": {"error": "HTTP 503: overloaded"}},
        ],
    }
    response = await gw.client.post("/api/diff", json=body, headers=gw.admin)
    assert response.status_code == 200, response.text
    report = response.json()
    assert (report["old"], report["new"]) == ({"name": "triage@6"}, {"name": "triage@7"})
    assert report["similarity"]["method"] == "lexical"
    assert report["compared"] == 4
    assert report["incomplete"] == [{"id": "c05", "error": "HTTP 503: overloaded"}]
    changes = {c["id"]: [x["detail"] for x in c["changes"]] for c in report["changed_cases"]}
    assert changes == {
        "c02": ["JSON -> not JSON", "billing -> (none)"],
        "c03": ["lookup: arguments: id 1 -> 2"],
        "c04": ["answered -> refused"],
    }
    assert summarise(report)["behaviour"] == {
        "json_validity": 1, "json_keys": 0, "label": 1, "tool_calls": 1, "refusal": 1,
        "gateway_refusal": 0, "meaning": 0,
    }  # fmt: skip


def _tool(name: str, arguments: str) -> dict[str, Any]:
    return {"id": "call_1", "type": "function", "function": {"name": name, "arguments": arguments}}


async def test_the_noise_floor_reports_only_what_the_old_side_cannot_explain(
    gw: InProcess,
) -> None:
    # 10 cases the old version answers the same way twice (5 change in the new one), and
    # 2 it answers differently from one seed to the next (both change in the new one).
    steady = [case(i, "bug", "billing" if i < 5 else "bug", again="bug") for i in range(10)]
    flaky = [case(i, "bug", "question", again="question") for i in range(10, 12)]
    body = {"label_path": "label", "cases": steady + flaky}
    response = await gw.client.post("/api/diff", json=body, headers=gw.admin)
    assert response.status_code == 200, response.text
    report = response.json()
    label = report["categories"]["label"]
    assert (label["changed"], label["noise"], label["steady_changed"]) == (7, 2, 5)
    assert label["p_value"] < 0.05 and label["within_noise"] is False
    assert label["reported"] == 5
    assert [c["id"] for c in report["changed_cases"]] == ["c00", "c01", "c02", "c03", "c04"]

    # An old version that flips on half the cases, and a new one that changes as often:
    # within the noise, nothing reported.
    noisy = [
        case(i, "bug", "question" if i % 2 else "bug", again="bug" if i % 3 else "question")
        for i in range(30)
    ]
    response = await gw.client.post(
        "/api/diff", json={"label_path": "label", "cases": noisy}, headers=gw.admin
    )
    report = response.json()
    assert report["categories"]["label"]["within_noise"] is True
    assert report["categories"]["label"]["reported"] == 0
    assert report["changed"] is False and report["changed_cases"] == []


async def test_without_the_evals_scope_a_key_is_refused(gw: InProcess) -> None:
    response = await gw.client.post(
        "/api/diff", json={"cases": [case(1, "a", "b")]}, headers=gw.auth
    )
    assert response.status_code == 403, response.text


BAD_BODIES = [
    ({"cases": []}, "cases", "at least 1"),
    ({"cases": [case(1, "a", "b"), case(1, "a", "c")]}, "cases", "repeated: c01"),
    ({"cases": [case(1, "a", "b", again="a"), case(2, "a", "b")]}, "cases", "or for none"),
    ({"cases": [case(1, "a", "b")], "label_path": "a..b"}, "label_path", "label path"),
    ({"cases": [case(1, "a", "b")], "rephrase_threshold": 2}, "rephrase_threshold", "1"),
    ({"cases": [{"id": "x", "old": {"txt": "a"}, "new": {}}]}, "cases.0.old.txt", "unknown"),
]


async def test_a_bad_body_is_a_400_naming_the_field(gw: InProcess) -> None:
    for body, field, says in BAD_BODIES:
        response = await gw.client.post("/api/diff", json=body, headers=gw.admin)
        assert response.status_code == 400, (body, response.text)
        error = response.json()["error"]
        assert error["field"] == field and says in error["message"], (body, error)
