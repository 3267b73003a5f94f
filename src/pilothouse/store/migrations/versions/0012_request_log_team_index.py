"""request log: an index on (team, started_at), for the dashboard's and the API's team filter

Revision ID: 0012
Revises: 0011

Without it a team with no recent requests made `GET /api/requests?team=...` walk the whole
log (1.3 s with 10 million rows on PostgreSQL; bench/dashboard_pages.py). Built in the
upgrade's transaction: on a large PostgreSQL log it holds writes for as long as the build
takes (tens of seconds for 10 million rows), while `serve` has not started serving yet.
"""

from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_request_log_team", "request_log", ["team", "started_at"])


def downgrade() -> None:
    op.drop_index("ix_request_log_team", table_name="request_log")
