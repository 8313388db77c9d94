"""The unit of work: one session and one transaction per update: the ticket, its events, its
deadlines, the inbox row and the outgoing messages (the outbox) are committed together.

A unit of work that may write holds the database's write lock on SQLite from its first read to
its commit (`storage.db`): nothing in it may wait on the network. One that only reads (the
scheduler's scan, a lookup before the work) is opened `read_only`: it reads a snapshot and
holds nobody up, and it cannot commit. What must wait on the network (the shop's order
endpoint) is handed to `after_commit`: it runs once the transaction is committed, and stores
what it learnt in a unit of work of its own."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from storage.db import READ_ONLY
from storage.insight import InsightRepository
from storage.outbox import Outbox
from storage.repositories import (
    FileRepository,
    GroupLinkRepository,
    InboxRepository,
    LeaseRepository,
    MessageRepository,
    NoticeRepository,
    OrderRepository,
    Planner,
    StaffAppRepository,
    TicketRepository,
    WeComInboxRepository,
)

logger = logging.getLogger(__name__)


class UnitOfWork:
    """Rolls back unless `commit()` was called; `on_commit` runs after a commit that queued
    messages or changed deadlines (it wakes the sender and the scheduler). `read_only`: it only
    reads (a deferred transaction on SQLite, which waits for no writer)."""

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
        self._after: list[AfterCommit] = []

    async def __aenter__(self) -> UnitOfWork:
        self.session = self._factory()
        if self.read_only:  # the transaction begins here, told it will not write
            self.session.info[READ_ONLY] = True  # the repositories lock no rows
            await self.session.connection(execution_options={READ_ONLY: True})
        self.tickets = TicketRepository(self.session, self._planner)
        self.deadlines = self.tickets.deadlines
        self.messages = MessageRepository(self.session)
        self.links = GroupLinkRepository(self.session)
        self.inbox = InboxRepository(self.session)
        self.outbox = Outbox(self.session)
        self.wecom = WeComInboxRepository(self.session)
        self.staff_app = StaffAppRepository(self.session)
        self.insight = InsightRepository(self.session)
        self.orders = OrderRepository(self.session)
        self.notices = NoticeRepository(self.session)
        self.files = FileRepository(self.session)
        self.leases = LeaseRepository(self.session)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._after.clear()
        try:
            await self.session.rollback()
        finally:
            await self.session.close()

    def after_commit(self, job: AfterCommit) -> None:
        """Work that must not run inside this transaction (it waits on the network): `commit()`
        runs it once the transaction is committed, giving it a way to open units of work of its
        own. A rollback forgets it; a failure of it is logged (what was committed stays)."""
        self._after.append(job)

    async def commit(self) -> None:
        if self.read_only:
            raise RuntimeError("a read-only unit of work cannot commit")
        await self.session.commit()
        if self._on_commit is not None:
            self._on_commit()
        jobs, self._after = self._after, []
        for job in jobs:  # no transaction is open here: the session holds no connection
            try:
                await job(self._another)
            except Exception:
                logger.exception("Work after a commit failed")

    async def rollback(self) -> None:
        self._after.clear()
        await self.session.rollback()

    def _another(self, *, read_only: bool = False) -> UnitOfWork:
        """A unit of work like this one (the same database, planner and wake-up), of its own."""
        return UnitOfWork(self._factory, self._planner, self._on_commit, read_only=read_only)


class NewUnitOfWork(Protocol):
    """Makes a unit of work (the composition root's `new_uow`)."""

    def __call__(self, *, read_only: bool = False) -> UnitOfWork: ...


AfterCommit = Callable[[NewUnitOfWork], Awaitable[None]]
