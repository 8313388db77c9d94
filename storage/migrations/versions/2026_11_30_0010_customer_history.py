"""tickets keep the customer's history as it stood at submit, and the severity a repeat
complaint raised

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-30 17:50:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("tickets") as batch_op:
        batch_op.add_column(sa.Column("history", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("raised_from", sa.String(length=32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("tickets") as batch_op:
        batch_op.drop_column("raised_from")
        batch_op.drop_column("history")
