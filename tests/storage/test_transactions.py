"""Units of work on a real database: each is one transaction, so two lanes acting on one ticket
at once never decide from a stale copy of it."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.domain.clock import Deadline, DeadlineKind, SlaPolicy, WorkingHours, plan
from bot.domain.messages import Said, Tap
from bot.domain.orders import Order
from bot.domain.tickets import Actor, CustomerRef, EventKind, Status, Ticket
from bot.lanes import Lanes
from bot.scheduler import MAX_FAILURES, MAX_SLEEP, Act, Scheduler, Submit
from handlers import choices, customer, staff
from handlers import clock as clock_cases
from handlers.context import Desk
from storage.db import session_factory
from storage.outbox import CARD_EDIT
from storage.uow import UnitOfWork
from tests.unit import fakes
from tests.unit.fakes import MANAGER

NOW = datetime(2026, 11, 23, 4, 0, tzinfo=UTC)
RACES = 40
FIRST = DeadlineKind.FIRST_RESPONSE.value
ESCALATED = EventKind.ESCALATED


@pytest.fixture
def desk() -> Desk:
    return fakes.desk()


def planner(ticket: Ticket) -> list[Deadline]:
    return plan(ticket, SlaPolicy(), WorkingHours())


def units(engine: AsyncEngine) -> UnitOfWork:
    """A unit of work as the desk makes them (with the clock's planner)."""
    return UnitOfWork(session_factory(engine), planner)


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


# -- the clock: a deadline is claimed in the unit of work that acts on it ---------------------


class Clock:
    """The scheduler's clock, moved on by the test."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def scheduler(engine: AsyncEngine, clock: Clock, act: Act, submit: Submit) -> Scheduler:
    """A scheduler as `bot.app` builds it (every ticket in a lane of its own)."""
    factory = session_factory(engine)

    def new_uow(*, read_only: bool = False) -> UnitOfWork:
        return UnitOfWork(factory, planner, read_only=read_only)

    async def lane_of(ticket_id: int) -> str:
        return f"ticket:{ticket_id}"

    return Scheduler(new_uow, clock, act, submit, lane_of)


def acting(desk: Desk, clock: Clock) -> Act:
    async def act(uow: UnitOfWork, ticket_id: int, kind: DeadlineKind) -> None:
        await clock_cases.deadline_passed(uow, desk, ticket_id, kind, clock())

    return act


async def late(engine: AsyncEngine) -> int:
    """A ticket submitted a quarter of an hour ago that nobody answered: its first-response
    deadline is due (the next, progress, in an hour and three quarters)."""
    ticket = Ticket.receive(CustomerRef("telegram", "7001"), "小明", "zh", NOW)
    ticket.category, ticket.story = "quality", ["花全都蔫了,叶子也发黄了"]
    async with units(engine) as uow:
        await uow.tickets.add(ticket)
        ticket.submit(NOW - timedelta(minutes=15), "medium", [])
        await uow.tickets.save(ticket)
        await uow.commit()
    assert ticket.id is not None
    return ticket.id


async def first_response(engine: AsyncEngine, ticket_id: int) -> tuple[datetime | None, int]:
    """When the first-response deadline was marked fired, and how many pages staff have."""
    async with UnitOfWork(session_factory(engine), read_only=True) as uow:
        fired = [f for kind, _, f in await uow.deadlines.for_ticket(ticket_id) if kind == FIRST]
        thread = await uow.outbox.pending(f"staff:t{ticket_id}")
        escalated = [e for e in await uow.tickets.events(ticket_id) if e.kind is ESCALATED]
    pages = [r for r in thread if "还没有人回复" in r.say.text]
    assert len(pages) == len(escalated)  # the page and its event: together or not at all
    return fired[0], len(pages)


async def test_a_deadline_whose_action_fails_fires_on_a_later_tick_exactly_once(
    engine: AsyncEngine,
) -> None:
    """The managers cannot be named the first time the first-response deadline fires: nothing
    of it is kept and the deadline stays unfired; within the back-off it is not tried again;
    after it, the page comes, once."""
    calls = []

    def managers() -> list[Actor]:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("the staff room's adapter is not ready")
        return [MANAGER]

    clock, lanes = Clock(NOW), Lanes()
    ticks = scheduler(engine, clock, acting(fakes.desk(managers=managers), clock), lanes.submit)
    ticket_id = await late(engine)

    await ticks.tick()
    await lanes.idle()
    assert len(calls) == 1 and await first_response(engine, ticket_id) == (None, 0)
    await ticks.tick()  # within the back-off
    await lanes.idle()
    assert len(calls) == 1 and await first_response(engine, ticket_id) == (None, 0)

    clock.now += timedelta(minutes=1)
    await ticks.tick()
    await lanes.idle()
    fired, pages = await first_response(engine, ticket_id)
    assert fired is not None and pages == 1
    clock.now += timedelta(minutes=1)
    await ticks.tick()
    await lanes.idle()
    assert len(calls) == 2 and await first_response(engine, ticket_id) == (fired, 1)


async def test_an_action_killed_before_its_commit_fires_after_a_restart(
    engine: AsyncEngine,
) -> None:
    """A kill between the claim and the commit, in-process: the job is cancelled while its unit
    of work has claimed the deadline and written the page but not committed (as a kill -9
    leaves a transaction: never committed). The deadline is still unfired, and a scheduler
    started afresh fires it, once."""
    desk, clock = fakes.desk(), Clock(NOW)
    written = asyncio.Event()

    async def act_and_die(uow: UnitOfWork, ticket_id: int, kind: DeadlineKind) -> None:
        await clock_cases.deadline_passed(uow, desk, ticket_id, kind, clock())
        await uow.session.flush()  # the claim and the page are in the database, uncommitted
        written.set()
        await asyncio.Event().wait()  # the process dies here

    jobs: list[asyncio.Task[None]] = []

    def submit(lane: Hashable, job: Callable[[], Awaitable[None]]) -> None:
        jobs.append(asyncio.ensure_future(job()))

    ticket_id = await late(engine)
    await scheduler(engine, clock, act_and_die, submit).tick()
    await asyncio.wait_for(written.wait(), timeout=10)
    for job in jobs:
        job.cancel()
    await asyncio.gather(*jobs, return_exceptions=True)
    assert await first_response(engine, ticket_id) == (None, 0)

    lanes = Lanes()  # the next start
    again = scheduler(engine, clock, acting(desk, clock), lanes.submit)
    await again.tick()
    await lanes.idle()
    fired, pages = await first_response(engine, ticket_id)
    assert fired is not None and pages == 1
    await again.tick()
    await lanes.idle()
    assert await first_response(engine, ticket_id) == (fired, 1)


async def test_an_action_that_keeps_failing_is_set_aside_and_a_passing_failure_retried(
    engine: AsyncEngine,
) -> None:
    """A bug fails the same way every time: after a few tries (each after a longer back-off)
    the deadline is set aside and the scheduler does not spin on it. A database that stays
    locked a while is tried for as long as it takes."""
    calls: list[str] = []
    locked = OperationalError("UPDATE deadlines", {}, Exception("database is locked"))

    async def failing(uow: UnitOfWork, ticket_id: int, kind: DeadlineKind) -> None:
        calls.append(kind.value)
        raise RuntimeError("a bug") if len(calls) <= MAX_FAILURES else locked

    clock, lanes = Clock(NOW), Lanes()
    ticks = scheduler(engine, clock, failing, lanes.submit)
    ticket_id = await late(engine)
    for _ in range(MAX_FAILURES + 2):
        await ticks.tick()
        await lanes.idle()
        clock.now += timedelta(minutes=5)  # longer than any back-off
    assert calls == [FIRST] * MAX_FAILURES  # then set aside
    assert await ticks.tick() == MAX_SLEEP  # no spinning on it
    assert await first_response(engine, ticket_id) == (None, 0)

    restarted = scheduler(engine, clock, failing, lanes.submit)  # a bug fixed, say
    for _ in range(MAX_FAILURES + 2):
        await restarted.tick()
        await lanes.idle()
        clock.now += timedelta(minutes=5)
    # the database locked: tried every time, never set aside
    assert calls == [FIRST] * (2 * MAX_FAILURES + 2)
