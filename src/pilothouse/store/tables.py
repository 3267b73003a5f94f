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
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
    false,
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

# Service-level objectives declared through the API (the config file's are not stored).
slos = Table(
    "slos",
    metadata,
    Column("name", String(100), primary_key=True),
    Column("subject_kind", String(20), nullable=False),  # route | model | team
    Column("subject", String(200), nullable=False),
    Column("sli", String(20), nullable=False),  # ttft | availability | signal
    Column("threshold_ms", Integer),  # ttft: one of TTFT_EDGES_MS
    Column("signal", String(40)),  # signal: refusal, empty, hedging, ... (good: without it)
    Column("objective", Float, nullable=False),  # the share of good events, e.g. 0.99
    Column("period_days", Integer, nullable=False),
    Column("min_events", Integer, nullable=False),
    Column("owner", String(200)),
    Column("created_by", String(200), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
)

# Alerts: one open alert per signature (kind, subject, signal, direction); occurrences add up.
alerts = Table(
    "alerts",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("signature", String(400), nullable=False),
    Column("kind", String(40), nullable=False),  # slo_burn | drift | eval_failed | eval_stale ...
    Column("subject", String(300), nullable=False),  # route:support, provider:openai, ...
    Column("signal", String(60), nullable=False),
    Column("direction", String(10), nullable=False),  # up | down | none
    Column("severity", String(10), nullable=False),  # page | ticket | info
    Column("state", String(20), nullable=False),  # open | acknowledged | resolved
    Column("owner", String(200)),
    Column("summary", Text, nullable=False),
    Column("details", JSON),
    Column("occurrences", Integer, nullable=False, default=1),
    Column("opened_at", UTCDateTime(), nullable=False),
    Column("last_seen_at", UTCDateTime(), nullable=False),
    Column("notified_at", UTCDateTime()),
    Column("closed_at", UTCDateTime()),
    Column("disposition", String(20)),  # regression | expected_change | noise
    Column("reason", Text),
    Index("ix_alerts_signature", "signature", "state"),
    Index("ix_alerts_state", "state", "last_seen_at"),
)

alert_events = Table(
    "alert_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("alert_id", String(40), nullable=False),
    Column("signature", String(400), nullable=False),
    Column("at", UTCDateTime(), nullable=False),
    Column("kind", String(20), nullable=False),  # fired | repeated | acknowledged | resolved ...
    Column("actor", String(200), nullable=False),
    Column("disposition", String(20)),
    Column("reason", Text),
    Index("ix_alert_events_alert", "alert_id"),
    Index("ix_alert_events_signature", "signature", "at"),
)

# Work one instance does for the whole deployment (the monitors, schedules): who holds it.
leases = Table(
    "leases",
    metadata,
    Column("name", String(100), primary_key=True),
    Column("holder", String(100), nullable=False),
    Column("expires_at", UTCDateTime(), nullable=False),
)

# Eval suites the server runs on a schedule (monitor/scheduler.py): one row per suite.
eval_schedules = Table(
    "eval_schedules",
    metadata,
    Column("suite", String(100), primary_key=True),
    Column("owner", String(200)),
    Column("every_seconds", Integer, nullable=False),
    Column("suite_text", Text, nullable=False),  # the suite file, its dataset stored
    Column("next_run_at", UTCDateTime(), nullable=False),
    Column("running_until", UTCDateTime()),  # claimed by a run until then
    Column("last_started_at", UTCDateTime()),
    Column("last_finished_at", UTCDateTime()),
    Column("last_status", String(20)),  # passed | failed | invalid | infra | crashed
    Column("last_run_id", String(80)),
    Column("last_passing_run_id", String(80)),
    Column("last_message", Text),
    Column("created_by", String(200), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
)

# Webhook deliveries (notify/webhooks.py): one per event and subscribed webhook.
webhook_deliveries = Table(
    "webhook_deliveries",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("webhook", String(100), nullable=False),
    Column("event", String(200), nullable=False),
    Column("payload", JSON, nullable=False),
    Column("state", String(20), nullable=False),  # pending | delivered | failed
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", UTCDateTime()),  # when pending: due then (or claimed until)
    Column("last_status", Integer),
    Column("last_error", Text),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("delivered_at", UTCDateTime()),
    Index("ix_webhook_deliveries_due", "state", "next_attempt_at"),
    Index("ix_webhook_deliveries_created", "created_at"),
)

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

# Consumer contracts (contracts/): what a team relies on in a prompt's or route's output.
contracts = Table(
    "contracts",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("subject_kind", String(10), nullable=False),  # prompt | route
    Column("subject_name", String(200), nullable=False),
    Column("consumer", String(100), nullable=False),  # the team that relies on it
    Column("name", String(100), nullable=False),
    Column("spec", JSON, nullable=False),  # the contract as checked (contracts/spec.py)
    Column("spec_hash", String(64), nullable=False),
    Column("status", String(10), nullable=False),  # pending | active
    Column("activated_at", UTCDateTime()),
    Column("activated_on", String(300)),  # what its first passing verification ran on
    Column("activated_hash", String(64)),
    Column("created_by", String(200), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    UniqueConstraint(
        "subject_kind", "subject_name", "consumer", "name", name="uq_contracts_subject"
    ),
)

# Each verification of a contract on one exact candidate (`subject_hash`: a prompt's
# composition hash, or a release's composition + model + parameters).
contract_verifications = Table(
    "contract_verifications",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("contract_id", String(40), nullable=False),
    Column("spec_hash", String(64), nullable=False),  # the contract's revision it checked
    Column("subject_ref", String(300), nullable=False),  # triage@7, route:r@canary (rel_..)
    Column("subject_hash", String(64), nullable=False),
    Column("run_id", String(80)),
    Column("passed", Boolean, nullable=False),
    Column("outputs", Integer, nullable=False),
    Column("passed_outputs", Integer, nullable=False),
    Column("infra_errors", Integer, nullable=False),
    Column("min_pass_rate", Float, nullable=False),
    Column("failures", JSON, nullable=False),  # the first failing outputs, with reasons
    Column("created_by", String(200), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Index("ix_contract_verifications_evidence", "contract_id", "subject_hash", "created_at"),
)

# The behaviour changelog (changelog/): one entry per promotion, canary change and
# rollback of a route, and per move of a protected prompt label.
changelog_entries = Table(
    "changelog_entries",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("subject_kind", String(10), nullable=False),  # prompt | route
    Column("subject_name", String(200), nullable=False),
    Column("action", String(20), nullable=False),
    Column("entry", JSON, nullable=False),  # the entry as readers and webhooks get it
    Column("actor", String(200), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Index("ix_changelog_entries_subject", "subject_kind", "subject_name", "id"),
)

# Teams subscribed to a prompt's or route's changelog; deliveries go through
# notify/webhooks.py under the webhook name `changelog.<id>`.
changelog_subscriptions = Table(
    "changelog_subscriptions",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("subject_kind", String(10), nullable=False),
    Column("subject_name", String(200), nullable=False),
    Column("url", Text, nullable=False),
    Column("secret", Text, nullable=False),  # signs each delivery; never read back out
    Column("owner", String(100)),
    Column("created_by", String(200), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Index("ix_changelog_subscriptions_subject", "subject_kind", "subject_name"),
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
