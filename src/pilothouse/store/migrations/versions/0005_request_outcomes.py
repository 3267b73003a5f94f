"""request log: outcome classes, the client's own request id, estimated usage, source

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("request_log") as table:
        table.add_column(sa.Column("client_request_id", sa.String(128), nullable=True))
        # Rows written before outcomes existed: derive it from what they recorded.
        table.add_column(sa.Column("outcome", sa.String(32), nullable=False, server_default="ok"))
        table.add_column(
            sa.Column("usage_estimated", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        table.add_column(sa.Column("source", sa.String(40), nullable=True))
        table.add_column(sa.Column("eval_run_id", sa.String(64), nullable=True))
    op.execute(
        "UPDATE request_log SET outcome = CASE"
        " WHEN status_code = 499 THEN 'client_cancelled'"
        " WHEN error_class = 'truncated' THEN 'upstream_truncated'"
        " WHEN error_class = 'malformed' THEN 'upstream_malformed'"
        " WHEN error_class IN ('timeout', 'rate_limited', 'upstream_5xx', 'connect_error')"
        " THEN 'upstream_error'"
        " WHEN status_code >= 500 THEN 'gateway_error'"
        " WHEN status_code >= 400 THEN 'client_error'"
        " ELSE 'ok' END"
    )
    op.create_index("ix_request_log_outcome", "request_log", ["outcome", "started_at"])


def downgrade() -> None:
    op.drop_index("ix_request_log_outcome", table_name="request_log")
    with op.batch_alter_table("request_log") as table:
        for column in ("eval_run_id", "source", "usage_estimated", "outcome", "client_request_id"):
            table.drop_column(column)
