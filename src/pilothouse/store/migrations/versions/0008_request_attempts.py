"""request log: the upstream attempts of each request (fleet failover)

Revision ID: 0008
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("request_log") as table:
        # Rows written before the fleet made exactly one call (or none when refused).
        table.add_column(
            sa.Column("attempt_count", sa.Integer(), nullable=False, server_default="1")
        )
        table.add_column(sa.Column("attempts", sa.JSON(), nullable=True))
    op.execute("UPDATE request_log SET attempt_count = 0 WHERE provider IS NULL")


def downgrade() -> None:
    with op.batch_alter_table("request_log") as table:
        table.drop_column("attempts")
        table.drop_column("attempt_count")
