"""Wiring: the one place where the desk's parts are built and put together (the composition
root). `build` makes them; `serve` runs them until SIGINT/SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import AsyncEngine

from bot.channels.base import CustomerChannel
from bot.channels.telegram.adapter import Telegram
from bot.config import Settings
from bot.domain.clock import Deadline, DeadlineKind, plan, weekly_due
from bot.domain.messages import Attachment
from bot.domain.orders import Order
from bot.domain.tickets import Ticket
from bot.lanes import Lanes
from bot.policy import Policy
from bot.render import make_renderer
from bot.scheduler import Scheduler
from bot.sender import Sender
from handlers import clock as clock_cases
from handlers import manager as manager_cases
from handlers.context import Desk
from storage.db import create_engine, session_factory
from storage.uow import NewUnitOfWork, UnitOfWork

if TYPE_CHECKING:
    from bot.channels.wecom.adapter import WeCom
    from bot.channels.wecom.robot import GroupRobot

logger = logging.getLogger(__name__)


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class App:
    """The running desk: what `python -m bot` starts and the demo and tests drive."""

    settings: Settings
    policy: Policy
    desk: Desk
    telegram: Telegram
    engine: AsyncEngine
    lanes: Lanes
    sender: Sender
    scheduler: Scheduler
    new_uow: NewUnitOfWork
    clock: Callable[[], datetime]
    wecom: WeCom | None = None  # WeChat customers, when the WeCom settings are given
    mirror: GroupRobot | None = None  # a WeCom group that sees new cards and alerts too

    @property
    def poller(self) -> Any:
        return self.telegram.poller


def build(settings: Settings, policy: Policy, clock: Callable[[], datetime] = utc_now) -> App:
    telegram = Telegram(settings)
    engine = create_engine(settings.database_url, settings.database_busy_timeout.total_seconds())
    factory = session_factory(engine)
    sla = settings.sla()
    desk = Desk(
        policy=policy,
        render=make_renderer(policy.timezone),
        sla=sla,
        staff_language=settings.default_language,
        managers=telegram.managers.people,
        album_window=settings.album_window,
        group_per_minute=telegram.limiter.group_per_minute,
        order_lookup=_order_lookup(policy),
        ticket_link=telegram.ticket_link,
    )

    def planner(ticket: Ticket) -> list[Deadline]:
        return plan(ticket, sla, policy.hours)

    wake: list[Callable[[], None]] = []

    def committed() -> None:
        for poke in wake:
            poke()

    def new_uow(*, read_only: bool = False) -> UnitOfWork:
        return UnitOfWork(factory, planner, on_commit=committed, read_only=read_only)

    async def desk_file(attachment: Attachment) -> bytes:
        """A file the desk made (a chart, an export), for the messenger to upload."""
        async with new_uow() as uow:
            found = await uow.files.get(int(attachment.ref))
        if found is None:
            raise LookupError(f"file {attachment.ref} is gone")
        return found[1]

    lanes = Lanes()
    telegram.connect(desk, new_uow, lanes, clock)
    telegram.api.fetchers["desk"] = desk_file
    customers: dict[str, CustomerChannel] = {"telegram": telegram.customers}
    wecom = None
    if settings.wecom:  # imported only then: aiohttp and cryptography stay out otherwise
        from bot.channels.wecom.adapter import WeCom

        wecom = WeCom(settings, fetch_telegram=telegram.api.download)
        wecom.connect(desk, new_uow, lanes, clock)
        telegram.api.fetchers["wecom"] = wecom.fetch  # a WeChat photo, for the staff room
        customers["wecom"] = wecom.customers
    mirror = None
    if settings.wecom_group_webhook is not None:  # new cards and alerts, copied to WeCom too
        from bot.channels.wecom.robot import GroupRobot

        def digest_header(count: int) -> str:
            return desk.render(desk.staff_language, "staff/mirror_digest.txt", count=count)

        mirror = GroupRobot(settings.wecom_group_webhook.get_secret_value(), digest_header)
    sender = Sender(new_uow, desk, telegram.staff_room, customers, clock, mirror)

    async def fire(ticket_id: int, kind: DeadlineKind) -> None:
        async with new_uow() as uow:
            await clock_cases.deadline_passed(uow, desk, ticket_id, kind, clock())
            await uow.commit()

    async def lane_of(ticket_id: int) -> Hashable:
        async with new_uow() as uow:
            ticket = await uow.tickets.get(ticket_id)
        return f"{ticket.channel}:{ticket.customer_id}" if ticket else f"ticket:{ticket_id}"

    scheduler = Scheduler(new_uow, clock, fire, lanes.submit, lane_of)
    wake.extend([sender.poke, scheduler.poke])
    return App(
        settings,
        policy,
        desk,
        telegram,
        engine,
        lanes,
        sender,
        scheduler,
        new_uow,
        clock,
        wecom,
        mirror,
    )


def _order_lookup(policy: Policy) -> Callable[[str], Awaitable[Order | None]] | None:
    endpoint = policy.orders.endpoint
    if endpoint is None:
        return None

    async def lookup(order_number: str) -> Order | None:
        from bot.orders import fetch_order

        return await fetch_order(endpoint, order_number)

    return lookup


async def weekly_reports(app: App, stopped: asyncio.Event) -> None:
    """The weekly report, when it is due (once a week; a restart after the hour sends it if it
    has not gone yet)."""
    schedule = app.policy.weekly_report
    if schedule is None:
        return
    weekday, at = schedule
    while not stopped.is_set():
        now = app.clock()
        due = weekly_due(now, app.policy.timezone, weekday, at)
        if now >= due:
            try:
                async with app.new_uow() as uow:
                    if await manager_cases.weekly_report(uow, app.desk, now):
                        await uow.commit()
                        logger.info("Weekly report sent")
            except Exception:
                logger.exception("The weekly report failed; trying again in an hour")
                due = now + timedelta(hours=1) - timedelta(days=7)
            due += timedelta(days=7)
        wait = min((due - app.clock()).total_seconds(), 3600.0)
        try:
            await asyncio.wait_for(stopped.wait(), timeout=max(wait, 1.0))
        except TimeoutError:
            pass


async def start(app: App) -> None:
    """Catch up on what a stop left, connect the messengers and recover their inboxes (the
    poller is `serve`'s)."""
    async with app.new_uow() as uow:
        caught = await clock_cases.catch_up(uow, app.desk)
        await uow.commit()
    if caught:
        logger.info("Catching up: %s tickets' cards", caught)
    await app.telegram.start()
    if app.wecom is not None:
        await app.wecom.start()


async def serve(app: App, signals: bool = True) -> None:
    """Run until SIGINT/SIGTERM (or `app.poller.stop()`): recover, then poll; on stop, finish
    what is in hand. `signals`: False where the caller owns them (tests, the demo)."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM) if signals else ():
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, app.poller.stop)
    try:
        await start(app)
    except BaseException:
        if app.wecom is not None:
            await app.wecom.stop()
        await app.telegram.shutdown()
        await app.engine.dispose()
        raise
    sending = asyncio.create_task(app.sender.run())
    ticking = asyncio.create_task(app.scheduler.run())
    stopped = asyncio.Event()
    reporting = asyncio.create_task(weekly_reports(app, stopped))
    try:
        await app.poller.run()
    finally:
        app.scheduler.stop()
        await ticking
        stopped.set()
        await reporting
        try:  # what is left is handled at the next start (it is in the inbox)
            await asyncio.wait_for(app.lanes.idle(), timeout=30)
        except TimeoutError:
            logger.warning("Stopped with updates still being handled")
        await app.sender.stop()
        await sending
        if app.mirror is not None:
            await app.mirror.close()
        if app.wecom is not None:
            await app.wecom.stop()
        await app.telegram.stop()
        await app.telegram.shutdown()
        await app.engine.dispose()
        for sig in (signal.SIGINT, signal.SIGTERM) if signals else ():
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(sig)
        logger.info("Desk stopped")
