"""leases: work one instance has claimed for a while (an outbox lane, a WeCom account's pull)

Several instances share one database: each lane of the outbox is sent by one of them at a time,
and each WeCom account's cursor is pulled by one. A lease that is not renewed expires, so the
work of an instance that died passes to another.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-30 16:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import storage.models

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "leases",
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("holder", sa.String(length=128), nullable=False),
        sa.Column("until", storage.models.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_leases")),
    )


def downgrade() -> None:
    op.drop_table("leases")
