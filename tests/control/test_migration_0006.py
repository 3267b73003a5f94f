"""Migration 0006 freezes every existing release to what its includes' labels point at
when migrated, and records each freeze in the audit trail; a release that cannot be frozen
(the wedge of issue 10: its fragment's label was deleted) is recorded as such and
quarantined when served, while everything else loads (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import command
from alembic.config import Config

from pilothouse.registry import composition, templates
from pilothouse.releases.serving import load_routes
from pilothouse.store import audit, open_store
from pilothouse.store.database import MIGRATIONS_DIR

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def _at(store_url: str, revision: str) -> None:
    store = open_store(store_url)
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    with store.engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, revision)
    store.close()


def _version(conn: sa.Connection, name: str, number: int, content: dict, digest: str) -> None:
    conn.execute(
        sa.text(
            "INSERT INTO prompt_versions (prompt_name, version, hash, content, created_by, "
            "created_at) VALUES (:n, :v, :h, :c, 'old', :at)"
        ),
        {"n": name, "v": number, "h": digest, "c": json.dumps(content), "at": NOW},
    )


def _release(conn: sa.Connection, release_id: str, route: str, prompt: str, digest: str) -> None:
    conn.execute(
        sa.text(
            "INSERT INTO releases (id, route, prompt_name, prompt_version, prompt_hash, "
            "model_alias, params, created_by, created_at) "
            "VALUES (:id, :route, :p, 1, :h, 'fast', '{}', 'old', :at)"
        ),
        {"id": release_id, "route": route, "p": prompt, "h": digest, "at": NOW},
    )
    conn.execute(
        sa.text(
            "INSERT INTO routes (name, active_release_id, canary_weight, created_at, updated_at)"
            " VALUES (:route, :id, 0, :at, :at)"
        ),
        {"route": route, "id": release_id, "at": NOW},
    )


def test_existing_releases_are_frozen_and_an_unfreezable_one_is_quarantined(
    database_url: str,
) -> None:
    _at(database_url, "0005")
    engine = sa.create_engine(database_url.replace("postgresql://", "postgresql+psycopg://", 1))
    chat = {
        "variables": {"q": {"required": True}},
        "messages": [{"role": "user", "content": "{{> house-style}} {{q}}"}],
    }
    with engine.begin() as conn:
        _version(conn, "house-style", 1, {"variables": {}, "text": "Be brief."}, "a" * 64)
        conn.execute(
            sa.text(
                "INSERT INTO prompt_labels (prompt_name, label, version, updated_by, updated_at)"
                " VALUES ('house-style', 'production', 1, 'old', :at)"
            ),
            {"at": NOW},
        )
        _version(conn, "triage", 1, chat, "b" * 64)
        _version(
            conn,
            "plain",
            1,
            {"variables": {}, "messages": [{"role": "user", "content": "hi"}]},
            "c" * 64,
        )
        wedged = {**chat, "messages": [{"role": "user", "content": "{{> tone}} {{q}}"}]}
        _version(conn, "wedged", 1, wedged, "d" * 64)  # tone@production: deleted long ago
        _release(conn, "rel_support", "support", "triage", "b" * 64)
        _release(conn, "rel_search", "search", "plain", "c" * 64)
        _release(conn, "rel_wedged", "wedged-route", "wedged", "d" * 64)
    engine.dispose()

    store = open_store(database_url)
    store.upgrade()  # 0006
    with store.connect() as conn:
        frozen = dict(conn.execute(sa.text("SELECT id, composition_hash FROM releases")).all())
        fragment = templates.Fragment("house-style", 1, "a" * 64, "Be brief.")
        assert frozen["rel_support"] == composition.composition_hash(
            "b" * 64, {"house-style@production": fragment}
        )
        assert frozen["rel_search"] == "c" * 64 and frozen["rel_wedged"] is None
        freezes = [e for e in audit.history(conn) if e["action"] == "release.freeze"]
        assert len(freezes) == 3 and {e["actor"] for e in freezes} == {"migration 0006"}
        by_release = {(e["after"] or {}).get("release"): e for e in freezes}
        assert by_release["rel_support"]["after"]["fragments"]["house-style@production"] == {
            "name": "house-style",
            "version": 1,
            "hash": "a" * 64,
            "label": "production",
        }
        (failed,) = [e for e in freezes if e["after"] is None]
        assert "rel_wedged could not be frozen" in failed["reason"]
        assert "tone@production" in failed["reason"]
        loaded = load_routes(conn)
    store.close()
    routes = {name: route for name, route in loaded.entries.items() if route is not None}
    problems = [item for found in loaded.problems.values() for item in found]
    assert routes["support"].active is not None and routes["search"].active is not None
    rendered = routes["support"].active.prompt.render({"q": "x"})
    assert rendered.messages[0]["content"] == "Be brief. x"
    assert routes["wedged-route"].active is None
    (problem,) = problems
    assert problem.kind == "release" and problem.id == "rel_wedged"
    assert "could not be frozen when migrated" in problem.problem
