"""stored responses: the responses the gateway keeps, and a route's switch to keep them

Revision ID: 0013
Revises: 0012
"""

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("routes") as table:
        table.add_column(
            sa.Column("store_responses", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    op.create_table(
        "stored_responses",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("key_id", sa.String(40), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("input_items", sa.JSON(), nullable=False),
        sa.Column("response", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_stored_responses")),
    )
    op.create_index("ix_stored_responses_created_at", "stored_responses", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_stored_responses_created_at", "stored_responses")
    op.drop_table("stored_responses")
    with op.batch_alter_table("routes") as table:
        table.drop_column("store_responses")
