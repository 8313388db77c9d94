"""channel-neutral customers and the outbox

Customer ids become text (a Telegram user id, a WeCom external_userid), and so do the ids of
who did what; the outbox carries every outgoing message; the inbox remembers a first answer
queued by the poller; the dialogue state now lives in the ticket (the fsm table goes).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23 20:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import storage.models

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# (table, column, nullable): integers that become text, values kept ("1001" for 1001)
TO_TEXT = (
    ("tickets", "customer_id", False),
    ("tickets", "taken_by_id", True),
    ("tickets", "first_response_by_id", True),
    ("events", "actor_id", False),
    ("messages", "sender_id", False),
    ("messages", "chat_id", False),
    ("messages", "message_id", True),
)


def _to_text(table: str) -> None:
    with op.batch_alter_table(table, schema=None) as batch_op:
        for name, column, nullable in TO_TEXT:
            if name == table:
                batch_op.alter_column(
                    column,
                    existing_type=sa.BigInteger(),
                    type_=sa.String(length=64),
                    existing_nullable=nullable,
                    postgresql_using=f"{column}::varchar",
                )


def _to_integer(table: str) -> None:
    with op.batch_alter_table(table, schema=None) as batch_op:
        for name, column, nullable in TO_TEXT:
            if name == table:
                batch_op.alter_column(
                    column,
                    existing_type=sa.String(length=64),
                    type_=sa.BigInteger(),
                    existing_nullable=nullable,
                    postgresql_using=f"{column}::bigint",
                )


def upgrade() -> None:
    for table in ("tickets", "events", "messages"):
        _to_text(table)
    with op.batch_alter_table("tickets", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("awaiting_comment", sa.Boolean(), server_default="0", nullable=False)
        )
    with op.batch_alter_table("inbox", schema=None) as batch_op:
        batch_op.add_column(sa.Column("greeted", sa.Boolean(), server_default="0", nullable=False))
    op.create_table(
        "outbox",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("recipient", sa.String(length=64), nullable=False),
        sa.Column("lane", sa.String(length=96), nullable=False),
        sa.Column("ticket_id", sa.Integer(), nullable=True),
        sa.Column("kind", sa.String(length=24), nullable=False),
        sa.Column("urgency", sa.Integer(), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("created_at", storage.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("not_before", storage.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("collapse", sa.String(length=96), nullable=True),
        sa.Column("sent_at", storage.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("outcome", sa.String(length=16), nullable=True),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.Column("message_ids", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox")),
    )
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.create_index("ix_outbox_pending", ["sent_at", "lane", "id"], unique=False)
    op.drop_table("fsm")


def downgrade() -> None:
    op.create_table(
        "fsm",
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("state", sa.String(length=255), nullable=True),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_fsm")),
    )
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_index("ix_outbox_pending")
    op.drop_table("outbox")
    with op.batch_alter_table("inbox", schema=None) as batch_op:
        batch_op.drop_column("greeted")
    with op.batch_alter_table("tickets", schema=None) as batch_op:
        batch_op.drop_column("awaiting_comment")
    for table in ("tickets", "events", "messages"):
        _to_integer(table)
