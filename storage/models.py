"""The database tables. The schema itself is created by the Alembic migrations."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in and out, on SQLite (which forgets the zone) as on PostgreSQL."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: pass aware UTC times")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


class Base(DeclarativeBase):
    metadata = metadata
    type_annotation_map: dict[Any, Any] = {datetime: UTCDateTime, int: Integer}


class TicketRow(Base):
    __tablename__ = "tickets"

    id: Mapped[int] = mapped_column(primary_key=True)
    channel: Mapped[str] = mapped_column(String(16))
    customer_id: Mapped[str] = mapped_column(String(64))
    customer_name: Mapped[str] = mapped_column(String(256))
    customer_username: Mapped[str | None] = mapped_column(String(64))
    language: Mapped[str] = mapped_column(String(8))
    status: Mapped[str] = mapped_column(String(24))
    category: Mapped[str | None] = mapped_column(String(64))
    order_number: Mapped[str | None] = mapped_column(String(64))
    order_skipped: Mapped[bool] = mapped_column(Boolean, default=False)
    story: Mapped[list[str]] = mapped_column(JSON, default=list)
    photos: Mapped[list[str]] = mapped_column(JSON, default=list)
    photos_done: Mapped[bool] = mapped_column(Boolean, default=False)
    contact: Mapped[str | None] = mapped_column(String(128))
    contact_skipped: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime]
    submitted_at: Mapped[datetime | None]
    severity: Mapped[str | None] = mapped_column(String(32))
    severity_words: Mapped[list[str]] = mapped_column(JSON, default=list)
    taken_by_id: Mapped[str | None] = mapped_column(String(64))
    taken_by_name: Mapped[str | None] = mapped_column(String(256))
    first_response_at: Mapped[datetime | None]
    first_response_by_id: Mapped[str | None] = mapped_column(String(64))
    first_response_by_name: Mapped[str | None] = mapped_column(String(256))
    tier: Mapped[str | None] = mapped_column(String(32))
    chosen_option: Mapped[int | None]
    resolved_at: Mapped[datetime | None]
    customer_blocked: Mapped[bool] = mapped_column(Boolean, default=False)
    card_message_id: Mapped[int | None] = mapped_column(BigInteger)
    topic_id: Mapped[int | None] = mapped_column(BigInteger, index=True)
    last_customer_at: Mapped[datetime | None]
    clock_started_at: Mapped[datetime | None]
    deadline_round: Mapped[int] = mapped_column(default=0, server_default="0")
    incomplete: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")
    priority: Mapped[str | None] = mapped_column(String(16))
    priority_words: Mapped[list[str] | None] = mapped_column(JSON)
    repeat_of: Mapped[int | None]
    follow_up_asked_at: Mapped[datetime | None]
    satisfaction: Mapped[int | None]
    satisfaction_comment: Mapped[str | None] = mapped_column(Text)
    closed_at: Mapped[datetime | None]
    awaiting_comment: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")
    follow_up_missed: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")
    product: Mapped[str | None] = mapped_column(String(128))
    batch: Mapped[str | None] = mapped_column(String(64))
    root_cause: Mapped[str | None] = mapped_column(String(32))
    responsible: Mapped[str | None] = mapped_column(String(32))
    order_facts: Mapped[dict[str, str] | None] = mapped_column(JSON)
    history: Mapped[dict[str, object] | None] = mapped_column(JSON)
    raised_from: Mapped[str | None] = mapped_column(String(32))

    __table_args__ = (
        Index("ix_tickets_customer", "channel", "customer_id", "status"),
        Index("ix_tickets_submitted", "submitted_at"),
        Index("ix_tickets_product", "product", "submitted_at"),
        Index("ix_tickets_batch", "batch", "submitted_at"),
        Index("ix_tickets_status", "status", "submitted_at"),  # the backlog
    )


class MessageRow(Base):
    """Every message of a ticket, both directions, as sent or received."""

    __tablename__ = "messages"

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"), index=True)
    direction: Mapped[str] = mapped_column(String(8))  # in (from the customer) | out (to them)
    sender_id: Mapped[str] = mapped_column(String(64))
    sender_name: Mapped[str] = mapped_column(String(256))
    kind: Mapped[str] = mapped_column(String(24))
    text: Mapped[str | None] = mapped_column(Text)
    file_id: Mapped[str | None] = mapped_column(String(256))
    media_group_id: Mapped[str | None] = mapped_column(String(64))
    chat_id: Mapped[str] = mapped_column(String(64))  # the customer's, or the staff room's
    message_id: Mapped[str | None] = mapped_column(String(64))
    at: Mapped[datetime]
    # unused since the outbox carries relays (kept: old rows say what was shown)
    relay_pending: Mapped[bool] = mapped_column(Boolean, default=False, index=True)


class DeadlineRow(Base):
    """A deadline of a ticket: the scheduler wakes at the earliest unfired one."""

    __tablename__ = "deadlines"

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"))
    kind: Mapped[str] = mapped_column(String(32))
    round: Mapped[int] = mapped_column(default=0)
    due_at: Mapped[datetime]
    fired_at: Mapped[datetime | None]

    __table_args__ = (
        UniqueConstraint("ticket_id", "kind", "round", name="uq_deadlines_ticket_kind_round"),
        Index("ix_deadlines_due", "fired_at", "due_at"),
    )


class EventRow(Base):
    __tablename__ = "events"

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"), index=True)
    kind: Mapped[str] = mapped_column(String(32))
    actor_id: Mapped[str] = mapped_column(String(64))
    actor_name: Mapped[str] = mapped_column(String(256))
    actor_role: Mapped[str] = mapped_column(String(16))
    at: Mapped[datetime]
    detail: Mapped[str] = mapped_column(Text, default="")


class GroupMessageRow(Base):
    """Which ticket a message in the staff group belongs to (so a reply to it finds the ticket)."""

    __tablename__ = "group_messages"

    chat_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    message_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"), index=True)


class InboxRow(Base):
    """Each update from Telegram, stored before it is confirmed, until it has been handled."""

    __tablename__ = "inbox"

    update_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    chat_key: Mapped[str] = mapped_column(String(64), index=True)  # has this chat written?
    payload: Mapped[str] = mapped_column(Text)
    received_at: Mapped[datetime]
    handled_at: Mapped[datetime | None] = mapped_column(index=True)
    error: Mapped[str | None] = mapped_column(Text)
    # the poller queued the newcomer's first answer with the row: the handler does not again
    greeted: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")


class OutboxRow(Base):
    """Everything the desk says, written in the same transaction as the change that says it,
    then delivered by the sender, which records the messenger's message ids.

    `lane`: rows of one lane go out in order, one at a time (a customer's chat; a ticket's
    thread in the staff room); different lanes go at once. `not_before`: held back until then
    (an album's last photo may still come). `collapse`: a later pending row with the same key
    makes this one unnecessary (a photo count, a card edit)."""

    __tablename__ = "outbox"

    id: Mapped[int] = mapped_column(primary_key=True)
    channel: Mapped[str] = mapped_column(String(16))  # telegram | wecom | staff
    recipient: Mapped[str] = mapped_column(String(64))
    lane: Mapped[str] = mapped_column(String(96))
    ticket_id: Mapped[int | None]
    kind: Mapped[str] = mapped_column(String(24))
    urgency: Mapped[int] = mapped_column(default=2)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime]
    not_before: Mapped[datetime | None]
    collapse: Mapped[str | None] = mapped_column(String(96))
    sent_at: Mapped[datetime | None]
    outcome: Mapped[str | None] = mapped_column(String(16))  # sent | blocked | failed | dropped
    detail: Mapped[str | None] = mapped_column(Text)
    message_ids: Mapped[list[str] | None] = mapped_column(JSON)

    __table_args__ = (Index("ix_outbox_pending", "sent_at", "lane", "id"),)


class WeComInboxRow(Base):
    """Each message pulled from WeCom customer service (kf/sync_msg), stored before the cursor
    moves past it, until it has been handled. `msgid` is WeCom's: a message pulled twice is
    stored once."""

    __tablename__ = "wecom_inbox"

    msgid: Mapped[str] = mapped_column(String(128), primary_key=True)
    open_kfid: Mapped[str] = mapped_column(String(64))
    external_userid: Mapped[str] = mapped_column(String(64))
    payload: Mapped[str] = mapped_column(Text)
    received_at: Mapped[datetime]
    handled_at: Mapped[datetime | None] = mapped_column(index=True)
    error: Mapped[str | None] = mapped_column(Text)


class WeComCursorRow(Base):
    """Where kf/sync_msg goes on from, one cursor for each customer-service account."""

    __tablename__ = "wecom_cursors"

    open_kfid: Mapped[str] = mapped_column(String(64), primary_key=True)
    cursor: Mapped[str] = mapped_column(String(256))
    updated_at: Mapped[datetime]


class OrderRow(Base):
    """An order as the shop gave it (a file sent with /orders, or its order endpoint), so that
    a ticket shows what was ordered beside the complaint."""

    __tablename__ = "orders"

    order_number: Mapped[str] = mapped_column(String(64), primary_key=True)
    product: Mapped[str | None] = mapped_column(String(128))
    batch: Mapped[str | None] = mapped_column(String(64))
    delivered_at: Mapped[str | None] = mapped_column(String(64))  # as the shop wrote it
    store: Mapped[str | None] = mapped_column(String(128))
    region: Mapped[str | None] = mapped_column(String(128))
    notes: Mapped[str | None] = mapped_column(Text)
    imported_at: Mapped[datetime]


class NoticeRow(Base):
    """A notice the desk gives once per period (a batch alert, the weekly report): when it was
    last given, so that a restart or a second instance does not give it again."""

    __tablename__ = "notices"

    kind: Mapped[str] = mapped_column(String(32), primary_key=True)  # batch_alert | weekly
    key: Mapped[str] = mapped_column(String(256), primary_key=True)
    at: Mapped[datetime]
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class FileRow(Base):
    """A file the desk made to send (a chart, an export), kept until it has gone out."""

    __tablename__ = "files"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(128))
    data: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime]


class StaffAppInboxRow(Base):
    """Each callback of the shop's WeCom app (a member's message or tap), stored once before it
    is answered, until it has been handled. `key`: the MsgId of a message, the member and the
    CreateTime of an event (WeCom's own test of a retried callback)."""

    __tablename__ = "staff_app_inbox"

    key: Mapped[str] = mapped_column(String(160), primary_key=True)
    userid: Mapped[str] = mapped_column(String(64))
    payload: Mapped[str] = mapped_column(Text)
    received_at: Mapped[datetime]
    handled_at: Mapped[datetime | None] = mapped_column(index=True)
    error: Mapped[str | None] = mapped_column(Text)


class StaffCardRow(Base):
    """A ticket's card as one member of the WeCom app got it: its task_id, and the newest
    response_code that may still update it (once, within 72 hours; every tap brings one)."""

    __tablename__ = "staff_cards"

    ticket_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    userid: Mapped[str] = mapped_column(String(64), primary_key=True)
    task_id: Mapped[str] = mapped_column(String(128), index=True)
    response_code: Mapped[str | None] = mapped_column(String(256))
    code_at: Mapped[datetime | None]
    sent_at: Mapped[datetime]
    told: Mapped[str | None] = mapped_column(String(512))  # the state it last showed or said


class StaffFocusRow(Base):
    """The ticket a member of the WeCom app works on now (the one they last took or answered):
    where their next message goes."""

    __tablename__ = "staff_focus"

    userid: Mapped[str] = mapped_column(String(64), primary_key=True)
    ticket_id: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[datetime]


class LeaseRow(Base):
    """Work one instance has claimed for a while (a lane of the outbox, the pull of a WeCom
    account): nobody else takes it until `until`, unless its holder hands it back. A holder
    that dies stops renewing, and its leases pass to whoever claims them next."""

    __tablename__ = "leases"

    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    holder: Mapped[str] = mapped_column(String(128))
    until: Mapped[datetime]
