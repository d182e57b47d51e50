"""How each turn ended: its reply's final state, why, and whether the agent started it.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("turns", sa.Column("outcome", sa.String(16), nullable=False, server_default="done"))
    op.add_column("turns", sa.Column("end_reason", sa.String(16), nullable=False, server_default=""))
    op.add_column("turns", sa.Column("kind", sa.String(16), nullable=False, server_default="answer"))


def downgrade() -> None:
    op.drop_column("turns", "kind")
    op.drop_column("turns", "end_reason")
    op.drop_column("turns", "outcome")
