"""monitoring: output signals per request-log row, per-minute rollups, SLOs, alerts, leases,
webhook deliveries, scheduled eval suites

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

SIGNALS = (
    "sig_empty",
    "sig_refusal",
    "sig_hedging",
    "sig_truncated",
    "sig_tool_call",
    "sig_json_valid",
    "sig_schema_valid",
    "sig_tool_args_valid",
)
# The rollup's counters as of this revision (store/tables.py ROLLUP_COUNTS).
COUNTS = (
    "requests",
    "ok",
    "client_error",
    "upstream_error",
    "upstream_truncated",
    "upstream_malformed",
    "client_cancelled",
    "shutdown_cut",
    "gateway_error",
    "ttft_count",
    "ttft_le_50",
    "ttft_le_100",
    "ttft_le_200",
    "ttft_le_300",
    "ttft_le_400",
    "ttft_le_500",
    "ttft_le_750",
    "ttft_le_1000",
    "ttft_le_1500",
    "ttft_le_2000",
    "ttft_le_3000",
    "ttft_le_5000",
    "ttft_le_10000",
    "ttft_le_30000",
    "ttft_over",
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
    "len_le_0",
    "len_le_1",
    "len_le_2",
    "len_le_4",
    "len_le_8",
    "len_le_12",
    "len_le_16",
    "len_le_24",
    "len_le_32",
    "len_le_48",
    "len_le_64",
    "len_le_96",
    "len_le_128",
    "len_le_192",
    "len_le_256",
    "len_le_384",
    "len_le_512",
    "len_le_768",
    "len_le_1024",
    "len_le_1536",
    "len_le_2048",
    "len_le_4096",
    "len_over",
)


def upgrade() -> None:
    with op.batch_alter_table("request_log") as table:
        table.add_column(sa.Column("output_chars", sa.Integer(), nullable=True))
        for name in SIGNALS:
            table.add_column(sa.Column(name, sa.Boolean(), nullable=True))
    # Per minute, and the same per ten minutes (what a day's chart reads).
    for rollup in ("request_rollups", "request_rollups_10m"):
        op.create_table(
            rollup,
            sa.Column("minute", sa.DateTime(timezone=True), nullable=False),
            sa.Column("route", sa.String(200), nullable=False, server_default=""),
            sa.Column("release_arm", sa.String(10), nullable=False, server_default=""),
            sa.Column("model_alias", sa.String(200), nullable=False, server_default=""),
            sa.Column("provider", sa.String(100), nullable=False, server_default=""),
            sa.Column("team", sa.String(200), nullable=False, server_default=""),
            *(sa.Column(n, sa.Integer(), nullable=False, server_default="0") for n in COUNTS),
            sa.Column("ttft_sum_ms", sa.Float(), nullable=False, server_default="0"),
            sa.Column("latency_sum_ms", sa.Float(), nullable=False, server_default="0"),
            sa.Column("cost_usd", sa.Float(), nullable=False, server_default="0"),
            sa.Column("prompt_tokens", sa.BigInteger(), nullable=False, server_default="0"),
            sa.Column("completion_tokens", sa.BigInteger(), nullable=False, server_default="0"),
            sa.PrimaryKeyConstraint(
                "minute",
                "route",
                "release_arm",
                "model_alias",
                "provider",
                "team",
                name=f"pk_{rollup}",
            ),
        )
        op.create_index(f"ix_{rollup}_route", rollup, ["route", "minute"])
        op.create_index(f"ix_{rollup}_provider", rollup, ["provider", "minute"])

    op.create_table(
        "slos",
        sa.Column("name", sa.String(100), primary_key=True),
        sa.Column("subject_kind", sa.String(20), nullable=False),
        sa.Column("subject", sa.String(200), nullable=False),
        sa.Column("sli", sa.String(20), nullable=False),
        sa.Column("threshold_ms", sa.Integer(), nullable=True),
        sa.Column("signal", sa.String(40), nullable=True),
        sa.Column("objective", sa.Float(), nullable=False),
        sa.Column("period_days", sa.Integer(), nullable=False),
        sa.Column("min_events", sa.Integer(), nullable=False),
        sa.Column("owner", sa.String(200), nullable=True),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "alerts",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("signature", sa.String(400), nullable=False),
        sa.Column("kind", sa.String(40), nullable=False),
        sa.Column("subject", sa.String(300), nullable=False),
        sa.Column("signal", sa.String(60), nullable=False),
        sa.Column("direction", sa.String(10), nullable=False),
        sa.Column("severity", sa.String(10), nullable=False),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("owner", sa.String(200), nullable=True),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("details", sa.JSON(), nullable=True),
        sa.Column("occurrences", sa.Integer(), nullable=False, server_default="1"),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("notified_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("disposition", sa.String(20), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
    )
    op.create_index("ix_alerts_signature", "alerts", ["signature", "state"])
    op.create_index("ix_alerts_state", "alerts", ["state", "last_seen_at"])
    op.create_table(
        "alert_events",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("alert_id", sa.String(40), nullable=False),
        sa.Column("signature", sa.String(400), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("disposition", sa.String(20), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
    )
    op.create_index("ix_alert_events_alert", "alert_events", ["alert_id"])
    op.create_index("ix_alert_events_signature", "alert_events", ["signature", "at"])
    op.create_table(
        "leases",
        sa.Column("name", sa.String(100), primary_key=True),
        sa.Column("holder", sa.String(100), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "eval_schedules",
        sa.Column("suite", sa.String(100), primary_key=True),
        sa.Column("owner", sa.String(200), nullable=True),
        sa.Column("every_seconds", sa.Integer(), nullable=False),
        sa.Column("suite_text", sa.Text(), nullable=False),
        sa.Column("next_run_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("running_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_status", sa.String(20), nullable=True),
        sa.Column("last_run_id", sa.String(80), nullable=True),
        sa.Column("last_passing_run_id", sa.String(80), nullable=True),
        sa.Column("last_message", sa.Text(), nullable=True),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "webhook_deliveries",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("webhook", sa.String(100), nullable=False),
        sa.Column("event", sa.String(200), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_status", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_webhook_deliveries_due", "webhook_deliveries", ["state", "next_attempt_at"])
    op.create_index("ix_webhook_deliveries_created", "webhook_deliveries", ["created_at"])


def downgrade() -> None:
    for name in (
        "webhook_deliveries",
        "eval_schedules",
        "leases",
        "alert_events",
        "alerts",
        "slos",
    ):
        op.drop_table(name)
    op.drop_table("request_rollups")
    op.drop_table("request_rollups_10m")
    with op.batch_alter_table("request_log") as table:
        for name in ("output_chars", *SIGNALS):
            table.drop_column(name)
