"""the WeCom staff room: the app's callbacks, each member's cards, each member's ticket

The app's callbacks are stored once (by MsgId, or member and CreateTime) before they are
answered; each member's card of a ticket keeps its task_id and the newest response_code that
may update it; each member's current ticket is where their next message goes.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30 14:13:03.926302
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import storage.models

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "staff_app_inbox",
        sa.Column("key", sa.String(length=160), nullable=False),
        sa.Column("userid", sa.String(length=64), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("received_at", storage.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("handled_at", storage.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_staff_app_inbox")),
    )
    with op.batch_alter_table("staff_app_inbox", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_staff_app_inbox_handled_at"), ["handled_at"], unique=False
        )

    op.create_table(
        "staff_cards",
        sa.Column("ticket_id", sa.Integer(), nullable=False),
        sa.Column("userid", sa.String(length=64), nullable=False),
        sa.Column("task_id", sa.String(length=128), nullable=False),
        sa.Column("response_code", sa.String(length=256), nullable=True),
        sa.Column("code_at", storage.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("sent_at", storage.models.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("ticket_id", "userid", name=op.f("pk_staff_cards")),
    )
    with op.batch_alter_table("staff_cards", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_staff_cards_task_id"), ["task_id"], unique=False)

    op.create_table(
        "staff_focus",
        sa.Column("userid", sa.String(length=64), nullable=False),
        sa.Column("ticket_id", sa.Integer(), nullable=False),
        sa.Column("updated_at", storage.models.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("userid", name=op.f("pk_staff_focus")),
    )


def downgrade() -> None:
    op.drop_table("staff_focus")
    with op.batch_alter_table("staff_cards", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_staff_cards_task_id"))

    op.drop_table("staff_cards")
    with op.batch_alter_table("staff_app_inbox", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_staff_app_inbox_handled_at"))

    op.drop_table("staff_app_inbox")
