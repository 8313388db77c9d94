"""index tickets by status

The backlog (the tickets with staff, whenever submitted: the summary's count and the
dashboard's list) finds its few hundred tickets among a year's by `tickets.status`, not by
reading every ticket.

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-30 19:10:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("tickets", schema=None) as batch_op:
        batch_op.create_index("ix_tickets_status", ["status", "submitted_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("tickets", schema=None) as batch_op:
        batch_op.drop_index("ix_tickets_status")
