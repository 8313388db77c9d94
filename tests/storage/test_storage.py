"""Storage on real databases: the migrations, tickets and events, the inbox, dialogue state."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from aiogram.fsm.storage.base import StorageKey
from alembic import command
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.domain.tickets import Actor, EventKind, Status, Ticket
from storage.db import create_engine, session_factory
from storage.fsm import SqlStorage
from storage.migrate import alembic_config, migrate
from storage.uow import UnitOfWork

NOW = datetime(2026, 11, 23, 4, 0, tzinfo=UTC)


@pytest.fixture
async def factory(database_url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    await asyncio.to_thread(migrate, database_url)
    engine = create_engine(database_url)
    yield session_factory(engine)
    await engine.dispose()


async def test_migrations_build_the_schema_the_models_describe(database_url: str) -> None:
    """`alembic upgrade head` on an empty database, then `alembic check` finds nothing."""
    await asyncio.to_thread(migrate, database_url)
    await asyncio.to_thread(command.check, alembic_config(database_url))


async def test_a_ticket_round_trips_with_its_events(
    factory: async_sessionmaker[AsyncSession],
) -> None:
    """What the domain sets is what comes back, aware UTC times included; events are kept."""
    ticket = Ticket.receive(Actor(9, "<b>小明</b>", "customer"), "zh", NOW, username="xm")
    ticket.category, ticket.story, ticket.photos = "quality", ["蔫了", "很生气"], ["p1"]
    async with UnitOfWork(factory) as uow:
        await uow.tickets.add(ticket)
        ticket.submit(NOW, "medium", ["蔫"])
        ticket.take(Actor(5, "小王", "staff"), NOW)
        await uow.tickets.save(ticket)
        await uow.commit()
    async with UnitOfWork(factory) as uow:
        loaded = await uow.tickets.get(ticket.id or 0)
        events = await uow.tickets.events(ticket.id or 0)
        active = await uow.tickets.active_for_customer("telegram", 9)
    assert loaded is not None and active is not None and active.id == ticket.id
    assert loaded.status is Status.OPEN and loaded.story == ["蔫了", "很生气"]
    assert loaded.submitted_at == NOW and loaded.taken_by == Actor(5, "小王", "staff")
    assert loaded.customer_name == "<b>小明</b>"
    assert [e.kind for e in events] == [
        EventKind.RECEIVED,
        EventKind.IN_INTAKE,
        EventKind.SUBMITTED,
        EventKind.TAKEN,
    ]


async def test_uncommitted_work_is_rolled_back(factory: async_sessionmaker[AsyncSession]) -> None:
    """The unit of work keeps nothing unless commit() was called."""
    async with UnitOfWork(factory) as uow:
        ticket = await uow.tickets.add(Ticket.receive(Actor(3, "a", "customer"), "zh", NOW))
    async with UnitOfWork(factory) as uow:
        assert await uow.tickets.get(ticket.id or 0) is None


async def test_the_inbox_ignores_a_repeated_update_and_lists_what_is_unhandled(
    factory: async_sessionmaker[AsyncSession],
) -> None:
    """put_new returns only new update_ids; handled ones drop out of pending."""
    rows = [{"update_id": i, "chat_key": "1", "payload": "{}", "received_at": NOW} for i in (1, 2)]
    async with UnitOfWork(factory) as uow:
        assert await uow.inbox.put_new(rows) == {1, 2}
        await uow.commit()
    async with UnitOfWork(factory) as uow:
        again = rows + [{"update_id": 3, "chat_key": "1", "payload": "{}", "received_at": NOW}]
        assert await uow.inbox.put_new(again) == {3}
        await uow.inbox.mark_handled(1, NOW)
        await uow.commit()
    async with UnitOfWork(factory) as uow:
        assert [r.update_id for r in await uow.inbox.pending()] == [2, 3]


async def test_dialogue_state_survives_in_the_database(
    factory: async_sessionmaker[AsyncSession],
) -> None:
    """The FSM storage writes inside the update's transaction, or commits on its own."""
    storage = SqlStorage(factory)
    key = StorageKey(bot_id=1, chat_id=9, user_id=9)
    await storage.set_state(key, "FileComplaint:entering_order_number")
    await storage.set_data(key, {"ticket_id": 7})
    async with UnitOfWork(factory) as uow:
        await storage.set_state(key, "FileComplaint:describing_problem")
        await uow.rollback()  # not committed: the state stays where it was
    fresh = SqlStorage(factory)
    assert await fresh.get_state(key) == "FileComplaint:entering_order_number"
    assert await fresh.get_data(key) == {"ticket_id": 7}
    async with UnitOfWork(factory) as uow:
        await storage.set_state(key, "FileComplaint:describing_problem")
        await uow.commit()
    assert await fresh.get_state(key) == "FileComplaint:describing_problem"
