"""The unit of work: one session and one transaction per update: the ticket, its events, its
deadlines, the inbox row and the outgoing messages (the outbox) are committed together.

One that only reads (an insight command computing its figures or its export before its update's
own short unit of work writes the result) is opened `read_only`: it locks no rows and cannot
commit."""

from __future__ import annotations

from collections.abc import Callable
from types import TracebackType
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from storage.insight import InsightRepository
from storage.outbox import Outbox
from storage.repositories import (
    READ_ONLY,
    FileRepository,
    GroupLinkRepository,
    InboxRepository,
    MessageRepository,
    NoticeRepository,
    OrderRepository,
    Planner,
    TicketRepository,
    WeComInboxRepository,
)


class UnitOfWork:
    """Rolls back unless `commit()` was called; `on_commit` runs after a commit that queued
    messages or changed deadlines (it wakes the sender and the scheduler). `read_only`: it only
    reads (no row is locked for a change), and cannot commit."""

    def __init__(
        self,
        factory: async_sessionmaker[AsyncSession],
        planner: Planner | None = None,
        on_commit: Callable[[], None] | None = None,
        *,
        read_only: bool = False,
    ) -> None:
        self._factory = factory
        self._planner = planner
        self._on_commit = on_commit
        self.read_only = read_only

    async def __aenter__(self) -> UnitOfWork:
        self.session = self._factory()
        if self.read_only:
            self.session.info[READ_ONLY] = True  # the repositories lock no rows
        self.tickets = TicketRepository(self.session, self._planner)
        self.deadlines = self.tickets.deadlines
        self.messages = MessageRepository(self.session)
        self.links = GroupLinkRepository(self.session)
        self.inbox = InboxRepository(self.session)
        self.outbox = Outbox(self.session)
        self.wecom = WeComInboxRepository(self.session)
        self.insight = InsightRepository(self.session)
        self.orders = OrderRepository(self.session)
        self.notices = NoticeRepository(self.session)
        self.files = FileRepository(self.session)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            await self.session.rollback()
        finally:
            await self.session.close()

    async def commit(self) -> None:
        if self.read_only:
            raise RuntimeError("a read-only unit of work cannot commit")
        await self.session.commit()
        if self._on_commit is not None:
            self._on_commit()

    async def rollback(self) -> None:
        await self.session.rollback()


class NewUnitOfWork(Protocol):
    """Makes a unit of work (the composition root's `new_uow`)."""

    def __call__(self, *, read_only: bool = False) -> UnitOfWork: ...
