"""Units of work on a real database: each is one transaction, so two lanes acting on one ticket
at once never decide from a stale copy of it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.domain.clock import SlaPolicy, WorkingHours, plan
from bot.domain.messages import Said, Tap
from bot.domain.orders import Order
from bot.domain.tickets import CustomerRef, Status, Ticket
from handlers import choices, customer, staff
from handlers.context import Desk
from storage.db import create_engine, session_factory
from storage.migrate import migrate
from storage.outbox import CARD_EDIT
from storage.uow import UnitOfWork
from tests.unit import fakes
from tests.unit.fakes import MANAGER

NOW = datetime(2026, 11, 23, 4, 0, tzinfo=UTC)
RACES = 40


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    await asyncio.to_thread(migrate, database_url)
    engine = create_engine(database_url)
    yield engine
    await engine.dispose()


@pytest.fixture
def desk() -> Desk:
    return fakes.desk()


def units(engine: AsyncEngine) -> UnitOfWork:
    """A unit of work as the desk makes them (with the clock's planner)."""
    return UnitOfWork(
        session_factory(engine), lambda ticket: plan(ticket, SlaPolicy(), WorkingHours())
    )


async def offered(engine: AsyncEngine, desk: Desk, number: int) -> Ticket:
    """A customer's submitted ticket, for which the manager chose the "medium" tier."""
    who = CustomerRef("telegram", str(5000 + number))
    ticket = Ticket.receive(who, "小明", "zh", NOW)
    ticket.category, ticket.story = "quality", ["花全都蔫了,叶子也发黄了"]
    async with units(engine) as uow:
        await uow.tickets.add(ticket)
        ticket.submit(NOW, "medium", [])
        await uow.tickets.save(ticket)
        await uow.commit()
    assert ticket.id is not None
    async with units(engine) as uow:
        key = choices.card_key("tier", ticket.id, "medium")
        await staff.card_tapped(uow, desk, MANAGER, key, "1", NOW)
        await uow.commit()
    return ticket


async def test_a_choice_and_a_new_offer_on_one_ticket_at_once_end_consistent(
    engine: AsyncEngine, desk: Desk
) -> None:
    """The customer taps an option of the "medium" tier while the manager re-offers "severe",
    again and again: the ticket ends either with the customer's choice of what they were
    offered, or with the new offer still open, never with an option of a tier never offered."""
    ends = set()
    for number in range(RACES):
        ticket = await offered(engine, desk, number)
        assert ticket.id is not None

        async def customer_chooses(ticket: Ticket = ticket) -> None:
            assert ticket.id is not None
            key = choices.option_key(ticket.id, "medium", 1)
            async with units(engine) as uow:
                await customer.tapped(uow, desk, Tap(ticket.customer, key, "2", "zh"), NOW)
                await uow.commit()

        async def manager_offers_again(ticket: Ticket = ticket) -> None:
            assert ticket.id is not None
            key = choices.card_key("tier", ticket.id, "severe")
            async with units(engine) as uow:
                await staff.card_tapped(uow, desk, MANAGER, key, "1", NOW)
                await uow.commit()

        await asyncio.gather(customer_chooses(), manager_offers_again())
        async with units(engine) as uow:
            end = await uow.tickets.get(ticket.id)
        assert end is not None
        state = (end.status, end.tier, end.chosen_option)
        assert state in {
            (Status.REMEDY_CHOSEN, "medium", 1),  # chosen first: the new offer came too late
            (Status.REMEDY_OFFERED, "severe", None),  # offered first: the choice was stale
        }, f"race {number}: {state}"
        ends.add(state)


async def test_a_read_only_unit_of_work_reads_beside_a_writer_and_cannot_commit(
    engine: AsyncEngine, desk: Desk
) -> None:
    """While one unit of work holds the write lock, a read-only one reads what was committed
    (it waits for no writer); a read-only one refuses to commit."""
    ticket = await offered(engine, desk, 0)
    assert ticket.id is not None
    async with units(engine) as writer:
        changing = await writer.tickets.get(ticket.id)  # on SQLite: BEGIN IMMEDIATE
        assert changing is not None
        changing.take(MANAGER, NOW)
        await writer.tickets.save(changing)
        await writer.session.flush()
        reader = UnitOfWork(session_factory(engine), read_only=True)
        async with reader:
            seen = await asyncio.wait_for(reader.tickets.get(ticket.id), timeout=10)
            assert seen is not None and seen.taken_by is None  # the last commit's state
            with pytest.raises(RuntimeError):
                await reader.commit()
        await writer.commit()


async def test_a_slow_order_endpoint_holds_up_no_other_chat(engine: AsyncEngine) -> None:
    """While the shop's order endpoint takes its time over a submitted complaint, another
    customer's message is handled and committed: nothing waits on the network inside a unit of
    work (on SQLite, one that did would hold the one write lock). The card shows the order
    once it comes."""
    asking, answer = asyncio.Event(), asyncio.Event()

    async def slow_lookup(number: str) -> Order | None:
        asking.set()
        await answer.wait()
        return Order(number, product="红玫瑰花束", batch="B20261120")

    desk = fakes.desk(order_lookup=slow_lookup)
    who = CustomerRef("telegram", "6001")
    ticket = Ticket.receive(who, "小明", "zh", NOW)
    ticket.category, ticket.order_number = "quality", "FS2026112301"
    ticket.story = ["花全都蔫了,叶子也发黄了"]
    ticket.photos_done = ticket.contact_skipped = True
    async with units(engine) as uow:
        await uow.tickets.add(ticket)
        await uow.commit()
    assert ticket.id is not None

    async def submits() -> None:
        async with units(engine) as uow:
            tap = Tap(who, choices.intake("submit"), "3", "zh")
            await customer.tapped(uow, desk, tap, NOW)
            await uow.commit()

    submitting = asyncio.create_task(submits())
    await asyncio.wait_for(asking.wait(), timeout=10)

    async def another_customer_writes() -> None:
        async with units(engine) as uow:
            said = Said(CustomerRef("telegram", "6002"), "小红", "zh", text="你好,花送错了")
            await customer.wrote(uow, desk, said, NOW)
            await uow.commit()

    try:
        await asyncio.wait_for(another_customer_writes(), timeout=10)
    finally:
        answer.set()
        await submitting
    async with units(engine) as uow:
        other = await uow.tickets.active_for_customer(CustomerRef("telegram", "6002"))
        shown = await uow.tickets.get(ticket.id)
        lanes = await uow.outbox.lanes()
        thread = await uow.outbox.pending(f"staff:t{ticket.id}")
    edits = [r for r in thread if r.kind == CARD_EDIT]
    assert other is not None and "telegram:6002" in lanes
    assert shown is not None and shown.status is Status.OPEN and shown.product == "红玫瑰花束"
    assert edits and "红玫瑰花束" in edits[-1].say.text
