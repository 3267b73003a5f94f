"""The prompt registry (prompts, versions, labels, events) and routes with their releases."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
)

from pilothouse.store.tables.base import UTCDateTime, metadata

prompts = Table(
    "prompts",
    metadata,
    Column("name", String(200), primary_key=True),
    Column("description", Text),
    Column("owner", String(200)),
    Column("tags", JSON),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
)

# Immutable: a version is never updated; identical content maps to the existing version.
prompt_versions = Table(
    "prompt_versions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("prompt_name", String(200), nullable=False),
    Column("version", Integer, nullable=False),
    Column("hash", String(64), nullable=False),
    Column("content", JSON, nullable=False),
    Column("note", Text),
    Column("created_by", String(200), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    UniqueConstraint("prompt_name", "version", name="uq_prompt_versions_name_version"),
    UniqueConstraint("prompt_name", "hash", name="uq_prompt_versions_name_hash"),
)

prompt_labels = Table(
    "prompt_labels",
    metadata,
    Column("prompt_name", String(200), primary_key=True),
    Column("label", String(100), primary_key=True),
    Column("version", Integer, nullable=False),
    Column("updated_by", String(200), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
)

# Every registry change in order: the SSE stream resumes from an id; rollback reads it.
prompt_events = Table(
    "prompt_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", UTCDateTime(), nullable=False),
    Column("kind", String(40), nullable=False),
    Column("prompt_name", String(200), nullable=False),
    Column("label", String(100)),
    Column("version", Integer),
    Column("previous_version", Integer),
    Column("hash", String(64)),
    Column("rollback", Boolean, nullable=False, default=False),
    Index("ix_prompt_events_prompt_label", "prompt_name", "label"),
)

routes = Table(
    "routes",
    metadata,
    Column("name", String(200), primary_key=True),
    Column("owner", String(200)),
    Column("description", Text),
    Column("active_release_id", String(40)),
    Column("canary_release_id", String(40)),
    Column("canary_weight", Integer, nullable=False, default=0),
    # Drawn for each new canary, so each one takes a fresh slice of users.
    Column("canary_salt", String(32), nullable=False, default=""),
    # Responses to calls of this route are stored for any key (docs/gateway.md).
    Column("store_responses", Boolean, nullable=False, default=False, server_default=false()),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
)

# Immutable bundles: what a route serves is always exactly one of these.
releases = Table(
    "releases",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("route", String(200), nullable=False),
    Column("prompt_name", String(200), nullable=False),
    Column("prompt_version", Integer, nullable=False),
    Column("prompt_hash", String(64), nullable=False),
    Column("model_alias", String(200), nullable=False),
    Column("params", JSON, nullable=False),
    # Every include frozen to a version at promotion: {"tone@production": {name, version,
    # hash, label}}; NULL only for a release made before 0006 that could not be frozen.
    Column("fragments", JSON),
    Column("composition_hash", String(64)),  # the prompt version and every fragment it uses
    Column("note", Text),
    Column("created_by", String(200), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Index("ix_releases_route", "route"),
)

# Ordered changes to a route's active and canary releases: history and rollback read it.
route_events = Table(
    "route_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", UTCDateTime(), nullable=False),
    Column("route", String(200), nullable=False),
    Column("kind", String(40), nullable=False),
    Column("release_id", String(40)),
    Column("previous_release_id", String(40)),
    Column("canary_weight", Integer),
    Column("actor", String(200), nullable=False),
    Column("reason", Text),
    Index("ix_route_events_route", "route"),
)
