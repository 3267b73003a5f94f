"""quotas and the spend watch: quota policies, per-key spend per minute, key suspension

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("api_keys") as table:
        table.add_column(sa.Column("suspended_at", sa.DateTime(timezone=True), nullable=True))
        table.add_column(sa.Column("suspended_reason", sa.Text(), nullable=True))
        table.add_column(sa.Column("spend_watch_after", sa.DateTime(timezone=True), nullable=True))
    op.create_table(
        "quota_policies",
        sa.Column("name", sa.String(100), primary_key=True),
        sa.Column("subject_kind", sa.String(10), nullable=False),
        sa.Column("subject", sa.String(200), nullable=False),
        sa.Column("dimension", sa.String(10), nullable=False),
        sa.Column("window", sa.String(10), nullable=False),
        sa.Column("rolling", sa.Boolean(), nullable=False),
        sa.Column("soft_limit", sa.Float(), nullable=True),
        sa.Column("hard_limit", sa.Float(), nullable=True),
        sa.Column("degrade_to", sa.String(200), nullable=True),
        sa.Column("degrade_max_tokens", sa.Integer(), nullable=True),
        sa.Column("on_backend_down", sa.String(10), nullable=False),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "key_spend",
        sa.Column("minute", sa.DateTime(timezone=True), nullable=False),
        sa.Column("key_id", sa.String(40), nullable=False),
        sa.Column("model_alias", sa.String(200), nullable=False, server_default=""),
        sa.Column("requests", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("prompt_tokens", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("completion_tokens", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("cost_usd", sa.Float(), nullable=False, server_default="0"),
        sa.PrimaryKeyConstraint("minute", "key_id", "model_alias", name="pk_key_spend"),
    )
    op.create_index("ix_key_spend_key", "key_spend", ["key_id", "minute"])


def downgrade() -> None:
    op.drop_index("ix_key_spend_key", "key_spend")
    op.drop_table("key_spend")
    op.drop_table("quota_policies")
    with op.batch_alter_table("api_keys") as table:
        for name in ("spend_watch_after", "suspended_reason", "suspended_at"):
            table.drop_column(name)
