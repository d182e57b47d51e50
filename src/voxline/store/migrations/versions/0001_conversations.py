"""Conversation history of the recording path, as the first version of the store created it.

A database written before migrations existed already has this table (and no alembic_version):
it is left as it is, so such a database opens and keeps its history.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    if sa.inspect(op.get_bind()).has_table("conversation_messages"):
        return
    op.create_table(
        "conversation_messages",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("call_sid", sa.String(64), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("content", sa.Text, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    op.create_index("ix_conversation_messages_call_sid", "conversation_messages", ["call_sid"])


def downgrade() -> None:
    op.drop_table("conversation_messages")
