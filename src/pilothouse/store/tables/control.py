"""The configuration version and its change log, API keys, the audit log, settings."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Index,
    Integer,
    String,
    Table,
    Text,
)

from pilothouse.store.tables.base import UTCDateTime, metadata

# One row; `version` moves on every configuration change so every process can notice.
config_version = Table(
    "config_version",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("version", BigInteger, nullable=False),
    Column("changed_at", UTCDateTime(), nullable=False),
)

# The newest changes (`changes.LOG_KEPT`), each version with the items it touched: a
# process that missed a bus message, or has no bus, re-reads only those items.
config_changes = Table(
    "config_changes",
    metadata,
    Column("version", BigInteger, primary_key=True, autoincrement=False),
    Column("touched", JSON),  # [[kind, id], ...]; NULL: unknown, reload everything
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
    # The spend watch (monitor/spend.py) suspends a key; an admin restores it.
    Column("suspended_at", UTCDateTime()),
    Column("suspended_reason", Text),
    Column("spend_watch_after", UTCDateTime()),  # restored: spend before this is not judged
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


# Deployment-wide settings every instance reads from the store, e.g. the admin token's hash.
settings = Table(
    "settings",
    metadata,
    Column("name", String(100), primary_key=True),
    Column("value", Text, nullable=False),
    Column("updated_by", String(200), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
)
