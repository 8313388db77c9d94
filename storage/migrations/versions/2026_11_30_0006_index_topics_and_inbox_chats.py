"""index tickets by topic and the inbox by chat

A staff message in a forum topic finds its ticket by `tickets.topic_id`; the poller tells a
newcomer from a customer who wrote before by `inbox.chat_key` (no set of every customer kept in
memory).

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30 14:10:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("tickets", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_tickets_topic_id"), ["topic_id"], unique=False)
    with op.batch_alter_table("inbox", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_inbox_chat_key"), ["chat_key"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("inbox", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_inbox_chat_key"))
    with op.batch_alter_table("tickets", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_tickets_topic_id"))
