"""Datasets, eval runs and scheduled suites; consumer contracts, their verifications, the changelog."""

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
    Text,
    UniqueConstraint,
)

from pilothouse.store.tables.base import UTCDateTime, metadata

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
