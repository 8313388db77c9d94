"""The unit of work: one session and one transaction per update: the ticket, its events, its
deadlines, the inbox row and the outgoing messages (the outbox) are committed together."""

from __future__ import annotations

from collections.abc import Callable
from types import TracebackType

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from storage.insight import InsightRepository
from storage.outbox import Outbox
from storage.repositories import (
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
    messages or changed deadlines (it wakes the sender and the scheduler)."""

    def __init__(
        self,
        factory: async_sessionmaker[AsyncSession],
        planner: Planner | None = None,
        on_commit: Callable[[], None] | None = None,
    ) -> None:
        self._factory = factory
        self._planner = planner
        self._on_commit = on_commit

    async def __aenter__(self) -> UnitOfWork:
        self.session = self._factory()
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
        await self.session.commit()
        if self._on_commit is not None:
            self._on_commit()

    async def rollback(self) -> None:
        await self.session.rollback()
