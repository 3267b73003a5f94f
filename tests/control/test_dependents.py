"""Changes that would break a dependent are refused, naming it; forcing needs a reason and
is audited (SQLite and PostgreSQL). Pushes check the whole composition; so does lint."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from control_setup import statements

from pilothouse import errors
from pilothouse.config import ModelSpec
from pilothouse.registry import prompt_files
from pilothouse.registry import prompts as registry
from pilothouse.registry.prompt_content import parse_content
from pilothouse.releases import promotion
from pilothouse.store import Store, open_store
from pilothouse.yamlfile import FileError

MODELS = {
    "fast": ModelSpec(provider="sim", model="sim-small"),
    "gone": ModelSpec(provider="sim", model="sim-gone", retirement_date=date(2020, 1, 1)),
}
TRIAGE = {
    "variables": {"ticket": {}},
    "messages": [
        {"role": "system", "content": "Sort. {{> house-style}}"},
        {"role": "user", "content": "{{ticket}}"},
    ],
}


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    store = open_store(database_url)
    store.upgrade()
    yield store
    store.close()


def push(store: Store, name: str, body: dict[str, Any], **kwargs: Any) -> registry.ResolvedPrompt:
    return registry.create_version(store, name, parse_content(body), **kwargs)[0]


def setup(store: Store) -> promotion.Release:
    push(store, "house-style", {"text": "Be brief."}, labels=["production"])
    push(store, "triage", TRIAGE, labels=["production"])
    return promotion.Promoter(store, MODELS).promote(
        "support", prompt="triage@production", model="fast", params={}, reason=None
    )


def test_deleting_an_included_label_is_refused_naming_prompts_and_routes(store: Store) -> None:
    release = setup(store)
    with pytest.raises(errors.Conflict) as caught:
        registry.delete_label(store, "house-style", "production", reason="retire")
    refusal = caught.value
    assert refusal.status == 409 and refusal.code == "would_break_dependents"
    named = {(d["kind"], d["name"]) for d in refusal.details["dependents"]}
    assert named == {("prompt", "triage")}
    assert "triage@production (version 1)" in refusal.message
    # The route is named, as unaffected: its release froze house-style@1 when promoted.
    (route,) = refusal.details["routes_unaffected"]
    assert route["name"] == "support" and release.id in route["ref"]
    assert registry.get(store, "house-style").version == 1  # nothing changed

    with pytest.raises(errors.InvalidRequest, match="needs a reason"):
        registry.delete_label(store, "house-style", "production", force=True)
    done = registry.delete_label(
        store, "house-style", "production", force=True, reason="moving to tone"
    )
    assert done["forced"] is True and [d["name"] for d in done["broken"]] == ["triage"]
    entry = registry.history(store, "house-style")[0]
    assert entry["action"] == "prompt.label_delete" and entry["reason"] == "moving to tone"
    assert entry["before"] == {"label": "production", "version": 1}
    assert entry["after"]["forced"] is True
    with pytest.raises(errors.Conflict, match="cannot be composed"):
        registry.get(store, "triage")  # a clear error for readers, not a crash


def test_a_label_move_that_adds_an_undeclared_variable_is_refused(store: Store) -> None:
    setup(store)
    push(store, "house-style", {"text": "Be {{tone}}."})  # version 2, no label: harmless
    with pytest.raises(errors.Conflict) as caught:
        registry.move_label(store, "house-style", "production", 2, reason="tone")
    assert "uses {{tone}}, which triage does not declare" in caught.value.message
    with pytest.raises(errors.Conflict, match="which triage does not declare"):
        push(store, "house-style", {"text": "Be {{tone}}."}, labels=["production"])
    # Declaring it in the includer, in the same push as the fragment, is fine: one batch.
    triage_v2 = {**TRIAGE, "variables": {"ticket": {}, "tone": {"default": "kind"}}}
    results = registry.push(
        store,
        [
            registry.PushItem("house-style", parse_content({"text": "Be {{tone}}."})),
            registry.PushItem("triage", parse_content(triage_v2)),
        ],
        labels=["production"],
        note="tone everywhere",
    )
    assert [(p.name, p.version) for p, _ in results] == [("house-style", 2), ("triage", 2)]
    rendered = registry.get(store, "triage").render({"ticket": "x"})
    assert rendered.messages[0]["content"] == "Sort. Be kind."


def test_a_label_move_reads_the_prompts_that_include_it_and_no_other(store: Store) -> None:
    setup(store)  # triage includes house-style; route support froze it
    push(store, "signature", {"text": "Thanks. {{> house-style}}"}, labels=["production"])
    reply = {
        "variables": {"ticket": {}},
        "messages": [{"role": "user", "content": "{{ticket}} {{> signature}}"}],
    }
    push(store, "reply", reply, labels=["production"])
    for n in range(3):
        body = {
            "variables": {"q": {}},
            "messages": [{"role": "user", "content": f"{n}: {{{{q}}}}"}],
        }
        push(store, f"loner-{n}", body, labels=["production"])
        push(store, f"loner-{n}", {**body, "messages": [{"role": "user", "content": "{{q}}!"}]})
    with statements(store.engine) as seen:
        registry.move_label(store, "loner-0", "production", 2)
    read = {
        str(value)
        for statement, parameters in seen
        if "FROM prompt_versions" in statement
        for value in (parameters.values() if isinstance(parameters, dict) else parameters)
    }
    others = {"house-style", "triage", "signature", "reply", "loner-1", "loner-2"}
    assert read & others == set(), read

    # A fragment's move still finds every includer, two includes away, and the route.
    push(store, "house-style", {"text": "Be {{tone}}."})
    with pytest.raises(errors.Conflict) as caught:
        registry.move_label(store, "house-style", "production", 2, reason="tone")
    details = caught.value.details or {}
    assert {"triage", "reply"} <= {d["name"] for d in details["dependents"]}
    assert [d["name"] for d in details["routes_unaffected"]] == ["support"]


def test_a_refused_batch_leaves_nothing_behind(store: Store) -> None:
    setup(store)
    before = registry.list_prompts(store)
    with pytest.raises(errors.InvalidRequest, match="no prompt 'missing'"):
        registry.push(
            store,
            [
                registry.PushItem("new-one", parse_content({"text": "fine"})),
                registry.PushItem(
                    "broken", parse_content({**TRIAGE, "messages": [TRIAGE["messages"][1]]})
                ),
                registry.PushItem("worse", parse_content({"text": "{{> missing}}"})),
            ],
            labels=["staging"],
        )
    assert registry.list_prompts(store) == before


def test_moves_and_rollbacks_check_the_version_they_serve(store: Store) -> None:
    setup(store)
    push(store, "house-style", {"text": "Plain."}, labels=["production"])
    registry.move_label(store, "house-style", "production", 1, reason="back")
    # rollback goes to version 2; fine. A rollback to a version that breaks is refused.
    assert registry.rollback_label(store, "house-style", "production").version == 2
    with pytest.raises(errors.Conflict, match="If-Match said"):
        registry.move_label(store, "house-style", "production", 1, expected=7)
    assert registry.move_label(store, "house-style", "production", 1, expected=2).version == 1


def test_rolling_back_onto_a_retired_model_is_refused_unless_forced(store: Store) -> None:
    push(store, "triage", {**TRIAGE, "messages": TRIAGE["messages"][1:]}, labels=["production"])
    promoter = promotion.Promoter(store, {"fast": MODELS["fast"], "gone": MODELS["fast"]})
    first = promoter.promote("r", prompt="triage@1", model="gone", params={}, reason=None)
    promoter.promote("r", prompt="triage@1", model="fast", params={}, reason=None)
    retired = promotion.Promoter(store, MODELS)  # the catalog now says `gone` is retired
    with pytest.raises(errors.Conflict) as caught:
        retired.rollback("r", reason="bad")
    assert "model 'gone' is retired" in caught.value.message
    assert caught.value.details["release"] == first.id
    with pytest.raises(errors.InvalidRequest, match="needs a reason"):
        retired.rollback("r", reason=None, force=True)
    assert retired.rollback("r", reason="we know", force=True).id == first.id
    with store.connect() as conn:
        from pilothouse.store import audit

        entry = audit.history(conn, "route:r", limit=1)[0]
    assert entry["action"] == "release.rollback" and entry["after"]["forced"] is True


def test_lint_checks_the_composition_across_files(tmp_path: Path) -> None:
    (tmp_path / "house-style.yaml").write_text("text: Be {{tone}}.\n")
    (tmp_path / "triage.yaml").write_text(
        "variables:\n  ticket: {}\nmessages:\n"
        "  - role: system\n    content: 'Sort. {{> house-style}} {{> elsewhere}}'\n"
        "  - role: user\n    content: '{{ticket}}'\n"
    )
    with pytest.raises(FileError) as caught:
        prompt_files.load_dir(tmp_path)
    (problem,) = caught.value.problems
    assert f"{tmp_path / 'triage.yaml'}:5: messages[0].content:" in problem
    assert "uses {{tone}}, which triage does not declare" in problem
    (tmp_path / "house-style.yaml").write_text("text: Be kind.\n")
    files = prompt_files.load_dir(tmp_path)
    problems, notes = prompt_files.composition_problems(files)
    assert problems == [] and "{{> elsewhere@production}}: not among these files" in notes[0]
    (tmp_path / "house-style.yaml").write_text("text: 'Loop {{> triage}}'\n")
    with pytest.raises(FileError, match="include cycle: triage -> house-style -> triage"):
        prompt_files.load_dir(tmp_path)
