"""Table definitions: the one description of the schema that migrations and queries share."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Dialect,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
)


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp that always comes back aware, in UTC: SQLite hands back naive values,
    and everything Pilothouse stores is UTC, so the fix is made here, once."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if isinstance(value, datetime) and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_name)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "pk": "pk_%(table_name)s",
    }
)

# One row; `version` moves on every configuration change so every process can notice.
config_version = Table(
    "config_version",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("version", BigInteger, nullable=False),
    Column("changed_at", UTCDateTime(), nullable=False),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("key_hash", String(64), nullable=False, unique=True),
    Column("prefix", String(16), nullable=False),
    Column("user", String(200)),
    Column("team", String(200)),
    Column("models", JSON),
    Column("scopes", JSON),  # policy.keys.SCOPES this key was granted
    Column("prompts", JSON),  # name patterns of prompts it may read beyond its routes'
    Column("expires_at", UTCDateTime()),
    Column("disabled", Boolean, nullable=False, default=False),
    Column("created_at", UTCDateTime(), nullable=False),
)

audit_log = Table(
    "audit_log",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", UTCDateTime(), nullable=False),
    Column("actor", String(200), nullable=False),
    Column("action", String(100), nullable=False),
    Column("target", String(300), nullable=False),
    Column("before", JSON),
    Column("after", JSON),
    Column("reason", Text),
    Index("ix_audit_log_target", "target"),
)

request_log = Table(
    "request_log",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("started_at", UTCDateTime(), nullable=False),
    Column("finished_at", UTCDateTime(), nullable=False),
    Column("endpoint", String(40), nullable=False),
    Column("key_id", String(40)),
    Column("user", String(200)),
    Column("team", String(200)),
    Column("model_alias", String(200)),
    Column("provider", String(100)),
    Column("provider_model", String(200)),
    Column("stream", Boolean, nullable=False, default=False),
    Column("status_code", Integer, nullable=False),
    Column("error_class", String(40)),
    Column("error_message", Text),
    Column("prompt_tokens", Integer),
    Column("completion_tokens", Integer),
    Column("cached_tokens", Integer),
    Column("cost_usd", Float),
    Column("latency_ms", Float, nullable=False),
    Column("ttft_delivered_ms", Float),
    Column("ttft_upstream_ms", Float),
    Column("ttft_gateway_ms", Float),
    Column("chunks_in", Integer),
    Column("chunks_out", Integer),
    Column("finish_reason", String(40)),
    Column("route", String(200)),
    Column("release_id", String(40)),
    Column("release_arm", String(10)),
    Column("prompt_name", String(200)),
    Column("prompt_version", Integer),
    Column("prompt_hash", String(64)),
    Column("variables", JSON),
    Column("client_request_id", String(128)),  # the caller's X-Request-Id: kept, never a key
    Column("outcome", String(32), nullable=False, default="ok"),  # telemetry.outcomes
    Column("usage_estimated", Boolean, nullable=False, default=False),
    Column("source", String(40)),  # "eval" for the eval runner's own traffic
    Column("eval_run_id", String(64)),
    Column("attempt_count", Integer, nullable=False, default=0),  # upstream calls made
    Column("attempts", JSON),  # every attempt when there were several or one failed
    Index("ix_request_log_started_at", "started_at"),
    Index("ix_request_log_outcome", "outcome", "started_at"),
    Index("ix_request_log_route", "route"),
    Index("ix_request_log_key_id", "key_id"),
    Index("ix_request_log_model_alias", "model_alias"),
)

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

datasets = Table(
    "datasets",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(200), nullable=False),
    Column("version", Integer, nullable=False),
    Column("hash", String(64), nullable=False),
    Column("rows", JSON, nullable=False),
    Column("source", Text),
    Column("created_by", String(200), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    UniqueConstraint("name", "version", name="uq_datasets_name_version"),
    UniqueConstraint("name", "hash", name="uq_datasets_name_hash"),
)

# One row per eval run: the manifest says exactly what ran; results hold every case.
eval_runs = Table(
    "eval_runs",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("suite", String(200), nullable=False),
    Column("owner", String(200)),
    Column("passed", Boolean, nullable=False),
    Column("replay_of", String(40)),
    Column("manifest", JSON, nullable=False),
    Column("summary", JSON, nullable=False),
    Column("results", JSON, nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Index("ix_eval_runs_suite", "suite"),
)

# Deployment-wide settings every instance reads from the store, e.g. the admin token's hash.
settings = Table(
    "settings",
    metadata,
    Column("name", String(100), primary_key=True),
    Column("value", Text, nullable=False),
    Column("updated_by", String(200), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
)
