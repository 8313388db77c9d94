"""Storage on real databases: the migrations (and an upgrade), tickets and events, the inbox,
the outbox."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from alembic import command
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.domain.messages import Choice, Say
from bot.domain.tickets import Actor, CustomerRef, EventKind, Status, Ticket
from storage.db import create_engine, session_factory
from storage.migrate import alembic_config, migrate
from storage.uow import UnitOfWork
from tests.conftest import Templates

NOW = datetime(2026, 11, 23, 4, 0, tzinfo=UTC)


@pytest.fixture
async def factory(
    database_url: str, templates: Templates
) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    await templates.migrated(database_url)
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
    ticket = Ticket.receive(CustomerRef("telegram", "9"), "<b>小明</b>", "zh", NOW, username="xm")
    ticket.category, ticket.story, ticket.photos = "quality", ["蔫了", "很生气"], ["p1"]
    async with UnitOfWork(factory) as uow:
        await uow.tickets.add(ticket)
        ticket.submit(NOW, "medium", ["蔫"])
        ticket.take(Actor("5", "小王", "staff"), NOW)
        await uow.tickets.save(ticket)
        await uow.commit()
    async with UnitOfWork(factory) as uow:
        loaded = await uow.tickets.get(ticket.id or 0)
        events = await uow.tickets.events(ticket.id or 0)
        active = await uow.tickets.active_for_customer(CustomerRef("telegram", "9"))
    assert loaded is not None and active is not None and active.id == ticket.id
    assert loaded.status is Status.OPEN and loaded.story == ["蔫了", "很生气"]
    assert loaded.submitted_at == NOW and loaded.taken_by == Actor("5", "小王", "staff")
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
        ticket = await uow.tickets.add(
            Ticket.receive(CustomerRef("telegram", "3"), "a", "zh", NOW)
        )
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


async def test_the_outbox_keeps_only_committed_messages_in_lane_order(
    factory: async_sessionmaker[AsyncSession],
) -> None:
    """Messages queued in a rolled-back unit of work are gone; committed ones wait in their
    lane in order until the sender records them; a collapse key drops the pending ones."""
    who = CustomerRef("telegram", "9")
    async with UnitOfWork(factory) as uow:
        uow.outbox.to_customer(who, Say("lost"))
        await uow.rollback()
    async with UnitOfWork(factory) as uow:
        uow.outbox.to_customer(who, Say("one", ((Choice("好", "i:cat:quality"),),)))
        uow.outbox.to_customer(who, Say("two"), collapse="photos:1")
        uow.outbox.to_customer(CustomerRef("telegram", "10"), Say("other lane"))
        await uow.commit()
    async with UnitOfWork(factory) as uow:
        assert sorted(await uow.outbox.lanes()) == ["telegram:10", "telegram:9"]
        pending = await uow.outbox.pending("telegram:9")
        assert [p.say.text for p in pending] == ["one", "two"]
        assert pending[0].say.choices[0][0].key == "i:cat:quality"
        await uow.outbox.done([pending[0].id], "sent", NOW, ["77"])
        await uow.outbox.drop("photos:1")
        await uow.commit()
    async with UnitOfWork(factory) as uow:
        assert await uow.outbox.pending("telegram:9") == []
        history = await uow.outbox.history("telegram:9")
        assert [(row.say.text, outcome) for row, outcome in history] == [
            ("one", "sent"),
            ("two", "dropped"),
        ]


async def test_a_database_of_the_previous_version_upgrades_keeping_its_tickets(
    database_url: str,
) -> None:
    """Tickets, messages, events and deadlines written before customer ids became text come
    through the upgrade with their values."""
    config = alembic_config(database_url)
    await asyncio.to_thread(command.upgrade, config, "0002")
    engine = create_engine(database_url)
    try:
        async with engine.begin() as conn:
            await conn.execute(
                text(
                    "INSERT INTO tickets (id, channel, customer_id, customer_name, language, "
                    "status, order_skipped, story, photos, photos_done, contact_skipped, "
                    "created_at, severity_words, customer_blocked, taken_by_id, taken_by_name, "
                    "deadline_round, incomplete) VALUES (1, 'telegram', 1001, '小明', 'zh', "
                    "'open', false, '[]', '[]', true, false, :at, '[]', false, 5, '小王', 0, "
                    "false)"
                ),
                {"at": NOW.replace(tzinfo=None)},
            )
            await conn.execute(
                text(
                    "INSERT INTO events (ticket_id, kind, actor_id, actor_name, actor_role, at, "
                    "detail) VALUES (1, 'taken', 5, '小王', 'staff', :at, '')"
                ),
                {"at": NOW.replace(tzinfo=None)},
            )
            await conn.execute(
                text(
                    "INSERT INTO messages (ticket_id, direction, sender_id, sender_name, kind, "
                    "text, chat_id, message_id, at, relay_pending) VALUES (1, 'in', 1001, "
                    "'小明', 'text', '花蔫了', 1001, 42, :at, false)"
                ),
                {"at": NOW.replace(tzinfo=None)},
            )
            await conn.execute(
                text(
                    "INSERT INTO deadlines (ticket_id, kind, round, due_at) "
                    "VALUES (1, 'resolution', 0, :at)"
                ),
                {"at": NOW.replace(tzinfo=None)},
            )
    finally:
        await engine.dispose()
    await asyncio.to_thread(migrate, database_url)
    engine = create_engine(database_url)
    try:
        async with UnitOfWork(session_factory(engine)) as uow:
            ticket = await uow.tickets.active_for_customer(CustomerRef("telegram", "1001"))
            assert ticket is not None and ticket.customer_name == "小明"
            assert ticket.taken_by == Actor("5", "小王", "staff")
            assert [e.actor.id for e in await uow.tickets.events(1)] == ["5"]
            messages = await uow.messages.for_ticket(1)
            assert [(m.sender_id, m.chat_id, m.message_id) for m in messages] == [
                ("1001", "1001", "42")
            ]
            assert [d[0] for d in await uow.deadlines.for_ticket(1)] == ["resolution"]
    finally:
        await engine.dispose()


async def test_a_restart_on_a_current_sqlite_database_needs_no_migration(sqlite_url: str) -> None:
    """A new SQLite file needs the migrations; once they ran, a restart sees it is current (no
    child process, no Alembic) until a newer migration comes."""
    from storage.migrate import head_revision, sqlite_is_current

    assert head_revision() == "0011"
    assert not sqlite_is_current(sqlite_url)
    await asyncio.to_thread(migrate, sqlite_url)
    assert sqlite_is_current(sqlite_url)
    await asyncio.to_thread(command.downgrade, alembic_config(sqlite_url), "0003")
    assert not sqlite_is_current(sqlite_url)


async def test_one_customer_is_found_by_the_phone_however_it_was_written(
    factory: async_sessionmaker[AsyncSession],
) -> None:
    """A number typed with dashes on WeChat and one given bare on Telegram are the same person;
    another number ending alike is not."""
    written = {"wm01": "138-0013-8000", "wm02": "+86 139 0013 8000", "wm03": "就在这里联系"}
    async with UnitOfWork(factory) as uow:
        for who, contact in written.items():
            ticket = Ticket.receive(CustomerRef("wecom", who), who, "zh", NOW)
            ticket.contact = contact
            await uow.tickets.add(ticket)
            ticket.submit(NOW, None, [])
            await uow.tickets.save(ticket)
        await uow.commit()
    async with UnitOfWork(factory) as uow:
        found = await uow.tickets.of_customer(
            CustomerRef("telegram", "77"), "13800138000", NOW.replace(year=2000), 999
        )
    assert [t.customer_id for t in found] == ["wm01"]
