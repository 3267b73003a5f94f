"""The prompt registry on SQLite and PostgreSQL: versions, labels, rollback, fragments, audit."""

from __future__ import annotations

import pytest

from pilothouse import errors
from pilothouse.registry import prompts as registry
from pilothouse.registry import templates
from pilothouse.registry.prompt_content import parse_content
from pilothouse.store import Store, changes, open_store


@pytest.fixture
def store(database_url: str) -> Store:
    store = open_store(database_url)
    store.upgrade()
    yield store
    store.close()


def chat(system: str, **variables: dict) -> dict:
    return {
        "messages": [
            {"role": "system", "content": system},
            {"role": "user", "content": "{{ticket}}"},
        ],
        "variables": {"ticket": {}, **variables},
    }


def push(
    store: Store, name: str, body: dict, **kwargs: object
) -> tuple[registry.ResolvedPrompt, bool]:
    return registry.create_version(store, name, parse_content(body), **kwargs)


def test_identical_content_returns_the_existing_version(store: Store) -> None:
    first, created = push(store, "triage", chat("Sort tickets."), owner="support")
    assert created and first.version == 1 and len(first.hash) == 64
    again, created_again = push(store, "triage", chat("Sort tickets."))
    assert not created_again and again.version == 1 and again.hash == first.hash
    # Key order and an explicit `required: true` do not change the canonical form.
    reordered = {
        "variables": {"ticket": {"required": True}},
        "messages": chat("Sort tickets.")["messages"],
    }
    assert push(store, "triage", reordered)[0].version == 1
    second, created = push(store, "triage", chat("Sort support tickets."))
    assert created and second.version == 2 and second.hash != first.hash


def test_labels_move_and_rollbacks_stack(store: Store) -> None:
    for text in ("v1", "v2", "v3"):
        push(store, "triage", chat(text), labels=["production"])
    assert registry.get(store, "triage").version == 3
    assert registry.rollback_label(store, "triage", "production", reason="bad wording").version == 2
    assert registry.rollback_label(store, "triage", "production").version == 1
    with pytest.raises(errors.Conflict, match="no earlier version"):
        registry.rollback_label(store, "triage", "production")
    registry.move_label(store, "triage", "production", 3, reason="fixed")
    assert registry.get(store, "triage", label="production").version == 3
    assert registry.get(store, "triage", version=2).content["messages"][0]["content"] == "v2"
    trail = registry.history(store, "triage")
    actions = [entry["action"] for entry in trail]
    assert actions.count("prompt.rollback") == 2 and actions.count("prompt.version") == 3
    rollback = next(e for e in trail if e["action"] == "prompt.rollback")
    assert rollback["before"] == {"label": "production", "version": 2}
    assert rollback["after"] == {"label": "production", "version": 1}


def test_every_write_bumps_the_configuration_version(store: Store) -> None:
    with store.connect() as conn:
        start = changes.current(conn)
    push(store, "triage", chat("v1"))
    push(store, "triage", chat("v1"))  # unchanged: nothing to announce
    registry.move_label(store, "triage", "staging", 1)
    registry.delete_label(store, "triage", "staging")
    with store.connect() as conn:
        assert changes.current(conn) == start + 3


def test_unknown_names_labels_and_versions_say_what_exists(store: Store) -> None:
    push(store, "triage", chat("v1"), labels=["staging"])
    with pytest.raises(errors.NotFound, match="no prompt 'nope'"):
        registry.get(store, "nope")
    with pytest.raises(errors.NotFound, match="its labels are: staging"):
        registry.get(store, "triage", label="production")
    with pytest.raises(errors.NotFound, match=r"versions are 1 to 1"):
        registry.get(store, "triage", version=7)
    with pytest.raises(errors.InvalidRequest, match="invalid label"):
        registry.move_label(store, "triage", "12", 1)


def test_fragments_resolve_by_label_or_version_and_record_what_was_used(store: Store) -> None:
    push(store, "tone", {"text": "Be {{style}}."}, labels=["production"])
    push(store, "tone", {"text": "Be very {{style}}."}, labels=["staging"])
    push(
        store,
        "triage",
        chat("Sort. {{> tone}} {{> tone@1}}", style={"default": "kind"}),
        labels=["production"],
    )
    prompt = registry.get(store, "triage")
    assert set(prompt.fragments) == {"tone@production", "tone@1"}
    rendered = prompt.render({"ticket": "Card declined"})
    assert rendered.messages[0]["content"] == "Sort. Be kind. Be kind."
    assert rendered.fragments == {"tone@production": 1, "tone@1": 1}
    etag = prompt.etag
    registry.move_label(store, "tone", "production", 2)
    moved = registry.get(store, "triage")
    assert moved.version == prompt.version and moved.etag != etag  # same version, new fragment
    assert (
        moved.render({"ticket": "x", "style": "brief"}).messages[0]["content"]
        == "Sort. Be very brief. Be brief."
    )


def test_bad_includes_and_cycles_are_refused_before_storing(store: Store) -> None:
    with pytest.raises(errors.InvalidRequest, match="no prompt 'missing'"):
        push(store, "triage", chat("{{> missing}}"))
    assert registry.list_prompts(store) == []  # nothing half-stored
    push(store, "a", {"text": "A"}, labels=["production"])
    push(store, "b", {"text": "B {{> a}}"}, labels=["production"])
    with pytest.raises(errors.InvalidRequest, match="include cycle: a -> b -> a"):
        push(store, "a", {"text": "A {{> b}}"}, labels=["production"])
    push(store, "chatty", chat("hi"), labels=["production"])
    with pytest.raises(errors.InvalidRequest, match="is a chat prompt, not a fragment"):
        push(store, "x", chat("{{> chatty}}"))


def test_content_checks_name_the_field() -> None:
    with pytest.raises(errors.InvalidRequest, match="undeclared variables tikcet") as caught:
        parse_content({"messages": [{"role": "user", "content": "{{tikcet}}"}]})
    assert caught.value.param == "messages.0.content"
    with pytest.raises(errors.InvalidRequest, match="not both"):
        parse_content({"messages": [{"role": "user", "content": "x"}], "text": "y"})
    with pytest.raises(errors.InvalidRequest, match="unsupported template tag"):
        parse_content(
            {"messages": [{"role": "user", "content": "{{ x.upper() }}"}], "variables": {"x": {}}}
        )


def test_render_lists_missing_and_unknown_variables() -> None:
    variables = templates.parse_variables({"ticket": {}, "lang": {"default": "en"}})
    with pytest.raises(templates.RenderError) as caught:
        templates.render(
            "triage", [{"role": "user", "content": "{{ticket}} {{lang}}"}], variables, {"tone": 1}
        )
    assert caught.value.missing == ["ticket"] and caught.value.unknown == ["tone"]
    done = templates.render(
        "t", [{"role": "user", "content": "{{ticket}}/{{lang}}"}], variables, {"ticket": {"id": 3}}
    )
    assert done.messages[0]["content"] == '{"id": 3}/en'
