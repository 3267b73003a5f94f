"""The request log, its per-minute and ten-minute rollups, and per-key spend."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Float,
    Index,
    Integer,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
)

from pilothouse.store.tables.base import UTCDateTime, metadata

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
    # Output signals (telemetry/signals.py); NULL when there was no answer to judge.
    Column("output_chars", Integer),
    Column("sig_empty", Boolean),
    Column("sig_refusal", Boolean),
    Column("sig_hedging", Boolean),
    Column("sig_truncated", Boolean),
    Column("sig_tool_call", Boolean),
    Column("sig_json_valid", Boolean),  # NULL: JSON was not asked for (or not judgeable)
    Column("sig_schema_valid", Boolean),
    Column("sig_tool_args_valid", Boolean),
    Index("ix_request_log_started_at", "started_at"),
    Index("ix_request_log_outcome", "outcome", "started_at"),
    Index("ix_request_log_route", "route"),
    Index("ix_request_log_key_id", "key_id"),
    Index("ix_request_log_model_alias", "model_alias"),
    Index("ix_request_log_team", "team", "started_at"),
)


# Per-minute aggregates of the request log, added to as rows are loaded (exactly once: only
# rows the insert really added count). Charts, SLOs and drift read these, never raw rows.
# Subject columns are '' rather than NULL so the key is unique on every database.
TTFT_EDGES_MS = (50, 100, 200, 300, 400, 500, 750, 1000, 1500, 2000, 3000, 5000, 10000, 30000)
LENGTH_EDGES_TOKENS = (
    0,
    1,
    2,
    4,
    8,
    12,
    16,
    24,
    32,
    48,
    64,
    96,
    128,
    192,
    256,
    384,
    512,
    768,
    1024,
    1536,
    2048,
    4096,
)
OUTCOME_COLUMNS = (
    "ok",
    "client_error",
    "upstream_error",
    "upstream_truncated",
    "upstream_malformed",
    "client_cancelled",
    "shutdown_cut",
    "gateway_error",
)
SIGNAL_COLUMNS = (
    "answers",
    "empty",
    "refusal",
    "hedging",
    "truncated",
    "tool_call",
    "json_checked",
    "json_valid",
    "schema_checked",
    "schema_valid",
    "tool_args_checked",
    "tool_args_valid",
)
ROLLUP_SUBJECT = ("route", "release_arm", "model_alias", "provider", "team")
ROLLUP_COUNTS = (
    "requests",
    *OUTCOME_COLUMNS,
    "ttft_count",
    *(f"ttft_le_{edge}" for edge in TTFT_EDGES_MS),
    "ttft_over",
    *SIGNAL_COLUMNS,
    *(f"len_le_{edge}" for edge in LENGTH_EDGES_TOKENS),
    "len_over",
)
ROLLUP_SUMS = ("ttft_sum_ms", "latency_sum_ms", "cost_usd", "prompt_tokens", "completion_tokens")


def _rollup_table(name: str) -> Table:
    """Counters per time slot (`minute`: the slot's start) and subject."""
    return Table(
        name,
        metadata,
        Column("minute", UTCDateTime(), primary_key=True),
        Column("route", String(200), primary_key=True, default=""),
        Column("release_arm", String(10), primary_key=True, default=""),
        Column("model_alias", String(200), primary_key=True, default=""),
        Column("provider", String(100), primary_key=True, default=""),
        Column("team", String(200), primary_key=True, default=""),
        *(Column(column, Integer, nullable=False, default=0) for column in ROLLUP_COUNTS),
        Column("ttft_sum_ms", Float, nullable=False, default=0.0),
        Column("latency_sum_ms", Float, nullable=False, default=0.0),
        Column("cost_usd", Float, nullable=False, default=0.0),
        Column("prompt_tokens", BigInteger, nullable=False, default=0),
        Column("completion_tokens", BigInteger, nullable=False, default=0),
        Index(f"ix_{name}_route", "route", "minute"),
        Index(f"ix_{name}_provider", "provider", "minute"),
    )


# Per minute (SLO windows, drift, short charts), and the same per ten minutes (what a
# day's or a month's chart reads: a tenth of the rows). Both are added to together.
request_rollups = _rollup_table("request_rollups")
request_rollups_10m = _rollup_table("request_rollups_10m")


# What each key spent per minute and model alias: the spend watch's only input (added by
# the journal loader in the same transaction as the request-log rows).
KEY_SPEND_SUMS = ("requests", "prompt_tokens", "completion_tokens", "cost_usd")
key_spend = Table(
    "key_spend",
    metadata,
    Column("minute", UTCDateTime(), nullable=False),
    Column("key_id", String(40), nullable=False),
    Column("model_alias", String(200), nullable=False, server_default=""),
    Column("requests", Integer, nullable=False, server_default="0"),
    Column("prompt_tokens", BigInteger, nullable=False, server_default="0"),
    Column("completion_tokens", BigInteger, nullable=False, server_default="0"),
    Column("cost_usd", Float, nullable=False, server_default="0"),
    PrimaryKeyConstraint("minute", "key_id", "model_alias", name="pk_key_spend"),
    Index("ix_key_spend_key", "key_id", "minute"),
)
