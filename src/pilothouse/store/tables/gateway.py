"""What the gateway keeps for keys: quota policies and stored responses."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Float,
    Index,
    Integer,
    String,
    Table,
)

from pilothouse.store.tables.base import UTCDateTime, metadata

# Quota policies (policy/quotas.py): a limit on a key, a user or a team, per window.
quota_policies = Table(
    "quota_policies",
    metadata,
    Column("name", String(100), primary_key=True),
    Column("subject_kind", String(10), nullable=False),  # key | user | team
    Column("subject", String(200), nullable=False),  # a key id, user, team, or * (each)
    Column("dimension", String(10), nullable=False),  # requests | tokens | cost
    Column("window", String(10), nullable=False),  # minute | hour | day | month
    Column("rolling", Boolean, nullable=False, default=False),
    Column("soft_limit", Float),
    Column("hard_limit", Float),
    Column("degrade_to", String(200)),  # past the soft limit: this model alias instead
    Column("degrade_max_tokens", Integer),  # past the soft limit: max_tokens capped to this
    Column("on_backend_down", String(10), nullable=False),  # open | closed
    Column("created_by", String(200), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
)


# Responses the gateway stored (`store`, `previous_response_id`): each belongs to the key
# that made it; `input_items` is the whole conversation it answered (earlier turns
# included), so continuing it reads one row. Deleted past `responses.retention_days`.
stored_responses = Table(
    "stored_responses",
    metadata,
    Column("id", String(40), primary_key=True),  # resp_ and the request id's hex
    Column("key_id", String(40), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("input_items", JSON, nullable=False),
    Column("response", JSON, nullable=False),  # the Responses object as answered
    Index("ix_stored_responses_created_at", "created_at"),
)
