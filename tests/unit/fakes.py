"""In-memory fakes of the unit of work, for testing the use cases in `handlers/` without a
database: repositories that keep copies (a ticket changes only through `save`, as in the real
one), and an outbox that records what was queued."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field, replace
from datetime import datetime
from functools import cache
from types import TracebackType
from typing import Any, cast

from bot.config import BUNDLED_POLICY
from bot.domain.clock import Deadline, SlaPolicy
from bot.domain.history import phone_of
from bot.domain.messages import Say, Urgency
from bot.domain.orders import Order, normalise_number
from bot.domain.tickets import ACTIVE, Actor, CustomerRef, Event, Status, Ticket
from bot.policy import Policy, load_policy
from bot.render import Render, make_renderer
from handlers.context import Desk
from storage.outbox import (
    CARD,
    CARD_EDIT,
    CLEAR,
    RELAY,
    ROOM,
    SAY,
    STAFF,
    THREAD,
    customer_lane,
    thread_lane,
)
from storage.repositories import Planner, StoredMessage
from storage.uow import AfterCommit, UnitOfWork

MANAGER = Actor("4242", "陈店长", "manager")


# -- the desk ------------------------------------------------------------------------------


@cache
def _bundled() -> tuple[Policy, Render]:
    """The bundled policy and its renderer, built once (the templates compile once)."""
    policy = load_policy(BUNDLED_POLICY)
    return policy, make_renderer(policy.timezone)


def managers() -> list[Actor]:
    return [MANAGER]


def desk(**overrides: Any) -> Desk:
    """The desk as `bot.app` builds it, with the bundled flower-shop policy and one manager."""
    policy, render = _bundled()
    built = Desk(policy=policy, render=render, sla=SlaPolicy(), managers=managers)
    return replace(built, **overrides)


# -- tickets -------------------------------------------------------------------------------


class FakeDeadlines:
    """The deadlines the planner gave each ticket at its last change."""

    def __init__(self) -> None:
        self.planned: dict[int, list[Deadline]] = {}

    async def sync(self, ticket: Ticket, planned: list[Deadline]) -> None:
        assert ticket.id is not None
        self.planned[ticket.id] = list(planned)


class FakeTickets:
    """Tickets kept as copies: what a use case changes is stored only when it saves."""

    def __init__(self, planner: Planner | None = None) -> None:
        self._rows: dict[int, Ticket] = {}
        self._events: dict[int, list[Event]] = {}
        self.planner = planner
        self.deadlines = FakeDeadlines()

    def _store(self, ticket: Ticket) -> None:
        assert ticket.id is not None
        self._events.setdefault(ticket.id, []).extend(ticket.events)
        ticket.events.clear()
        self._rows[ticket.id] = copy.deepcopy(ticket)

    async def _plan(self, ticket: Ticket) -> None:
        if self.planner is not None:
            await self.deadlines.sync(ticket, self.planner(ticket))

    def _latest(self, who: CustomerRef, statuses: tuple[Status, ...]) -> Ticket | None:
        for ticket_id in sorted(self._rows, reverse=True):
            row = self._rows[ticket_id]
            if row.customer == who and row.status in statuses:
                return copy.deepcopy(row)
        return None

    async def get(self, ticket_id: int) -> Ticket | None:
        row = self._rows.get(ticket_id)
        return copy.deepcopy(row) if row is not None else None

    async def add(self, ticket: Ticket) -> Ticket:
        ticket.id = max(self._rows, default=0) + 1
        self._store(ticket)
        await self._plan(ticket)
        return ticket

    async def save(self, ticket: Ticket) -> None:
        assert ticket.id is not None and ticket.id in self._rows, (
            "save: the ticket was never added"
        )
        self._store(ticket)
        await self._plan(ticket)

    async def active_for_customer(self, who: CustomerRef) -> Ticket | None:
        return self._latest(who, ACTIVE)

    async def with_orders(self, order_numbers: list[str]) -> list[Ticket]:
        wanted = set(order_numbers)
        return [
            copy.deepcopy(row)
            for _, row in sorted(self._rows.items())
            if row.order_number in wanted and (row.is_with_staff or row.status is Status.RESOLVED)
        ]

    async def follow_up_missed(self, who: CustomerRef) -> Ticket | None:
        found = self._latest(who, (Status.RESOLVED,))
        return found if found is not None and found.follow_up_missed else None

    async def awaiting_comment(self, who: CustomerRef) -> Ticket | None:
        for ticket_id in sorted(self._rows, reverse=True):
            row = self._rows[ticket_id]
            if row.customer == who and row.awaiting_comment:
                return copy.deepcopy(row)
        return None

    async def of_customer(
        self, who: CustomerRef, phone: str | None, since: datetime, before_id: int
    ) -> list[Ticket]:
        return [
            copy.deepcopy(row)
            for ticket_id, row in sorted(self._rows.items(), reverse=True)
            if ticket_id != before_id
            and row.submitted_at is not None
            and row.submitted_at >= since
            and row.status.value != "cancelled"
            and (row.customer == who or (phone is not None and phone_of(row.contact) == phone))
        ]

    async def recent_for_customer(
        self, who: CustomerRef, since: datetime, before_id: int
    ) -> Ticket | None:
        for ticket_id in sorted(self._rows, reverse=True):
            row = self._rows[ticket_id]
            if (
                row.customer == who
                and ticket_id < before_id
                and row.submitted_at is not None
                and row.submitted_at >= since
            ):
                return copy.deepcopy(row)
        return None

    async def without_card(self) -> list[int]:
        with_staff = [s for s in ACTIVE if s is not Status.INTAKE]
        return [
            ticket_id
            for ticket_id, row in sorted(self._rows.items())
            if row.card_message_id is None and row.status in with_staff
        ]

    async def known_customers(self, channel: str, ids: list[str]) -> set[str]:
        return {r.customer_id for r in self._rows.values() if r.channel == channel} & set(ids)

    async def events(self, ticket_id: int) -> list[Event]:
        return list(self._events.get(ticket_id, []))


# -- messages and links --------------------------------------------------------------------


class FakeMessages:
    """Every message of a ticket, in and out, as `StoredMessage`s."""

    def __init__(self) -> None:
        self.stored: list[StoredMessage] = []
        self._pending: set[int] = set()

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
        message = StoredMessage(
            id=len(self.stored) + 1,
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
        )
        self.stored.append(message)
        if relay_pending:
            self._pending.add(message.id)

    async def exists(self, chat_id: str, message_id: str) -> bool:
        return any(m.chat_id == chat_id and m.message_id == message_id for m in self.stored)

    async def for_ticket(self, ticket_id: int) -> list[StoredMessage]:
        return [m for m in self.stored if m.ticket_id == ticket_id]

    async def pending_relay(self, ticket_id: int | None = None) -> list[StoredMessage]:
        return [
            m
            for m in self.stored
            if m.id in self._pending and (ticket_id is None or m.ticket_id == ticket_id)
        ]

    async def mark_relayed(self, ids: list[int]) -> None:
        self._pending.difference_update(ids)


class FakeLinks:
    """Staff-room messages and the tickets they belong to."""

    def __init__(self, tickets: FakeTickets) -> None:
        self._tickets = tickets
        self._links: dict[tuple[int, int], int] = {}

    async def link(self, chat_id: int, message_id: int, ticket_id: int) -> None:
        self._links[(chat_id, message_id)] = ticket_id

    async def ticket_for(self, chat_id: int, message_id: int) -> int | None:
        return self._links.get((chat_id, message_id))

    async def ticket_for_topic(self, topic_id: int) -> int | None:
        rows = self._tickets._rows
        found = [tid for tid, row in rows.items() if row.topic_id == topic_id]
        return max(found, default=None)


# -- the outbox ----------------------------------------------------------------------------


@dataclass
class Queued:
    """One queued message, as the outbox would store its row."""

    channel: str
    recipient: str
    lane: str
    kind: str
    urgency: Urgency
    say: Say = field(default_factory=Say)
    ticket_id: int | None = None
    collapse: str | None = None
    not_before: datetime | None = None
    dropped: bool = False
    answer_by: Actor | None = None
    reply_to: str | None = None
    album: str | None = None
    merge: tuple[str, str] | None = None
    story: str = ""
    message_ref: str | None = None  # a CLEAR row: the message whose choices go
    alert: bool = False  # an escalation: mirrored to a second staff room
    to: Actor | None = None  # meant for this one person

    @property
    def text(self) -> str:
        return self.say.text

    @property
    def labels(self) -> list[str]:
        """The labels of its choices, row after row."""
        return [choice.label for row in self.say.choices for choice in row]


class FakeOutbox:
    """Records what the use cases queue; nothing is ever sent, so `drop` drops any row with
    the key that is not dropped yet."""

    def __init__(self) -> None:
        self.queued: list[Queued] = []
        self._seen = 0

    @property
    def added(self) -> int:
        return len(self.queued)

    def take(self) -> list[Queued]:
        """What was queued since the last `take` (dropped rows too, flagged)."""
        new = self.queued[self._seen :]
        self._seen = len(self.queued)
        return new

    def pending(self) -> list[Queued]:
        return [q for q in self.queued if not q.dropped]

    def to_customer(
        self,
        who: CustomerRef,
        say: Say,
        *,
        ticket_id: int | None = None,
        urgency: Urgency = Urgency.RELAY,
        kind: str = SAY,
        not_before: datetime | None = None,
        collapse: str | None = None,
        answer_by: Actor | None = None,
    ) -> None:
        self.queued.append(
            Queued(
                channel=who.channel,
                recipient=who.id,
                lane=customer_lane(who),
                kind=kind,
                urgency=urgency,
                say=say,
                ticket_id=ticket_id,
                collapse=collapse,
                not_before=not_before,
                answer_by=answer_by,
            )
        )

    def clear_choices(self, who: CustomerRef, message_ref: str) -> None:
        self.queued.append(
            Queued(
                channel=who.channel,
                recipient=who.id,
                lane=customer_lane(who),
                kind=CLEAR,
                urgency=Urgency.REPORT,
                message_ref=message_ref,
            )
        )

    def clear_room_choices(self, ticket_id: int, message_ref: str) -> None:
        self.queued.append(
            Queued(
                channel=STAFF,
                recipient=STAFF,
                lane=thread_lane(ticket_id),
                kind=CLEAR,
                urgency=Urgency.REPORT,
                ticket_id=ticket_id,
                message_ref=message_ref,
            )
        )

    def card(self, ticket_id: int, card: Say, story: str = "") -> None:
        self.queued.append(
            Queued(
                channel=STAFF,
                recipient=STAFF,
                lane=thread_lane(ticket_id),
                kind=CARD,
                urgency=Urgency.CARD,
                say=card,
                ticket_id=ticket_id,
                story=story,
            )
        )

    def card_edit(self, ticket_id: int, card: Say) -> None:
        self.queued.append(
            Queued(
                channel=STAFF,
                recipient=STAFF,
                lane=thread_lane(ticket_id),
                kind=CARD_EDIT,
                urgency=Urgency.CARD,
                say=card,
                ticket_id=ticket_id,
                collapse=f"card:{ticket_id}",
            )
        )

    def to_thread(
        self,
        ticket_id: int,
        say: Say,
        *,
        urgency: Urgency = Urgency.CARD,
        reply_to: str | None = None,
        relay: bool = False,
        album: str | None = None,
        not_before: datetime | None = None,
        merge: tuple[str, str] | None = None,
        alert: bool = False,
        to: Actor | None = None,
    ) -> None:
        self.queued.append(
            Queued(
                channel=STAFF,
                recipient=STAFF,
                lane=thread_lane(ticket_id),
                kind=RELAY if relay else THREAD,
                urgency=urgency,
                say=say,
                ticket_id=ticket_id,
                not_before=not_before,
                reply_to=reply_to,
                album=album,
                merge=merge,
                alert=alert,
                to=to,
            )
        )

    def to_room(
        self,
        say: Say,
        *,
        ticket_id: int | None = None,
        urgency: Urgency = Urgency.CARD,
        alert: bool = False,
        to: Actor | None = None,
    ) -> None:
        self.queued.append(
            Queued(
                channel=STAFF,
                recipient=STAFF,
                lane=thread_lane(None),
                kind=ROOM,
                urgency=urgency,
                say=say,
                ticket_id=ticket_id,
                alert=alert,
                to=to,
            )
        )

    async def drop(self, collapse: str) -> None:
        for queued in self.queued:
            if queued.collapse == collapse:
                queued.dropped = True

    async def has_pending_card(self, ticket_id: int) -> bool:
        return any(
            q.ticket_id == ticket_id and q.kind == CARD and not q.dropped for q in self.queued
        )

    async def sent_card(self, ticket_id: int) -> bool:
        return False  # nothing is ever sent


# -- insight: orders, notices, files, counts -----------------------------------------------


class FakeOrders:
    def __init__(self) -> None:
        self.rows: dict[str, Order] = {}

    async def get(self, order_number: str) -> Order | None:
        return self.rows.get(normalise_number(order_number))

    async def put(self, orders: list[Order], now: datetime) -> int:
        for order in orders:
            self.rows[normalise_number(order.order_number)] = order
        return len(orders)


class FakeNotices:
    def __init__(self) -> None:
        self.rows: dict[tuple[str, str], tuple[datetime, dict[str, object]]] = {}

    async def last(self, kind: str, key: str) -> datetime | None:
        found = self.rows.get((kind, key))
        return found[0] if found else None

    async def given(self, kind: str, key: str, at: datetime, **detail: object) -> None:
        self.rows[(kind, key)] = (at, detail)


class FakeFiles:
    def __init__(self) -> None:
        self.rows: dict[int, tuple[str, bytes]] = {}

    async def add(self, name: str, data: bytes, now: datetime) -> int:
        file_id = len(self.rows) + 1
        self.rows[file_id] = (name, data)
        return file_id

    async def get(self, file_id: int) -> tuple[str, bytes] | None:
        return self.rows.get(file_id)


class FakeInsight:
    """What the use cases ask of the complaint record, counted from the fake tickets."""

    def __init__(self, tickets: FakeTickets) -> None:
        self.tickets = tickets

    async def complaints_about(
        self, *, product: str | None = None, batch: str | None = None, since: datetime
    ) -> list[int]:
        found = []
        for ticket_id, row in sorted(self.tickets._rows.items()):
            if row.submitted_at is None or row.submitted_at < since:
                continue
            if row.status in (Status.INTAKE, Status.CANCELLED):
                continue
            if (product and row.product == product) or (batch and row.batch == batch):
                found.append(ticket_id)
        return found


# -- the unit of work ----------------------------------------------------------------------


class FakeUnitOfWork:
    """The unit of work's attributes, in memory. `commits` counts `commit()` calls; the work
    left for after a commit runs then, its units of work being this same fake."""

    def __init__(self, planner: Planner | None = None) -> None:
        self.tickets = FakeTickets(planner)
        self.deadlines = self.tickets.deadlines
        self.messages = FakeMessages()
        self.links = FakeLinks(self.tickets)
        self.inbox = None  # the use cases never read the inbox (the poller does)
        self.outbox = FakeOutbox()
        self.orders = FakeOrders()
        self.notices = FakeNotices()
        self.files = FakeFiles()
        self.insight = FakeInsight(self.tickets)
        self.commits = 0
        self.after: list[AfterCommit] = []

    async def __aenter__(self) -> FakeUnitOfWork:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None

    def after_commit(self, job: AfterCommit) -> None:
        self.after.append(job)

    async def commit(self) -> None:
        self.commits += 1
        jobs, self.after = self.after, []
        for job in jobs:
            await job(self._another)

    async def rollback(self) -> None:
        self.after.clear()

    def _another(self, *, read_only: bool = False) -> UnitOfWork:
        return self.typed

    @property
    def typed(self) -> UnitOfWork:
        """This fake where a use case's signature asks for the real unit of work."""
        return cast(UnitOfWork, self)
