"""contracts and the behaviour changelog: contracts, their verifications, changelog
entries and subscriptions

Revision ID: 0011
Revises: 0010
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "contracts",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("subject_kind", sa.String(10), nullable=False),
        sa.Column("subject_name", sa.String(200), nullable=False),
        sa.Column("consumer", sa.String(100), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("spec", sa.JSON(), nullable=False),
        sa.Column("spec_hash", sa.String(64), nullable=False),
        sa.Column("status", sa.String(10), nullable=False),
        sa.Column("activated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("activated_on", sa.String(300), nullable=True),
        sa.Column("activated_hash", sa.String(64), nullable=True),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint(
            "subject_kind", "subject_name", "consumer", "name", name="uq_contracts_subject"
        ),
    )
    op.create_table(
        "contract_verifications",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("contract_id", sa.String(40), nullable=False),
        sa.Column("spec_hash", sa.String(64), nullable=False),
        sa.Column("subject_ref", sa.String(300), nullable=False),
        sa.Column("subject_hash", sa.String(64), nullable=False),
        sa.Column("run_id", sa.String(80), nullable=True),
        sa.Column("passed", sa.Boolean(), nullable=False),
        sa.Column("outputs", sa.Integer(), nullable=False),
        sa.Column("passed_outputs", sa.Integer(), nullable=False),
        sa.Column("infra_errors", sa.Integer(), nullable=False),
        sa.Column("min_pass_rate", sa.Float(), nullable=False),
        sa.Column("failures", sa.JSON(), nullable=False),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index(
        "ix_contract_verifications_evidence",
        "contract_verifications",
        ["contract_id", "subject_hash", "created_at"],
    )
    op.create_table(
        "changelog_entries",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("subject_kind", sa.String(10), nullable=False),
        sa.Column("subject_name", sa.String(200), nullable=False),
        sa.Column("action", sa.String(20), nullable=False),
        sa.Column("entry", sa.JSON(), nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index(
        "ix_changelog_entries_subject",
        "changelog_entries",
        ["subject_kind", "subject_name", "id"],
    )
    op.create_table(
        "changelog_subscriptions",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("subject_kind", sa.String(10), nullable=False),
        sa.Column("subject_name", sa.String(200), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("secret", sa.Text(), nullable=False),
        sa.Column("owner", sa.String(100), nullable=True),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index(
        "ix_changelog_subscriptions_subject",
        "changelog_subscriptions",
        ["subject_kind", "subject_name"],
    )


def downgrade() -> None:
    op.drop_index("ix_changelog_subscriptions_subject", "changelog_subscriptions")
    op.drop_table("changelog_subscriptions")
    op.drop_index("ix_changelog_entries_subject", "changelog_entries")
    op.drop_table("changelog_entries")
    op.drop_index("ix_contract_verifications_evidence", "contract_verifications")
    op.drop_table("contract_verifications")
    op.drop_table("contracts")
