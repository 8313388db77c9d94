"""Several instances on one database: each outbox row is sent by one of them, a lane keeps its
order, and the work of an instance that died or stopped passes to another; a deadline fires
once, whichever instance is alive."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Awaitable, Callable, Hashable, Iterable
from datetime import timedelta
from typing import Any, cast

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.channels.base import CustomerChannel, Delivery, Outcome, Refresh, StaffRoom
from bot.config import load_settings
from bot.domain.clock import DeadlineKind
from bot.domain.messages import Attachment, Outgoing, Say
from bot.domain.tickets import CustomerRef, Ticket
from bot.lanes import Lanes
from bot.leases import Claims
from bot.scheduler import Act
from bot.sender import Sender
from handlers import clock as clock_cases
from handlers.context import Desk
from storage.db import create_engine, session_factory
from storage.uow import UnitOfWork
from tests.storage.test_transactions import NOW, Clock, first_response, planner, scheduler
from tests.unit import fakes

LANES, ROWS = 12, 8
WAIT = 30.0  # seconds a barrier waits before the test fails (a busy machine)


class Customers:
    """The customers' messenger, shared by every instance: what each customer saw, in order.
    `hold`: a text whose send never comes back (the instance dies, or stops, with it in
    flight); it is not shown."""

    name = "telegram"

    def __init__(self, expected: int) -> None:
        self.seen: dict[str, list[str]] = defaultdict(list)
        self.expected = expected
        self.all_seen = asyncio.Event()
        self.hold: str | None = None
        self.held = asyncio.Event()

    def channel(self) -> Channel:
        return Channel(self)

    def count(self) -> int:
        return sum(len(texts) for texts in self.seen.values())


class Channel:
    """One instance's connection to the shared messenger."""

    name = "telegram"

    def __init__(self, customers: Customers) -> None:
        self.customers = customers
        self.sent = 0

    async def deliver(self, rows: list[Outgoing], refresh: Refresh) -> Outcome:
        head = rows[0]
        await asyncio.sleep(0)  # other lanes, and the other instance, go meanwhile
        if head.say.text == self.customers.hold:
            self.customers.held.set()
            await asyncio.Event().wait()  # never answered
        self.customers.seen[head.recipient].append(head.say.text)
        self.sent += 1
        if self.customers.count() >= self.customers.expected:
            self.customers.all_seen.set()
        return Outcome(Delivery.SENT, [head.id], [f"m{head.id}"])


def instance(engine: AsyncEngine, channel: Channel, claims: Claims) -> Sender:
    factory = session_factory(engine)

    def new_uow(*, read_only: bool = False) -> UnitOfWork:
        return UnitOfWork(factory, read_only=read_only)

    customers: dict[str, CustomerChannel] = {"telegram": channel}
    room = cast(StaffRoom, None)  # no staff-room rows here
    return Sender(new_uow, fakes.desk(), room, customers, claims=claims)


async def queue(engine: AsyncEngine, lanes: Iterable[int] = range(LANES)) -> None:
    """Each customer is sent ROWS messages, "1" to "8", queued as the desk queues them."""
    for number in range(ROWS):
        async with UnitOfWork(session_factory(engine)) as uow:
            for lane in lanes:
                uow.outbox.to_customer(CustomerRef("telegram", f"c{lane}"), Say(str(number + 1)))
            await uow.commit()


def in_order(lanes: Iterable[int] = range(LANES)) -> dict[str, list[str]]:
    return {f"c{lane}": [str(n + 1) for n in range(ROWS)] for lane in lanes}


async def killed(sender: Sender, running: asyncio.Task[None]) -> None:
    """A kill -9, in-process: every task of the instance ends where it is; nothing is handed
    back."""
    while tasks := [
        task
        for task in (running, sender._heartbeat, *sender._workers.values())
        if task is not None and not task.done()
    ]:  # a lane's worker ending starts another when rows came meanwhile: it dies too
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def test_two_instances_send_each_row_once_and_each_lane_in_order(
    engine: AsyncEngine,
) -> None:
    """Two instances send one outbox of many customers' messages at once: each customer sees
    each message once, in the order it was queued."""
    customers = Customers(LANES * ROWS)
    one, two = customers.channel(), customers.channel()
    first = instance(engine, one, Claims("one", ttl=15.0, look_every=0.2))
    second = instance(engine, two, Claims("two", ttl=15.0, look_every=0.2))
    await queue(engine)
    running = [asyncio.create_task(first.run()), asyncio.create_task(second.run())]
    try:
        await asyncio.wait_for(customers.all_seen.wait(), timeout=WAIT)
        await asyncio.wait_for(asyncio.gather(first.idle(), second.idle()), timeout=WAIT)
    finally:
        await asyncio.gather(first.stop(), second.stop())
        await asyncio.gather(*running)
    assert dict(customers.seen) == in_order()
    assert one.sent + two.sent == LANES * ROWS


async def test_the_lanes_of_an_instance_that_died_are_taken_over_once_its_leases_expire(
    engine: AsyncEngine,
) -> None:
    """An instance dies in the middle of a customer's messages (one in flight, never answered):
    the other leaves that customer alone while the lease lasts, then sends the rest; each
    customer sees every message once, in order."""
    customers = Customers(LANES * ROWS)
    customers.hold = "3"  # the first instance dies sending someone's third message
    first = instance(engine, customers.channel(), Claims("one", ttl=1.0, look_every=0.1))
    await queue(engine, [0])
    running = asyncio.create_task(first.run())
    await asyncio.wait_for(customers.held.wait(), timeout=WAIT)
    await killed(first, running)
    assert customers.seen == {"c0": ["1", "2"]}

    customers.hold = None
    await queue(engine, range(1, LANES))
    second = instance(engine, customers.channel(), Claims("two", ttl=1.0, look_every=0.1))
    running = asyncio.create_task(second.run())
    try:
        await asyncio.wait_for(customers.all_seen.wait(), timeout=WAIT)
    finally:
        await second.stop()
        await running
    assert dict(customers.seen) == in_order()


async def test_an_instance_that_stops_hands_its_lanes_to_another_at_once(
    engine: AsyncEngine,
) -> None:
    """An instance stops with a send in flight that does not come back in time: it hands the
    customer's lane back, and the other instance sends the rest long before the lease would
    have expired."""
    customers = Customers(ROWS)
    customers.hold = "3"
    first = instance(engine, customers.channel(), Claims("one", ttl=600.0, look_every=0.1))
    second = instance(engine, customers.channel(), Claims("two", ttl=600.0, look_every=0.1))
    await queue(engine, [0])
    running = [asyncio.create_task(first.run())]
    await asyncio.wait_for(customers.held.wait(), timeout=WAIT)
    running.append(asyncio.create_task(second.run()))
    customers.hold = None
    await first.stop(grace=0.2)
    try:
        await asyncio.wait_for(customers.all_seen.wait(), timeout=WAIT)
    finally:
        await second.stop()
        await asyncio.gather(*running)
    assert dict(customers.seen) == in_order([0])


# -- the clock: a deadline fires once, whichever instance is alive -----------------------------


async def late_ticket(engine: AsyncEngine, customer: str) -> int:
    """A customer's ticket submitted a quarter of an hour ago that nobody answered: its
    first-response deadline is due."""
    ticket = Ticket.receive(CustomerRef("telegram", customer), "小明", "zh", NOW)
    ticket.category, ticket.story = "quality", ["花全都蔫了,叶子也发黄了"]
    async with UnitOfWork(session_factory(engine), planner) as uow:
        await uow.tickets.add(ticket)
        ticket.submit(NOW - timedelta(minutes=15), "medium", [])
        await uow.tickets.save(ticket)
        await uow.commit()
    assert ticket.id is not None
    return ticket.id


def acting(desk: Desk, clock: Clock, dies: asyncio.Event | None = None) -> Act:
    """What a passed deadline means; `dies`: the instance dies once it has acted, before its
    commit (its transaction open, as a kill -9 leaves it until the connection drops)."""

    async def act(uow: UnitOfWork, ticket_id: int, kind: DeadlineKind) -> None:
        await clock_cases.deadline_passed(uow, desk, ticket_id, kind, clock())
        if dies is not None:
            await uow.session.flush()  # the claim and the page are written, uncommitted
            dies.set()
            await asyncio.Event().wait()

    return act


async def test_two_schedulers_fire_a_deadline_once(engine: AsyncEngine) -> None:
    """Two instances' schedulers find one deadline due at the same moment and both hand it on:
    the page comes once, and the deadline is not fired again."""
    desk, clock = fakes.desk(), Clock(NOW)
    ticket_id = await late_ticket(engine, "7001")
    lanes = [Lanes(), Lanes()]
    both = [scheduler(engine, clock, acting(desk, clock), lane.submit) for lane in lanes]
    await asyncio.gather(*(s.tick() for s in both))
    await asyncio.wait_for(asyncio.gather(*(lane.idle() for lane in lanes)), timeout=WAIT)
    fired, pages = await first_response(engine, ticket_id)
    assert fired is not None and pages == 1
    await asyncio.gather(*(s.tick() for s in both))
    await asyncio.wait_for(asyncio.gather(*(lane.idle() for lane in lanes)), timeout=WAIT)
    assert await first_response(engine, ticket_id) == (fired, 1)


async def test_a_deadline_claimed_by_an_instance_that_died_fires_on_the_other(
    engine: AsyncEngine,
) -> None:
    """One instance claims a deadline and dies before its commit; the other, meanwhile, finds
    the deadline still due and waits on it; once the dead one's transaction is rolled back (its
    connection gone), the other fires it, once."""
    desk, clock, died = fakes.desk(), Clock(NOW), asyncio.Event()
    ticket_id = await late_ticket(engine, "7002")
    jobs: list[asyncio.Task[None]] = []

    def submit(lane: Hashable, job: Callable[[], Awaitable[None]]) -> None:
        jobs.append(asyncio.ensure_future(job()))

    await scheduler(engine, clock, acting(desk, clock, died), submit).tick()
    await asyncio.wait_for(died.wait(), timeout=WAIT)
    lanes = Lanes()
    alive = scheduler(engine, clock, acting(desk, clock), lanes.submit)
    await alive.tick()  # its action waits for the dead instance's transaction
    for job in jobs:
        job.cancel()
    await asyncio.gather(*jobs, return_exceptions=True)
    await asyncio.wait_for(lanes.idle(), timeout=WAIT)
    fired, pages = await first_response(engine, ticket_id)
    assert fired is not None and pages == 1
    await alive.tick()
    await asyncio.wait_for(lanes.idle(), timeout=WAIT)
    assert await first_response(engine, ticket_id) == (fired, 1)


# -- WeCom: an account's cursor is pulled by one instance at a time -----------------------------


class Submitted:
    """The lanes of an instance that pulls: what it handed on to be handled, by customer."""

    def __init__(self, handed: list[str]) -> None:
        self.handed = handed

    def submit(self, key: Hashable, job: Callable[[], Awaitable[None]]) -> None:
        self.handed.append(str(key))


async def test_two_instances_pulling_one_wecom_account_take_turns_and_store_each_message_once(
    engine: AsyncEngine,
) -> None:
    """WeCom calls back both instances at once, again and again, while customers write: the
    account's sync_msg never runs twice at once, and each message is stored and handled once,
    whichever instance pulled it."""
    from bot.channels.wecom.adapter import WeCom
    from bot.standin.wecom import WeComStandIn

    standin = WeComStandIn()
    standin.require_token = False  # the test calls the pull as a callback would
    standin.page_size = 2  # many pages: pulls that overlap, were they let
    at_once, most = 0, 0
    sync_msg = standin._sync_msg

    async def watched(*args: Any) -> dict[str, Any]:
        nonlocal at_once, most
        at_once += 1
        most = max(most, at_once)
        try:
            await asyncio.sleep(0.005)  # WeCom takes a moment to answer
            return await sync_msg(*args)
        finally:
            at_once -= 1

    standin._sync_msg = watched  # type: ignore[method-assign]
    await standin.start()
    kf = standin.customer_service_settings()
    settings = load_settings(**kf, bot_token="123456:standin", _env_file=None)
    factory = session_factory(engine)

    def new_uow(*, read_only: bool = False) -> UnitOfWork:
        return UnitOfWork(factory, read_only=read_only)

    async def no_files(attachment: Attachment) -> bytes:
        raise LookupError(attachment.ref)

    handed: list[str] = []
    both = [WeCom(settings, no_files), WeCom(settings, no_files)]
    for number, adapter in enumerate(both):
        claims = Claims(f"instance{number}", ttl=15.0, look_every=0.2)
        lanes = cast(Lanes, Submitted(handed))
        adapter.connect(fakes.desk(), new_uow, lanes, Clock(NOW), claims=claims)
    people = [standin.customer(f"wm{n}") for n in range(LANES)]
    try:
        for person in people:
            person.say("花蔫了")
            person.say("订单号 20261130")
            for adapter in both:  # the callback reaches both instances
                adapter.pull(standin.open_kfid, "")
        pulling = [task for adapter in both for task in adapter._pulling.values()]
        await asyncio.wait_for(asyncio.gather(*pulling), timeout=WAIT)
    finally:
        for adapter in both:
            await adapter.stop()
        await standin.stop()
    async with UnitOfWork(factory, read_only=True) as uow:
        stored = await uow.wecom.pending()
    assert len(stored) == 2 * LANES
    assert sorted(handed) == sorted(f"wecom:wm{n}" for n in range(LANES) for _ in range(2))
    assert most == 1


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
async def test_instances_starting_together_migrate_once_and_both_start(database_url: str) -> None:
    """Two replicas start at the same moment on a new PostgreSQL database: one migrates while
    the other waits, then finds the schema current; neither fails."""
    import os
    import sys

    from storage.migrate import head_revision
    from tests.conftest import ROOT

    env = {**os.environ, "DATABASE_URL": database_url, "PYTHONPATH": str(ROOT)}
    replicas = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            "import os; from storage.migrate import migrate; migrate(os.environ['DATABASE_URL'])",
            env=env,
            stderr=asyncio.subprocess.PIPE,
        )
        for _ in range(2)
    ]
    for replica in replicas:
        _, errors = await asyncio.wait_for(replica.communicate(), timeout=120)
        assert replica.returncode == 0, errors.decode()
    engine = create_engine(database_url)
    try:
        async with engine.connect() as connection:
            version = await connection.scalar(text("SELECT version_num FROM alembic_version"))
    finally:
        await engine.dispose()
    assert version == head_revision()
