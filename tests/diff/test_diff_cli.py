"""`pilothouse diff` end to end: prompt versions whose wording changes what the simulated
model does, compared through a real gateway; what the user reads and the exit status."""

from __future__ import annotations

from pathlib import Path

import pytest
from diff_harness import TICKETS, Pushed, chat_prompt, report_of, write_cases

from pilothouse.behaviour import summarise


def _refs(pushed: Pushed, old: str, new: str, prompt: str = "triage") -> list[str]:
    versions = pushed.triage if prompt == "triage" else pushed.orders
    return [f"{prompt}@{versions[old]}", f"{prompt}@{versions[new]}"]


def test_a_wording_that_drops_the_label_shows_the_flips_and_exits_1(
    pushed: Pushed, tmp_path: Path
) -> None:
    args = [*_refs(pushed, "json", "one-word"), "--dataset", str(pushed.tickets), "--model", "fast"]
    result = pushed.stack.diff(
        *args, "--label-path", "$.label", "--format", "json", data_dir=tmp_path
    )
    assert result.exit_code == 1, result.stderr
    report = report_of(result)
    assert report["labels"]["matrix"] == {
        "billing": {"(none)": 3},
        "bug": {"bug": 2},
        "question": {"question": 1},
    }
    assert report["categories"]["label"]["reported"] == 3
    assert report["categories"]["json_validity"]["reported"] == 3
    assert report["meaning"] == {"same": 3, "rephrased": 0, "changed": 3}
    changed = {c["id"]: c for c in report["changed_cases"]}
    assert sorted(changed) == ["t01", "t04", "t06"]
    assert changed["t04"]["old"]["text"].startswith('{"label": "billing"')
    assert changed["t04"]["new"]["text"] == "Billing."
    assert {c["detail"] for c in changed["t04"]["changes"]} == {
        "JSON -> not JSON",
        "billing -> (none)",
    }
    assert report["length_ratio"]["min"] < 0.2 and report["length_ratio"]["max"] == 1.0
    summary = summarise(report)
    assert summary["label_flips"] == {"billing -> (none)": 3}
    assert summary["behaviour"]["label"] == 3 and summary["changed_cases"] == 3
    assert "behaviour changed in 3 of 6 compared cases" in result.stderr

    table = pushed.stack.diff(*args, "--label-path", "label", data_dir=tmp_path)
    assert table.exit_code == 1
    assert "label: billing -> (none)" in table.stdout
    assert "    new: Billing." in table.stdout
    assert "billing    3       0    0" in table.stdout  # the old -> new matrix


def test_a_change_that_only_rephrases_is_reported_as_rephrased_and_exits_0(
    pushed: Pushed, tmp_path: Path
) -> None:
    args = [*_refs(pushed, "json", "kind"), "--dataset", str(pushed.tickets), "--model", "fast"]
    result = pushed.stack.diff(
        *args, "--label-path", "label", "--format", "json", data_dir=tmp_path
    )
    assert result.exit_code == 0, result.stderr
    report = report_of(result)
    assert report["similarity"] == {"method": "lexical", "model": None, "threshold": 0.5}
    assert report["meaning"] == {"same": 0, "rephrased": 6, "changed": 0}
    assert all(entry["reported"] == 0 for entry in report["categories"].values())
    assert report["changed"] is False and report["changed_cases"] == []
    assert [c["id"] for c in report["rephrased_cases"]] == [f"t0{i}" for i in range(1, 7)]
    assert "no behaviour change in 6 compared cases (6 rephrased)" in result.stderr

    embedded = pushed.stack.diff(
        *args, "--embedding-model", "embed", "--rephrase-threshold", "0.6", "--format", "json",
        data_dir=tmp_path,
    )  # fmt: skip
    assert embedded.exit_code == 0, embedded.stderr
    report = report_of(embedded)
    assert report["similarity"] == {"method": "embeddings", "model": "embed", "threshold": 0.6}
    assert report["meaning"]["rephrased"] == 6
    assert report["calls"]["embeddings"] == {"live": 6}


def test_a_new_key_in_the_json_is_a_key_set_change(pushed: Pushed, tmp_path: Path) -> None:
    args = [*_refs(pushed, "json", "confidence"), "--dataset", str(pushed.tickets)]
    result = pushed.stack.diff(*args, "--model", "fast", "--format", "json", data_dir=tmp_path)
    assert result.exit_code == 1, result.stderr
    report = report_of(result)
    assert report["categories"]["json_keys"]["reported"] == 3
    assert report["categories"]["json_validity"]["changed"] == 0
    assert "label" not in report["categories"]  # no --label-path
    details = {c["id"]: c["changes"] for c in report["changed_cases"]}
    assert details["t01"] == [{"category": "json_keys", "detail": "keys added confidence"}]


def test_tool_call_changes_name_the_tool_and_the_arguments(pushed: Pushed, tmp_path: Path) -> None:
    dataset = write_cases(tmp_path / "orders.jsonl", [("o1", "Where is order A-123?", "orders")])
    common = ["--dataset", str(dataset), "--model", "fast", "--format", "json"]
    email = pushed.stack.diff(
        *_refs(pushed, "number", "email", "orders"), *common, data_dir=tmp_path
    )
    assert email.exit_code == 1, email.stderr
    (case,) = report_of(email)["changed_cases"]
    assert case["changes"] == [
        {"category": "tool_calls", "detail": "lookup_order: arguments: added email"}
    ]
    assert case["new"]["tool_calls"] == [
        'lookup_order({"email":"ada@example.com","order_id":"A-123"})'
    ]
    other = pushed.stack.diff(
        *_refs(pushed, "number", "search", "orders"), *common, data_dir=tmp_path
    )
    (case,) = report_of(other)["changed_cases"]
    assert case["changes"] == [
        {"category": "tool_calls", "detail": "lookup_order -> search_orders"}
    ]


def test_a_refusal_that_starts_is_a_refusal_flip(pushed: Pushed, tmp_path: Path) -> None:
    args = [*_refs(pushed, "json", "no-refunds"), "--dataset", str(pushed.tickets)]
    result = pushed.stack.diff(*args, "--model", "fast", "--format", "json", data_dir=tmp_path)
    assert result.exit_code == 1, result.stderr
    report = report_of(result)
    assert report["categories"]["refusal"]["reported"] == 1
    (case,) = report["changed_cases"]
    assert case["id"] == "t04"
    assert {"category": "refusal", "detail": "answered -> refused"} in case["changes"]
    assert case["new"]["refused"] is True


def test_the_unchanged_side_is_answered_from_the_cache(pushed: Pushed, tmp_path: Path) -> None:
    stack = pushed.stack
    common = ["--dataset", str(pushed.tickets), "--model", "fast", "--format", "json"]
    first = stack.diff(*_refs(pushed, "json", "one-word"), *common, data_dir=tmp_path)
    assert report_of(first)["calls"]["sides"] == {"old": {"called": 6}, "new": {"called": 6}}

    before = stack.sim_calls()
    second = stack.diff(*_refs(pushed, "json", "kind"), *common, data_dir=tmp_path)
    assert report_of(second)["calls"]["sides"] == {"old": {"cached": 6}, "new": {"called": 6}}
    assert stack.sim_calls() - before == 6, "the unchanged side must not reach the provider"

    before = stack.sim_calls()
    again = stack.diff(*_refs(pushed, "json", "kind"), *common, data_dir=tmp_path)
    assert report_of(again)["calls"]["gateway_calls"] == 0
    assert stack.sim_calls() == before
    assert report_of(again)["meaning"] == report_of(second)["meaning"]


def test_the_noise_floor_leaves_real_changes_reported(pushed: Pushed, tmp_path: Path) -> None:
    args = [*_refs(pushed, "json", "one-word"), "--dataset", str(pushed.tickets), "--model", "fast"]
    result = pushed.stack.diff(
        *args, "--label-path", "label", "--noise-floor", "--format", "json", data_dir=tmp_path
    )
    assert result.exit_code == 1, result.stderr
    report = report_of(result)
    assert report["noise_floor"] is True
    assert report["categories"]["label"] == {
        "changed": 3, "noise": 0, "steady_changed": 3, "p_value": 0.0, "within_noise": False,
        "reported": 3,
    }  # fmt: skip
    assert report["calls"]["sides"]["old_again"] == {"called": 6}  # seed + 1: its own calls


def test_the_noise_floor_holds_back_flips_the_old_version_makes_on_its_own(
    pushed: Pushed, tmp_path: Path
) -> None:
    # No reply rule matches "mood": each answer is drawn from the schema's enum, seeded by
    # the request, so the old version disagrees with itself from one seed to the next.
    schema = {"type": "object", "properties": {"mood": {"enum": ["calm", "upset", "neutral"]}}}
    fmt = {"type": "json_schema", "json_schema": {"name": "mood", "schema": schema}}
    old = pushed.stack.push("mood", chat_prompt("Rate the mood.", response_format=fmt))
    new = pushed.stack.push("mood", chat_prompt("Rate the mood, please.", response_format=fmt))
    rows = [(f"m{i:02d}", f"Message {i} from a customer", "chat") for i in range(30)]
    dataset = write_cases(tmp_path / "moods.jsonl", rows)
    args = [f"mood@{old}", f"mood@{new}", "--dataset", str(dataset), "--model", "fast"]
    common = ["--label-path", "mood", "--format", "json"]

    plain = pushed.stack.diff(*args, *common, data_dir=tmp_path)
    assert plain.exit_code == 1
    assert report_of(plain)["categories"]["label"]["reported"] > 10  # without a floor: "flips"

    floored = pushed.stack.diff(*args, *common, "--noise-floor", data_dir=tmp_path)
    assert floored.exit_code == 0, floored.stderr
    report = report_of(floored)
    label = report["categories"]["label"]
    assert label["changed"] == report_of(plain)["categories"]["label"]["changed"]
    assert label["noise"] > 10, "the old version's own flips are measured"
    assert label["within_noise"] is True and label["p_value"] > 0.05
    assert label["reported"] == 0 and report["changed_cases"] == []
    assert "no behaviour change in 30 compared cases beyond the noise floor" in floored.stderr


def test_a_route_canary_against_its_active_release(pushed: Pushed, tmp_path: Path) -> None:
    admin = pushed.stack.admin
    triage = pushed.triage
    for route in ("diff-route", "diff-alone"):
        promoted = admin.post(
            f"/api/routes/{route}/promote",
            json={"prompt": f"triage@{triage['json']}", "model": "fast"},
        )
        assert promoted.status_code in (200, 201), promoted.text
    canary = admin.post(
        "/api/routes/diff-route/canary",
        json={"prompt": f"triage@{triage['one-word']}", "model": "fast", "weight": 10},
    )
    assert canary.status_code in (200, 201), canary.text
    args = ["--dataset", str(pushed.tickets), "--label-path", "label", "--format", "json"]
    result = pushed.stack.diff("--route", "diff-route", *args, data_dir=tmp_path)
    assert result.exit_code == 1, result.stderr
    report = report_of(result)
    assert (report["old"]["name"], report["new"]["name"]) == (
        "diff-route/active",
        "diff-route/canary",
    )
    assert report["labels"]["flips"] == 3
    served = report["calls"]["served_release_ids"]
    assert served["old"] != served["new"]

    alone = pushed.stack.diff("--route", "diff-alone", *args, data_dir=tmp_path)
    assert alone.exit_code == 2
    assert "route 'diff-alone' has no canary release" in alone.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["triage@1", "triage@99", "--model", "fast"], "no prompt 'triage' version 99"),
        (["nosuch@1", "triage@1", "--model", "fast"], "no prompt 'nosuch'"),
        (["triage@1", "triage@2"], "--model: name the model alias"),
        (["triage@1", "triage@2", "--model", "nope"], "the gateway serves no model 'nope'"),
        (["triage@1", "--model", "fast"], "give two prompt versions"),
        (["triage@1", "triage@2", "--model", "fast", "--label-path", "a..b"], "label path 'a..b'"),
        (["--route", "nosuch"], "no route 'nosuch'"),
        (["--route", "diff-route", "--model", "fast"], "--route compares the route's active"),
    ],
)
def test_bad_input_is_exit_2_before_any_call(
    pushed: Pushed, tmp_path: Path, args: list[str], message: str
) -> None:
    before = pushed.stack.sim_calls()
    result = pushed.stack.diff(*args, "--dataset", str(pushed.tickets), data_dir=tmp_path)
    assert result.exit_code == 2, result.output
    assert message in result.stderr
    assert pushed.stack.sim_calls() == before


@pytest.mark.parametrize(
    ("dataset", "message"),
    [
        ("missing.jsonl", "--dataset missing.jsonl: no such file"),
        ("nosuch", "--dataset nosuch: no such file, and"),
        ("nosuch@x", "a stored dataset is NAME or NAME@VERSION"),
    ],
)
def test_an_unknown_dataset_is_exit_2(
    pushed: Pushed, tmp_path: Path, dataset: str, message: str
) -> None:
    refs = _refs(pushed, "json", "kind")
    result = pushed.stack.diff(*refs, "--model", "fast", "--dataset", dataset, data_dir=tmp_path)
    assert result.exit_code == 2 and message in result.stderr, result.stderr


def test_a_stored_dataset_by_name_and_version(pushed: Pushed, tmp_path: Path) -> None:
    rows = [{"id": i, "variables": {"ticket": text}} for i, text, _ in TICKETS[:3]]
    stored = pushed.stack.admin.post("/api/datasets/diff-tickets/versions", json={"rows": rows})
    assert stored.status_code == 201, stored.text
    refs = _refs(pushed, "json", "one-word")
    for ref in ("diff-tickets", "diff-tickets@1"):
        result = pushed.stack.diff(
            *refs, "--model", "fast", "--dataset", ref, "--format", "json", data_dir=tmp_path
        )
        assert result.exit_code == 1, result.stderr
        report = report_of(result)
        assert report["dataset"]["source"] == "diff-tickets@1" and report["cases"] == 3
    missing = pushed.stack.diff(
        *refs, "--model", "fast", "--dataset", "diff-tickets@7", data_dir=tmp_path
    )
    assert missing.exit_code == 2 and "--dataset diff-tickets@7" in missing.stderr


def test_a_dataset_row_the_prompt_cannot_render_is_exit_2(pushed: Pushed, tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "x1", "variables": {"tikcet": "typo"}}\n')
    refs = _refs(pushed, "json", "kind")
    result = pushed.stack.diff(*refs, "--model", "fast", "--dataset", str(bad), data_dir=tmp_path)
    assert result.exit_code == 2
    assert "case x1" in result.stderr and "tikcet" in result.stderr


def test_an_unreachable_gateway_is_exit_3(pushed: Pushed, tmp_path: Path) -> None:
    refs = _refs(pushed, "json", "kind")
    result = pushed.stack.diff(
        *refs, "--model", "fast", "--dataset", str(pushed.tickets), data_dir=tmp_path,
        PILOTHOUSE_URL="http://127.0.0.1:9",
    )  # fmt: skip
    assert result.exit_code == 3
    assert "cannot reach Pilothouse" in result.stderr


def test_cases_whose_calls_failed_are_listed_and_exit_3(pushed: Pushed, tmp_path: Path) -> None:
    dataset = write_cases(tmp_path / "one.jsonl", [("t01", "I was charged twice", "payments")])
    refs = _refs(pushed, "json", "one-word")
    result = pushed.stack.diff(
        *refs, "--model", "broken", "--dataset", str(dataset), "--format", "json",
        data_dir=tmp_path,
    )  # fmt: skip
    assert result.exit_code == 3, result.stderr
    report = report_of(result)
    assert report["compared"] == 0 and report["changed"] is False
    (failed,) = report["incomplete"]
    assert failed["id"] == "t01" and "503" in failed["error"]
    assert "1 cases could not be compared (calls failed)" in result.stderr


def test_markdown_goes_to_the_out_file(pushed: Pushed, tmp_path: Path) -> None:
    out = tmp_path / "reports" / "diff.md"
    args = [*_refs(pushed, "json", "one-word"), "--dataset", str(pushed.tickets), "--model", "fast"]
    result = pushed.stack.diff(
        *args, "--label-path", "label", "--format", "markdown", "--out", str(out), data_dir=tmp_path
    )
    assert result.exit_code == 1 and result.stdout == ""
    text = out.read_text()
    assert text.startswith(f"### Behaviour diff: triage@{pushed.triage['json']}/fast -> ")
    assert "| label (label) | 3 | - | 3 |" in text
    assert "  - new: `Billing.`" in text
