"""Repositories: rows in, domain objects out. They never commit; the unit of work does."""

from __future__ import annotations

import json
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.domain.clock import Deadline, DeadlineKind
from bot.domain.history import phone_of
from bot.domain.orders import Order, normalise_number
from bot.domain.tickets import (
    ACTIVE,
    WITH_STAFF,
    Actor,
    CustomerRef,
    Event,
    EventKind,
    Status,
    Ticket,
)
from storage.db import READ_ONLY
from storage.models import (
    DeadlineRow,
    EventRow,
    FileRow,
    GroupMessageRow,
    InboxRow,
    LeaseRow,
    MessageRow,
    NoticeRow,
    OrderRow,
    StaffAppInboxRow,
    StaffCardRow,
    StaffFocusRow,
    TicketRow,
    WeComCursorRow,
    WeComInboxRow,
)

_FIELDS = (
    "channel customer_id customer_name customer_username language category order_number "
    "order_skipped photos_done contact contact_skipped created_at submitted_at severity "
    "tier chosen_option resolved_at customer_blocked card_message_id topic_id "
    "first_response_at last_customer_at clock_started_at deadline_round incomplete priority "
    "repeat_of follow_up_asked_at satisfaction satisfaction_comment closed_at awaiting_comment "
    "follow_up_missed product batch root_cause responsible order_facts history raised_from"
).split()


def _locks(session: AsyncSession) -> bool:
    """On PostgreSQL a row read to be changed is locked until the commit, so that two
    transactions (a handler, the sender recording a delivery) never decide from a stale copy;
    on SQLite a unit of work that may write holds the one write lock from its first read
    (`storage.db`). A read-only unit of work changes nothing: it locks nothing."""
    bind = session.bind
    return (
        bind is not None
        and bind.dialect.name == "postgresql"
        and not session.info.get(READ_ONLY, False)
    )


def _insert_of(session: AsyncSession) -> Any:
    """The dialect's own INSERT (with ON CONFLICT), imported only for the database in use."""
    dialect = session.bind.dialect.name if session.bind else "sqlite"
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert


def _actor(actor_id: str | None, name: str | None, role: str) -> Actor | None:
    return Actor(actor_id, name or "", role) if actor_id is not None else None


class TicketRepository:
    """Saving writes only the fields this update changed, so that two chats working on one
    ticket at once (the customer choosing, staff replying) do not undo each other."""

    def __init__(self, session: AsyncSession, planner: Planner | None = None) -> None:
        self.session = session
        self.planner = planner
        self.deadlines = DeadlineRepository(session)
        self._loaded: dict[int, dict[str, object]] = {}

    def _locking(self) -> bool:
        return _locks(self.session)

    async def get(self, ticket_id: int) -> Ticket | None:
        row = await self.session.get(
            TicketRow, ticket_id, populate_existing=True, with_for_update=self._locking()
        )
        return self._loaded_ticket(row) if row else None

    async def exists(self, ticket_id: int) -> bool:
        """Whether there is such a ticket (nothing loaded, nothing locked)."""
        found = await self.session.scalar(select(TicketRow.id).where(TicketRow.id == ticket_id))
        return found is not None

    async def place(
        self, ticket_id: int, card_message_id: int | None = None, topic_id: int | None = None
    ) -> None:
        """Where the ticket lives in the staff room (its card, its topic), as the sender learns
        it: written as it is, without loading the ticket or touching its deadlines."""
        values: dict[str, object] = {}
        if card_message_id is not None:
            values["card_message_id"] = card_message_id
        if topic_id is not None:
            values["topic_id"] = topic_id
        if values:
            await self.session.execute(
                update(TicketRow).where(TicketRow.id == ticket_id).values(**values)
            )

    def _loaded_ticket(self, row: TicketRow) -> Ticket:
        ticket = self._to_domain(row)
        self._loaded[row.id] = self._columns(ticket)
        return ticket

    async def active_for_customer(self, who: CustomerRef) -> Ticket | None:
        return await self._newest(who, TicketRow.status.in_([s.value for s in ACTIVE]))

    async def with_orders(self, order_numbers: list[str]) -> list[Ticket]:
        """Tickets in the staff room's hands (or resolved) with one of these order numbers. A
        file of orders holds up to 200,000 of them: the tickets that could match (few: those
        still open or just resolved) are looked at once, not the table once per 500 numbers."""
        wanted = set(order_numbers)
        statuses = [s.value for s in (*WITH_STAFF, Status.RESOLVED)]
        candidates = await self.session.execute(
            select(TicketRow.id, TicketRow.order_number).where(
                TicketRow.status.in_(statuses), TicketRow.order_number.is_not(None)
            )
        )
        ids = sorted(ticket_id for ticket_id, number in candidates if number in wanted)
        found: list[Ticket] = []
        for start in range(0, len(ids), 500):
            query = (
                select(TicketRow)
                .where(TicketRow.id.in_(ids[start : start + 500]), TicketRow.status.in_(statuses))
                .order_by(TicketRow.id)
                .execution_options(populate_existing=True)
            )
            found.extend(
                self._loaded_ticket(row) for row in await self.session.scalars(self._lock(query))
            )
        return found

    async def follow_up_missed(self, who: CustomerRef) -> Ticket | None:
        """The customer's resolved ticket whose satisfaction question never reached them."""
        return await self._newest(
            who,
            TicketRow.status == Status.RESOLVED.value,
            TicketRow.follow_up_missed.is_(True),
        )

    async def awaiting_comment(self, who: CustomerRef) -> Ticket | None:
        """The customer's rated ticket whose comment the desk is waiting for."""
        return await self._newest(who, TicketRow.awaiting_comment.is_(True))

    async def _newest(self, who: CustomerRef, *conditions: ColumnElement[bool]) -> Ticket | None:
        """The customer's newest ticket that meets the conditions (read to be changed)."""
        row = await self._one(
            select(TicketRow)
            .where(TicketRow.channel == who.channel, TicketRow.customer_id == who.id, *conditions)
            .order_by(TicketRow.id.desc())
            .limit(1)
            .execution_options(populate_existing=True)
        )
        return self._loaded_ticket(row) if row else None

    def _lock(self, query: Select[tuple[TicketRow]]) -> Select[tuple[TicketRow]]:
        return query.with_for_update() if self._locking() else query

    async def _one(self, query: Select[tuple[TicketRow]]) -> TicketRow | None:
        return await self.session.scalar(self._lock(query))

    async def add(self, ticket: Ticket) -> Ticket:
        row = TicketRow()
        for name, value in self._columns(ticket).items():
            setattr(row, name, value)
        self.session.add(row)
        await self.session.flush()
        ticket.id = row.id
        self._loaded[row.id] = self._columns(ticket)
        self._flush_events(ticket)
        await self._plan(ticket)
        return ticket

    async def save(self, ticket: Ticket) -> None:
        assert ticket.id is not None
        row = await self.session.get(TicketRow, ticket.id)
        assert row is not None
        now = self._columns(ticket)
        before = self._loaded.get(ticket.id, {})
        for name, value in now.items():
            if name not in before or before[name] != value:
                setattr(row, name, value)
        changed = now != before
        self._loaded[ticket.id] = now
        self._flush_events(ticket)
        if changed:
            await self._plan(ticket)
        # no flush here: writes go out at commit, so no write lock is held while we talk to
        # Telegram (SQLite has one writer)

    async def _plan(self, ticket: Ticket) -> None:
        """Deadlines are computed when the ticket changes."""
        if self.planner is not None:
            await self.deadlines.sync(ticket, self.planner(ticket))

    async def recent_for_customer(
        self, who: CustomerRef, since: datetime, before_id: int
    ) -> Ticket | None:
        """The customer's latest earlier ticket submitted since `since` (a repeat complaint)."""
        row = await self.session.scalar(
            select(TicketRow)
            .where(
                TicketRow.channel == who.channel,
                TicketRow.customer_id == who.id,
                TicketRow.id < before_id,
                TicketRow.submitted_at >= since,
            )
            .order_by(TicketRow.id.desc())
            .limit(1)
        )
        return self._to_domain(row) if row else None

    async def of_customer(
        self, who: CustomerRef, phone: str | None, since: datetime, before_id: int
    ) -> list[Ticket]:
        """The customer's tickets submitted since then, before this one: by their messenger id,
        and on any channel by the phone number they gave."""
        same = and_(TicketRow.channel == who.channel, TicketRow.customer_id == who.id)
        # however the number was written (dashes, spaces, +86): its last four digits narrow it
        # down here, and the whole number decides below
        who_ = or_(same, TicketRow.contact.contains(phone[-4:])) if phone else same
        rows = await self.session.scalars(
            select(TicketRow)
            .where(
                who_,
                TicketRow.id != before_id,
                TicketRow.submitted_at >= since,
                TicketRow.status != "cancelled",
            )
            .order_by(TicketRow.id.desc())
            .limit(200)
        )
        found = [
            row
            for row in rows
            if (row.channel == who.channel and row.customer_id == who.id)
            or (phone and phone_of(row.contact) == phone)
        ]
        return [self._to_domain(row) for row in found[:50]]

    async def known_customers(self, channel: str, ids: list[str]) -> set[str]:
        """Those of these customers who ever had a ticket on this channel (an indexed look-up,
        nothing kept in memory)."""
        if not ids:
            return set()
        rows = await self.session.scalars(
            select(TicketRow.customer_id)
            .where(TicketRow.channel == channel, TicketRow.customer_id.in_(ids))
            .distinct()
        )
        return set(rows)

    async def without_card(self) -> list[int]:
        """Submitted tickets that never reached the staff group."""
        rows = await self.session.scalars(
            select(TicketRow.id).where(
                TicketRow.card_message_id.is_(None),
                TicketRow.status.in_([s.value for s in ACTIVE if s is not Status.INTAKE]),
            )
        )
        return list(rows)

    async def count_active(self) -> dict[str, int]:
        """How many tickets are in each active status (every active status named, 0 or more):
        the metrics' open tickets."""
        rows = await self.session.execute(
            select(TicketRow.status, func.count())
            .where(TicketRow.status.in_([s.value for s in ACTIVE]))
            .group_by(TicketRow.status)
        )
        counted = {str(status): int(count) for status, count in rows}
        return {s.value: counted.get(s.value, 0) for s in ACTIVE}

    async def missed_deadlines(self) -> dict[str, int]:
        """How many promises were missed, by deadline kind (first_response, progress,
        resolution): the escalations recorded, one for each deadline that passed unmet."""
        rows = await self.session.execute(
            select(EventRow.detail, func.count())
            .where(EventRow.kind == EventKind.ESCALATED.value)
            .group_by(EventRow.detail)
        )
        return {str(kind): int(count) for kind, count in rows}

    async def events(self, ticket_id: int) -> list[Event]:
        rows = await self.session.scalars(
            select(EventRow).where(EventRow.ticket_id == ticket_id).order_by(EventRow.id)
        )
        return [
            Event(EventKind(r.kind), Actor(r.actor_id, r.actor_name, r.actor_role), r.at, r.detail)
            for r in rows
        ]

    def _flush_events(self, ticket: Ticket) -> None:
        for event in ticket.events:
            self.session.add(
                EventRow(
                    ticket_id=ticket.id,
                    kind=event.kind.value,
                    actor_id=event.actor.id,
                    actor_name=event.actor.name,
                    actor_role=event.actor.role,
                    at=event.at,
                    detail=event.detail,
                )
            )
        ticket.events.clear()

    @staticmethod
    def _columns(ticket: Ticket) -> dict[str, object]:
        """The row's column values for this ticket."""
        values: dict[str, object] = {name: getattr(ticket, name) for name in _FIELDS}
        values.update(
            status=ticket.status.value,
            story=list(ticket.story),
            photos=list(ticket.photos),
            severity_words=list(ticket.severity_words),
            priority_words=list(ticket.priority_words),
            order_facts=dict(ticket.order_facts) if ticket.order_facts else None,
            taken_by_id=ticket.taken_by.id if ticket.taken_by else None,
            taken_by_name=ticket.taken_by.name if ticket.taken_by else None,
            first_response_by_id=ticket.first_response_by.id if ticket.first_response_by else None,
            first_response_by_name=(
                ticket.first_response_by.name if ticket.first_response_by else None
            ),
        )
        return values

    @staticmethod
    def _to_domain(row: TicketRow) -> Ticket:
        ticket = Ticket(
            customer_id=row.customer_id,
            customer_name=row.customer_name,
            language=row.language,
            created_at=row.created_at,
            id=row.id,
        )
        for name in _FIELDS:
            setattr(ticket, name, getattr(row, name))
        ticket.status = Status(row.status)
        ticket.story = list(row.story or [])
        ticket.photos = list(row.photos or [])
        ticket.severity_words = list(row.severity_words or [])
        ticket.priority_words = list(row.priority_words or [])
        ticket.order_facts = dict(row.order_facts) if row.order_facts else None
        ticket.taken_by = _actor(row.taken_by_id, row.taken_by_name, "staff")
        ticket.first_response_by = _actor(
            row.first_response_by_id, row.first_response_by_name, "staff"
        )
        return ticket


Planner = Callable[[Ticket], list[Deadline]]


@dataclass(frozen=True)
class DueDeadline:
    id: int
    ticket_id: int
    kind: DeadlineKind
    due_at: datetime


class DeadlineRepository:
    """A ticket's deadlines: kept in step with its state; claimed once when due."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def sync(self, ticket: Ticket, planned: list[Deadline]) -> None:
        assert ticket.id is not None
        rows = list(
            await self.session.scalars(
                select(DeadlineRow).where(
                    DeadlineRow.ticket_id == ticket.id,
                    DeadlineRow.round == ticket.deadline_round,
                )
            )
        )
        existing = {row.kind: row for row in rows}
        wanted = {d.kind.value: d for d in planned}
        for kind, row in existing.items():
            if row.fired_at is not None:
                continue  # each deadline fires once a round
            if kind not in wanted:
                await self.session.delete(row)
            elif row.due_at != wanted[kind].due_at:
                row.due_at = wanted[kind].due_at
        for kind, deadline in wanted.items():
            if kind not in existing:
                self.session.add(
                    DeadlineRow(
                        ticket_id=ticket.id,
                        kind=kind,
                        round=ticket.deadline_round,
                        due_at=deadline.due_at,
                    )
                )

    async def earliest(self, after: datetime | None = None) -> datetime | None:
        """When the next unfired deadline is due (of those due after `after`, when given)."""
        query = select(DeadlineRow.due_at).where(DeadlineRow.fired_at.is_(None))
        if after is not None:
            query = query.where(DeadlineRow.due_at > after)
        return await self.session.scalar(query.order_by(DeadlineRow.due_at).limit(1))

    async def due(
        self, now: datetime, limit: int = 100, skip: Collection[int] = ()
    ) -> list[DueDeadline]:
        """The unfired deadlines due by `now`, earliest first, but for those in `skip`."""
        query = select(DeadlineRow).where(
            DeadlineRow.fired_at.is_(None), DeadlineRow.due_at <= now
        )
        if skip:
            query = query.where(DeadlineRow.id.not_in(list(skip)))
        rows = await self.session.scalars(query.order_by(DeadlineRow.due_at).limit(limit))
        return [DueDeadline(r.id, r.ticket_id, DeadlineKind(r.kind), r.due_at) for r in rows]

    async def claim(self, deadline_id: int, now: datetime) -> bool:
        """Mark fired, in the transaction that acts on it (so that an action that fails leaves
        it unfired); False when another instance claimed it first."""
        result = await self.session.execute(
            update(DeadlineRow)
            .where(DeadlineRow.id == deadline_id, DeadlineRow.fired_at.is_(None))
            .values(fired_at=now)
        )
        return bool(getattr(result, "rowcount", 0))

    async def for_ticket(self, ticket_id: int) -> list[tuple[str, datetime, datetime | None]]:
        rows = await self.session.scalars(
            select(DeadlineRow).where(DeadlineRow.ticket_id == ticket_id).order_by(DeadlineRow.id)
        )
        return [(r.kind, r.due_at, r.fired_at) for r in rows]


@dataclass(frozen=True)
class StoredMessage:
    id: int
    ticket_id: int
    direction: str
    sender_id: str
    sender_name: str
    kind: str
    text: str | None
    file_id: str | None
    media_group_id: str | None
    chat_id: str
    message_id: str | None
    at: datetime


class MessageRepository:
    """Every message of a ticket, in and out."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(
        self,
        ticket_id: int,
        *,
        direction: str,
        sender: Actor,
        kind: str,
        text: str | None,
        file_id: str | None,
        chat_id: str,
        message_id: str | None,
        at: datetime,
        media_group_id: str | None = None,
        relay_pending: bool = False,
    ) -> None:
        row = MessageRow(
            ticket_id=ticket_id,
            direction=direction,
            sender_id=sender.id,
            sender_name=sender.name,
            kind=kind,
            text=text,
            file_id=file_id,
            media_group_id=media_group_id,
            chat_id=chat_id,
            message_id=message_id,
            at=at,
            relay_pending=relay_pending,
        )
        self.session.add(row)  # written at commit (or the next query)

    async def exists(self, chat_id: str, message_id: str) -> bool:
        found = await self.session.scalar(
            select(MessageRow.id)
            .where(MessageRow.chat_id == chat_id, MessageRow.message_id == message_id)
            .limit(1)
        )
        return found is not None

    async def for_ticket(self, ticket_id: int) -> list[StoredMessage]:
        rows = await self.session.scalars(
            select(MessageRow).where(MessageRow.ticket_id == ticket_id).order_by(MessageRow.id)
        )
        return [self._to_domain(r) for r in rows]

    async def pending_relay(self, ticket_id: int | None = None) -> list[StoredMessage]:
        query = select(MessageRow).where(MessageRow.relay_pending.is_(True))
        if ticket_id is not None:
            query = query.where(MessageRow.ticket_id == ticket_id)
        rows = await self.session.scalars(query.order_by(MessageRow.id))
        return [self._to_domain(r) for r in rows]

    async def mark_relayed(self, ids: list[int]) -> None:
        if ids:
            await self.session.execute(
                update(MessageRow).where(MessageRow.id.in_(ids)).values(relay_pending=False)
            )

    @staticmethod
    def _to_domain(r: MessageRow) -> StoredMessage:
        return StoredMessage(
            r.id,
            r.ticket_id,
            r.direction,
            r.sender_id,
            r.sender_name,
            r.kind,
            r.text,
            r.file_id,
            r.media_group_id,
            r.chat_id,
            r.message_id,
            r.at,
        )


class GroupLinkRepository:
    """Staff-group messages and the tickets they belong to."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def link(self, chat_id: int, message_id: int, ticket_id: int) -> None:
        await self.session.merge(
            GroupMessageRow(chat_id=chat_id, message_id=message_id, ticket_id=ticket_id)
        )

    async def ticket_for(self, chat_id: int, message_id: int) -> int | None:
        row = await self.session.get(GroupMessageRow, (chat_id, message_id))
        return row.ticket_id if row else None

    async def ticket_for_topic(self, topic_id: int) -> int | None:
        return await self.session.scalar(
            select(TicketRow.id)
            .where(TicketRow.topic_id == topic_id)
            .order_by(TicketRow.id.desc())
        )


class InboxRepository:
    """Updates stored before they are confirmed to Telegram, until handled."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def put_new(self, rows: list[dict[str, object]]) -> set[int]:
        """Store updates not seen before; return the update_ids that were new."""
        if not rows:
            return set()
        ids = [int(str(r["update_id"])) for r in rows]
        existing = set(
            await self.session.scalars(
                select(InboxRow.update_id).where(InboxRow.update_id.in_(ids))
            )
        )
        fresh = [r for r in rows if r["update_id"] not in existing]
        if fresh:
            dialect = self.session.bind.dialect.name if self.session.bind else "sqlite"
            # the dialect's own INSERT .. ON CONFLICT, imported only for the database in use
            if dialect == "postgresql":
                from sqlalchemy.dialects.postgresql import insert
            else:
                from sqlalchemy.dialects.sqlite import insert
            await self.session.execute(
                insert(InboxRow).values(fresh).on_conflict_do_nothing(index_elements=["update_id"])
            )
        return {int(str(r["update_id"])) for r in fresh}

    async def unhandled(self, update_ids: list[int]) -> list[InboxRow]:
        """Those of these updates that are stored and not handled yet, oldest first."""
        rows = await self.session.scalars(
            select(InboxRow)
            .where(InboxRow.update_id.in_(update_ids), InboxRow.handled_at.is_(None))
            .order_by(InboxRow.update_id)
        )
        return list(rows)

    async def unhandled_in_lane(self, key: str, limit: int = 100) -> list[InboxRow]:
        """A lane's updates not handled yet, oldest first (an indexed look-up)."""
        rows = await self.session.scalars(
            select(InboxRow)
            .where(InboxRow.chat_key == key, InboxRow.handled_at.is_(None))
            .order_by(InboxRow.update_id)
            .limit(limit)
        )
        return list(rows)

    async def waiting_lanes(self, received_before: datetime, limit: int = 100) -> list[str]:
        """Lanes with an update stored before then and still not handled: an instance that
        stored it died, or is slow (its lane's lock tells which)."""
        rows = await self.session.scalars(
            select(InboxRow.chat_key)
            .where(InboxRow.handled_at.is_(None), InboxRow.received_at < received_before)
            .distinct()
            .limit(limit)
        )
        return list(rows)

    async def known_chats(self, keys: list[str]) -> set[str]:
        """Those of these chats that wrote before (an indexed look-up)."""
        if not keys:
            return set()
        rows = await self.session.scalars(
            select(InboxRow.chat_key).where(InboxRow.chat_key.in_(keys)).distinct()
        )
        return set(rows)

    async def pending(self) -> list[InboxRow]:
        rows = await self.session.scalars(
            select(InboxRow).where(InboxRow.handled_at.is_(None)).order_by(InboxRow.update_id)
        )
        return list(rows)

    async def get(self, update_id: int) -> InboxRow | None:
        return await self.session.get(InboxRow, update_id)

    async def mark_handled(self, update_id: int, at: datetime, error: str | None = None) -> bool:
        """Mark it handled, unless it was already (another instance, a repeat): False then, and
        the caller does not commit what it did for it."""
        result = await self.session.execute(
            update(InboxRow)
            .where(InboxRow.update_id == update_id, InboxRow.handled_at.is_(None))
            .values(handled_at=at, error=error)
        )
        return bool(getattr(result, "rowcount", 0))

    async def last_update_id(self) -> int | None:
        return await self.session.scalar(
            select(InboxRow.update_id).order_by(InboxRow.update_id.desc()).limit(1)
        )


class WeComInboxRepository:
    """Messages pulled from WeCom, stored before the cursor moves past them, until handled;
    and each customer-service account's cursor."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def cursor(self, open_kfid: str) -> str | None:
        row = await self.session.get(WeComCursorRow, open_kfid)
        return row.cursor if row else None

    async def put_page(
        self, open_kfid: str, messages: list[dict[str, object]], cursor: str, at: datetime
    ) -> list[str]:
        """Store a page of messages not seen before (by msgid) and move the cursor past it;
        return the msgids that were new."""
        ids = [str(m["msgid"]) for m in messages]
        seen = (
            set(
                await self.session.scalars(
                    select(WeComInboxRow.msgid).where(WeComInboxRow.msgid.in_(ids))
                )
            )
            if ids
            else set()
        )
        fresh: list[str] = []
        for message in messages:
            msgid = str(message["msgid"])
            if msgid in seen or msgid in fresh:
                continue
            fresh.append(msgid)
            self.session.add(
                WeComInboxRow(
                    msgid=msgid,
                    open_kfid=open_kfid,
                    external_userid=str(
                        message.get("external_userid") or _event_user(message) or ""
                    ),
                    payload=json.dumps(message, ensure_ascii=False),
                    received_at=at,
                )
            )
        await self.session.merge(WeComCursorRow(open_kfid=open_kfid, cursor=cursor, updated_at=at))
        return fresh

    async def get(self, msgid: str) -> WeComInboxRow | None:
        return await self.session.get(WeComInboxRow, msgid)

    async def pending(self) -> list[WeComInboxRow]:
        rows = await self.session.scalars(
            select(WeComInboxRow)
            .where(WeComInboxRow.handled_at.is_(None))
            .order_by(WeComInboxRow.received_at, WeComInboxRow.msgid)
        )
        return list(rows)

    async def pending_of(self, external_userid: str) -> list[WeComInboxRow]:
        """One customer's messages not handled yet."""
        rows = await self.session.scalars(
            select(WeComInboxRow).where(
                WeComInboxRow.handled_at.is_(None),
                WeComInboxRow.external_userid == external_userid,
            )
        )
        return list(rows)

    async def mark_handled(self, msgid: str, at: datetime, error: str | None = None) -> bool:
        """Mark it handled, unless it was already (another instance, a repeat): False then, and
        the caller does not commit what it did for it."""
        result = await self.session.execute(
            update(WeComInboxRow)
            .where(WeComInboxRow.msgid == msgid, WeComInboxRow.handled_at.is_(None))
            .values(handled_at=at, error=error)
        )
        return bool(getattr(result, "rowcount", 0))

    async def count(self) -> int:
        return len(list(await self.session.scalars(select(WeComInboxRow.msgid))))

    async def last_words(self, since: datetime, user: str | None = None) -> dict[str, datetime]:
        """Each customer's last message (not an event) received since `since` (only `user`'s,
        when given)."""
        query = (
            select(WeComInboxRow.external_userid, WeComInboxRow.received_at, WeComInboxRow.payload)
            .where(WeComInboxRow.received_at >= since)
            .order_by(WeComInboxRow.received_at)
        )
        if user is not None:
            query = query.where(WeComInboxRow.external_userid == user)
        rows = await self.session.execute(query)
        last: dict[str, datetime] = {}
        for user, at, payload in rows:
            if json.loads(payload).get("origin") == 3:
                last[user] = at
        return last


def _event_user(message: dict[str, object]) -> str | None:
    event = message.get("event")
    return str(event.get("external_userid")) if isinstance(event, dict) else None


class OrderRepository:
    """The shop's orders, by order number (as the intake normalises them)."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, order_number: str) -> Order | None:
        row = await self.session.get(OrderRow, normalise_number(order_number))
        if row is None:
            return None
        return Order(
            row.order_number,
            row.product,
            row.batch,
            row.delivered_at,
            row.store,
            row.region,
            row.notes,
        )

    async def put(self, orders: list[Order], now: datetime) -> int:
        """Add or replace these orders (a file sent again replaces what it said before; of an
        order given twice, the last row wins), in one INSERT ... ON CONFLICT DO UPDATE sent as
        one batch: an import's chunk of a few thousand rows is one statement, not one a row.
        Returns how many orders were written."""
        rows = {
            number: {
                "order_number": number,
                "product": order.product,
                "batch": order.batch,
                "delivered_at": order.delivered_at,
                "store": order.store,
                "region": order.region,
                "notes": order.notes,
                "imported_at": now,
            }
            for order in orders
            if (number := normalise_number(order.order_number))
        }
        if not rows:
            return 0
        insert = _insert_of(self.session)
        table = OrderRow.__table__
        upsert = insert(table)
        upsert = upsert.on_conflict_do_update(
            index_elements=[table.c.order_number],
            set_={c.name: upsert.excluded[c.name] for c in table.c if not c.primary_key},
        )
        await self.session.execute(upsert, list(rows.values()))
        return len(rows)


class NoticeRepository:
    """Notices given once per period (batch alerts, the weekly report)."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def last(self, kind: str, key: str) -> datetime | None:
        row = await self.session.get(NoticeRow, (kind, key), with_for_update=_locks(self.session))
        return row.at if row is not None else None

    async def given(self, kind: str, key: str, at: datetime, **detail: object) -> None:
        await self.session.merge(NoticeRow(kind=kind, key=key, at=at, detail=dict(detail)))


class FileRepository:
    """Files the desk made to send (charts, exports): the sender fetches them by id."""

    KEEP = timedelta(days=2)

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, name: str, data: bytes, now: datetime) -> int:
        await self.session.execute(delete(FileRow).where(FileRow.created_at < now - self.KEEP))
        row = FileRow(name=name, data=data, created_at=now)
        self.session.add(row)
        await self.session.flush()
        return row.id

    async def get(self, file_id: int) -> tuple[str, bytes] | None:
        row = await self.session.get(FileRow, file_id)
        return (row.name, row.data) if row is not None else None


@dataclass(frozen=True)
class StaffCard:
    userid: str
    task_id: str
    response_code: str | None
    told: str | None = None  # the state it last showed, or was said in a plain message


class StaffAppRepository:
    """The WeCom app's side of the staff room: its callbacks (stored once, until handled),
    each member's card of each ticket with the code that may update it, and each member's
    current ticket."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def put_callback(self, key: str, userid: str, payload: str, at: datetime) -> bool:
        """Store a callback; False when it was stored before (WeCom posted it again)."""
        if await self.session.get(StaffAppInboxRow, key) is not None:
            return False
        self.session.add(StaffAppInboxRow(key=key, userid=userid, payload=payload, received_at=at))
        return True

    async def pending(self) -> list[StaffAppInboxRow]:
        rows = await self.session.scalars(
            select(StaffAppInboxRow)
            .where(StaffAppInboxRow.handled_at.is_(None))
            .order_by(StaffAppInboxRow.received_at, StaffAppInboxRow.key)
        )
        return list(rows)

    async def callback(self, key: str) -> StaffAppInboxRow | None:
        """One stored callback (a member's words the desk asked about)."""
        return await self.session.get(StaffAppInboxRow, key)

    async def recent_of(self, userid: str, since: datetime, limit: int = 20) -> list[str]:
        """What a member sent the app since `since`, newest first (the callbacks' payloads)."""
        rows = await self.session.scalars(
            select(StaffAppInboxRow.payload)
            .where(StaffAppInboxRow.userid == userid, StaffAppInboxRow.received_at >= since)
            .order_by(StaffAppInboxRow.received_at.desc(), StaffAppInboxRow.key.desc())
            .limit(limit)
        )
        return list(rows)

    async def mark_handled(self, key: str, at: datetime, error: str | None = None) -> bool:
        """Mark it handled, unless it was already (another instance, a repeat): False then, and
        the caller does not commit what it did for it."""
        result = await self.session.execute(
            update(StaffAppInboxRow)
            .where(StaffAppInboxRow.key == key, StaffAppInboxRow.handled_at.is_(None))
            .values(handled_at=at, error=error)
        )
        return bool(getattr(result, "rowcount", 0))

    async def cards(self, ticket_id: int) -> list[StaffCard]:
        """Each member's card of the ticket: (userid, task_id, response_code or None)."""
        rows = await self.session.execute(
            select(
                StaffCardRow.userid,
                StaffCardRow.task_id,
                StaffCardRow.response_code,
                StaffCardRow.told,
            ).where(StaffCardRow.ticket_id == ticket_id)
        )
        return [StaffCard(u, t, c, told) for u, t, c, told in rows]

    async def told(self, ticket_id: int, userids: list[str], state: str) -> None:
        """These members' cards show (or they were told) this state of the ticket."""
        await self.session.execute(
            update(StaffCardRow)
            .where(StaffCardRow.ticket_id == ticket_id, StaffCardRow.userid.in_(userids))
            .values(told=state)
        )

    async def card_sent(
        self, ticket_id: int, userid: str, task_id: str, code: str | None, at: datetime
    ) -> None:
        await self.session.merge(
            StaffCardRow(ticket_id=ticket_id, userid=userid, task_id=task_id,
                         response_code=code, code_at=at if code else None, sent_at=at)
        )  # fmt: skip

    async def ticket_of_task(self, task_id: str) -> int | None:
        return await self.session.scalar(
            select(StaffCardRow.ticket_id).where(StaffCardRow.task_id == task_id).limit(1)
        )

    async def fresh_code(self, task_id: str, userid: str, code: str, at: datetime) -> None:
        """A tap brought a new code for that member's card."""
        await self.session.execute(
            update(StaffCardRow)
            .where(StaffCardRow.task_id == task_id, StaffCardRow.userid == userid)
            .values(response_code=code, code_at=at)
        )

    async def code_used(self, ticket_id: int, userid: str) -> None:
        await self.session.execute(
            update(StaffCardRow)
            .where(StaffCardRow.ticket_id == ticket_id, StaffCardRow.userid == userid)
            .values(response_code=None, code_at=None)
        )

    async def focus(self, userid: str) -> int | None:
        row = await self.session.get(StaffFocusRow, userid)
        return row.ticket_id if row else None

    async def set_focus(self, userid: str, ticket_id: int, at: datetime) -> None:
        await self.session.merge(StaffFocusRow(userid=userid, ticket_id=ticket_id, updated_at=at))

    async def open_tickets_of(self, userid: str) -> list[int]:
        """Tickets still open whose card this member got, newest first."""
        rows = await self.session.scalars(
            select(StaffCardRow.ticket_id)
            .join(TicketRow, TicketRow.id == StaffCardRow.ticket_id)
            .where(
                StaffCardRow.userid == userid,
                TicketRow.status.in_(("open", "remedy_offered", "remedy_chosen")),
            )
            .order_by(StaffCardRow.ticket_id.desc())
            .limit(5)
        )
        return list(rows)


class LeaseRepository:
    """Work claimed by one instance for a while (`storage.models.LeaseRow`). Each change is one
    statement, so two instances claiming at once cannot both win; commit it at once, in a unit
    of work of its own, for the others to see."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def claim(self, name: str, holder: str, now: datetime, ttl: float) -> bool:
        """Hold `name` until `now + ttl`: taken when free or expired, renewed when already
        held by `holder`; False when another holds it."""
        insert = _insert_of(self.session)
        table = LeaseRow.__table__
        upsert = insert(table).values(name=name, holder=holder, until=now + timedelta(seconds=ttl))
        upsert = upsert.on_conflict_do_update(
            index_elements=[table.c.name],
            set_={"holder": upsert.excluded.holder, "until": upsert.excluded.until},
            where=(table.c.until < now) | (table.c.holder == holder),
        ).returning(table.c.name)
        result = await self.session.execute(upsert)
        return result.scalar() is not None

    async def renew_all(self, holder: str, now: datetime, ttl: float, prefix: str = "") -> int:
        """Hold everything `holder` holds (whose name starts with `prefix`) until `now + ttl`;
        how many."""
        query = update(LeaseRow).where(LeaseRow.holder == holder)
        if prefix:
            query = query.where(LeaseRow.name.startswith(prefix, autoescape=True))
        result = await self.session.execute(
            query.values(until=now + timedelta(seconds=ttl)).execution_options(
                synchronize_session=False
            )
        )
        return int(getattr(result, "rowcount", 0))

    async def release(self, name: str, holder: str) -> None:
        """Hand `name` back, if `holder` still holds it."""
        await self.session.execute(
            delete(LeaseRow).where(LeaseRow.name == name, LeaseRow.holder == holder)
        )

    async def release_all(self, holder: str, prefix: str = "") -> None:
        """Hand back everything `holder` holds (whose name starts with `prefix`)."""
        query = delete(LeaseRow).where(LeaseRow.holder == holder)
        if prefix:
            query = query.where(LeaseRow.name.startswith(prefix, autoescape=True))
        await self.session.execute(query)

    async def held_by_others(self, now: datetime, holder: str, prefix: str = "") -> set[str]:
        """The names others hold at `now` (that start with `prefix`)."""
        query = select(LeaseRow.name).where(LeaseRow.holder != holder, LeaseRow.until >= now)
        if prefix:
            query = query.where(LeaseRow.name.startswith(prefix, autoescape=True))
        return set(await self.session.scalars(query))
