"""the WeCom inbox and cursors

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23 21:05:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import storage.models

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "wecom_inbox",
        sa.Column("msgid", sa.String(length=128), nullable=False),
        sa.Column("open_kfid", sa.String(length=64), nullable=False),
        sa.Column("external_userid", sa.String(length=64), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("received_at", storage.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("handled_at", storage.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("msgid", name=op.f("pk_wecom_inbox")),
    )
    with op.batch_alter_table("wecom_inbox", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_wecom_inbox_handled_at"), ["handled_at"], unique=False
        )
    op.create_table(
        "wecom_cursors",
        sa.Column("open_kfid", sa.String(length=64), nullable=False),
        sa.Column("cursor", sa.String(length=256), nullable=False),
        sa.Column("updated_at", storage.models.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("open_kfid", name=op.f("pk_wecom_cursors")),
    )


def downgrade() -> None:
    op.drop_table("wecom_cursors")
    with op.batch_alter_table("wecom_inbox", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_wecom_inbox_handled_at"))
    op.drop_table("wecom_inbox")
