"""what each member of the WeCom app was last told of a ticket's state

A member's card can be updated only with a fresh response_code, within 72 hours of a tap;
past that, where the ticket stands is said in a plain message, once for each change.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30 14:55:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("staff_cards", schema=None) as batch_op:
        batch_op.add_column(sa.Column("told", sa.String(length=512), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("staff_cards", schema=None) as batch_op:
        batch_op.drop_column("told")
