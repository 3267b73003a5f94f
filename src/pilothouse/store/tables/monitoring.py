"""SLOs, alerts and their events, leases, webhook deliveries."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Column,
    Float,
    Index,
    Integer,
    String,
    Table,
    Text,
)

from pilothouse.store.tables.base import UTCDateTime, metadata

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
