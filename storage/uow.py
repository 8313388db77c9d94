"""The unit of work: one session and one transaction per update."""

from __future__ import annotations

from contextvars import ContextVar
from types import TracebackType

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from storage.repositories import (
    GroupLinkRepository,
    InboxRepository,
    MessageRepository,
    Planner,
    TicketRepository,
)

# the session of the update being handled, so that the FSM storage writes in the same
# transaction as the ticket (a kill -9 leaves both before or both after)
current_session: ContextVar[AsyncSession | None] = ContextVar("current_session", default=None)


class UnitOfWork:
    """Rolls back unless `commit()` was called."""

    def __init__(
        self, factory: async_sessionmaker[AsyncSession], planner: Planner | None = None
    ) -> None:
        self._factory = factory
        self._planner = planner

    async def __aenter__(self) -> UnitOfWork:
        self.session = self._factory()
        self.tickets = TicketRepository(self.session, self._planner)
        self.deadlines = self.tickets.deadlines
        self.messages = MessageRepository(self.session)
        self.links = GroupLinkRepository(self.session)
        self.inbox = InboxRepository(self.session)
        self._token = current_session.set(self.session)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        current_session.reset(self._token)
        try:
            await self.session.rollback()
        finally:
            await self.session.close()

    async def commit(self) -> None:
        await self.session.commit()

    async def rollback(self) -> None:
        await self.session.rollback()


async def commit_current() -> None:
    """Commit what the current update (or task) has done so far, if it has a transaction."""
    session = current_session.get()
    if session is not None and session.in_transaction():
        await session.commit()
