"""frozen release composition, canary salts, key scopes, deployment settings

Every existing release is frozen to what its includes' labels point at now, and each
freeze is recorded in the audit trail (actor `migration 0006`). A release whose includes
cannot be resolved keeps NULL fragments, is audited with the reason, and is quarantined
when served (a clear error on that route, never a failed start).

Self-contained: the include syntax and the composition hash are written out here as they
are at this revision (registry/templates.py, registry/composition.py), so later changes to
that code cannot change what this migration did.

Revision ID: 0006
Revises: 0005
"""

import hashlib
import json
import re
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_INCLUDE = re.compile(
    r"\{\{>\s*([A-Za-z0-9][A-Za-z0-9_.-]*)(?:@([A-Za-z0-9][A-Za-z0-9_.-]*))?\s*\}\}"
)
ACTOR = "migration 0006"


def upgrade() -> None:
    with op.batch_alter_table("api_keys") as table:
        table.add_column(sa.Column("scopes", sa.JSON(), nullable=True))
        table.add_column(sa.Column("prompts", sa.JSON(), nullable=True))
    with op.batch_alter_table("routes") as table:
        table.add_column(sa.Column("canary_salt", sa.String(32), nullable=False, server_default=""))
    with op.batch_alter_table("releases") as table:
        table.add_column(sa.Column("fragments", sa.JSON(), nullable=True))
        table.add_column(sa.Column("composition_hash", sa.String(64), nullable=True))
    op.create_table(
        "settings",
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("updated_by", sa.String(200), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_settings")),
    )
    _freeze_releases(op.get_bind())


def downgrade() -> None:
    op.drop_table("settings")
    with op.batch_alter_table("releases") as table:
        table.drop_column("composition_hash")
        table.drop_column("fragments")
    with op.batch_alter_table("routes") as table:
        table.drop_column("canary_salt")
    with op.batch_alter_table("api_keys") as table:
        table.drop_column("prompts")
        table.drop_column("scopes")


class _Unresolved(Exception):
    pass


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


def _freeze_releases(conn: sa.Connection) -> None:
    versions = {
        (r.prompt_name, r.version): (r.hash, _json(r.content))
        for r in conn.execute(
            sa.text("SELECT prompt_name, version, hash, content FROM prompt_versions")
        )
    }
    labels = {
        (r.prompt_name, r.label): r.version
        for r in conn.execute(sa.text("SELECT prompt_name, label, version FROM prompt_labels"))
    }
    releases = conn.execute(
        sa.text("SELECT id, route, prompt_name, prompt_version, prompt_hash FROM releases")
    ).all()
    now = datetime.now(UTC)
    for release in releases:
        try:
            found = versions.get((release.prompt_name, release.prompt_version))
            if found is None:
                raise _Unresolved(
                    f"prompt {release.prompt_name}@{release.prompt_version} does not exist"
                )
            fragments: dict[str, dict[str, Any]] = {}
            _collect(found[1], versions, labels, fragments, (release.prompt_name,))
        except _Unresolved as exc:
            conn.execute(
                sa.text(
                    "INSERT INTO audit_log (at, actor, action, target, before, after, reason) "
                    "VALUES (:at, :actor, 'release.freeze', :target, NULL, NULL, :reason)"
                ),
                {
                    "at": now,
                    "actor": ACTOR,
                    "target": f"route:{release.route}",
                    "reason": f"release {release.id} could not be frozen: {exc}",
                },
            )
            continue
        digest = _composition_hash(release.prompt_hash, fragments)
        conn.execute(
            sa.text(
                "UPDATE releases SET fragments = :fragments, composition_hash = :hash "
                "WHERE id = :id"
            ),
            {"fragments": json.dumps(fragments), "hash": digest, "id": release.id},
        )
        conn.execute(
            sa.text(
                "INSERT INTO audit_log (at, actor, action, target, before, after, reason) "
                "VALUES (:at, :actor, 'release.freeze', :target, NULL, :after, :reason)"
            ),
            {
                "at": now,
                "actor": ACTOR,
                "target": f"route:{release.route}",
                "after": json.dumps(
                    {"release": release.id, "fragments": fragments, "composition_hash": digest}
                ),
                "reason": "frozen to what its includes' labels pointed at when migrated",
            },
        )


def _collect(
    content: dict[str, Any],
    versions: dict[tuple[str, int], tuple[str, Any]],
    labels: dict[tuple[str, str], int],
    into: dict[str, dict[str, Any]],
    stack: tuple[str, ...],
) -> None:
    texts = [m.get("content") or "" for m in content.get("messages") or []]
    texts.append(content.get("text") or "")
    for text in texts:
        if not isinstance(text, str):
            continue
        for match in _INCLUDE.finditer(text):
            name, ref = match.group(1), match.group(2)
            key = f"{name}@{ref or 'production'}"
            if name in stack:
                raise _Unresolved(f"include cycle: {' -> '.join((*stack, name))}")
            if key in into:
                continue
            label = None if ref and ref.isdigit() else (ref or "production")
            number = int(ref) if label is None and ref else labels.get((name, label or ""))
            found = versions.get((name, number)) if number is not None else None
            if found is None:
                raise _Unresolved(f"include {{{{> {key}}}}} does not resolve")
            if "text" not in found[1]:
                raise _Unresolved(f"include {{{{> {key}}}}} is a chat prompt, not a fragment")
            into[key] = {"name": name, "version": number, "hash": found[0], "label": label}
            _collect(found[1], versions, labels, into, (*stack, name))


def _composition_hash(prompt_hash: str, fragments: dict[str, dict[str, Any]]) -> str:
    if not fragments:
        return prompt_hash
    parts = [prompt_hash]
    for ref, fragment in sorted(fragments.items()):
        parts.append(f"{ref}={fragment['name']}@{fragment['version']}:{fragment['hash']}")
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()
