"""insight: tickets get product, batch, root cause, order; orders; notices; files

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23 22:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import storage.models

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("tickets", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("follow_up_missed", sa.Boolean(), server_default="0", nullable=False)
        )
        batch_op.add_column(sa.Column("product", sa.String(length=128), nullable=True))
        batch_op.add_column(sa.Column("batch", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("root_cause", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("responsible", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("order_facts", sa.JSON(), nullable=True))
        batch_op.create_index("ix_tickets_submitted", ["submitted_at"], unique=False)
        batch_op.create_index("ix_tickets_product", ["product", "submitted_at"], unique=False)
        batch_op.create_index("ix_tickets_batch", ["batch", "submitted_at"], unique=False)
    op.create_table(
        "orders",
        sa.Column("order_number", sa.String(length=64), nullable=False),
        sa.Column("product", sa.String(length=128), nullable=True),
        sa.Column("batch", sa.String(length=64), nullable=True),
        sa.Column("delivered_at", sa.String(length=64), nullable=True),
        sa.Column("store", sa.String(length=128), nullable=True),
        sa.Column("region", sa.String(length=128), nullable=True),
        sa.Column("notes", sa.Text(), nullable=True),
        sa.Column("imported_at", storage.models.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("order_number", name=op.f("pk_orders")),
    )
    op.create_table(
        "notices",
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("key", sa.String(length=256), nullable=False),
        sa.Column("at", storage.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("kind", "key", name=op.f("pk_notices")),
    )

    op.create_table(
        "files",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", storage.models.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_files")),
    )


def downgrade() -> None:
    op.drop_table("files")
    op.drop_table("notices")
    op.drop_table("orders")
    with op.batch_alter_table("tickets", schema=None) as batch_op:
        batch_op.drop_index("ix_tickets_batch")
        batch_op.drop_index("ix_tickets_product")
        batch_op.drop_index("ix_tickets_submitted")
        batch_op.drop_column("order_facts")
        batch_op.drop_column("responsible")
        batch_op.drop_column("root_cause")
        batch_op.drop_column("batch")
        batch_op.drop_column("product")
        batch_op.drop_column("follow_up_missed")
