"""Wiring: the bot, the dispatcher with its context and middlewares, the durable poller."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aiogram import Bot, Dispatcher
from aiogram.client.default import DefaultBotProperties
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.enums import ParseMode
from aiogram.exceptions import TelegramAPIError
from aiogram.types import BotCommand
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from bot.albums import Debouncer
from bot.channels.telegram import TelegramDesk
from bot.clockwork import Clockwork
from bot.config import Settings
from bot.domain.clock import Deadline, plan
from bot.domain.tickets import Ticket
from bot.greeter import Greeter
from bot.inbox import DurablePoller, Lanes
from bot.middlewares import Managers, RoleMiddleware, UnitOfWorkMiddleware
from bot.outbox import Limiter
from bot.policy import Policy
from bot.render import make_renderer
from bot.retry import RetryRequests
from bot.scheduler import Scheduler
from handlers import get_routers
from storage.db import create_engine, session_factory
from storage.fsm import SqlStorage
from storage.uow import UnitOfWork, commit_current

logger = logging.getLogger(__name__)


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Desk:
    """The running desk: what `python -m bot` starts and the demo drives."""

    settings: Settings
    policy: Policy
    bot: Bot
    dispatcher: Dispatcher
    engine: AsyncEngine
    factory: async_sessionmaker[AsyncSession]
    poller: DurablePoller
    lanes: Lanes
    desk: TelegramDesk
    albums: Debouncer
    scheduler: Scheduler
    new_uow: Callable[[], UnitOfWork]


def build(settings: Settings, policy: Policy, clock: Callable[[], datetime] = utc_now) -> Desk:
    session = AiohttpSession(api=TelegramAPIServer.from_base(settings.telegram_api_url))
    limiter = Limiter(
        global_rate=settings.rate_global,
        private_rate=settings.rate_per_chat,
        private_burst=settings.rate_chat_burst,
        group_per_minute=settings.rate_group_per_minute,
    )
    session.middleware(RetryRequests(limiter=limiter, before_wait=commit_current))
    bot = Bot(
        token=settings.bot_token.get_secret_value(),
        session=session,
        default=DefaultBotProperties(parse_mode=ParseMode.HTML, link_preview_is_disabled=True),
    )
    engine = create_engine(settings.database_url)
    factory = session_factory(engine)
    sla_policy = settings.sla()

    def planner(ticket: Ticket) -> list[Deadline]:
        return plan(ticket, sla_policy, policy.hours)

    def new_uow() -> UnitOfWork:
        return UnitOfWork(factory, planner)

    render = make_renderer(policy.timezone)
    lanes = Lanes()
    albums = Debouncer(settings.album_window.total_seconds(), enqueue=lanes.submit)
    desk = TelegramDesk(
        bot,
        settings.staff_chat_id,
        policy,
        render,
        settings.default_language,
        clock,
        sla_policy,
        limiter=limiter,
        new_uow=new_uow,
    )
    managers = Managers(
        settings.manager_ids, settings.staff_chat_id, policy.managers_include_group_admins
    )
    fsm = SqlStorage(factory)
    clockwork = Clockwork(bot, desk, policy, managers, fsm, new_uow, clock)
    scheduler = Scheduler(new_uow, clock, clockwork.fire, lanes.submit, clockwork.lane_of)
    sla: dict[str, Any] = {
        "first_response": settings.sla_first_response,
        "resolution": settings.sla_resolution,
    }
    dispatcher = Dispatcher(
        storage=fsm,
        settings=settings,
        policy=policy,
        render=render,
        clock=clock,
        desk=desk,
        albums=albums,
        new_uow=new_uow,
        managers=managers,
        clockwork=clockwork,
        sla=sla,
    )
    dispatcher.update.outer_middleware(
        UnitOfWorkMiddleware(factory, clock, planner, on_commit=scheduler.poke)
    )
    dispatcher.update.outer_middleware(
        RoleMiddleware(settings.staff_chat_id, managers, settings.default_language)
    )
    dispatcher.include_routers(*get_routers())
    greeter = Greeter(bot, policy, render, settings.default_language, clock)
    poller = DurablePoller(bot, dispatcher, factory, lanes, clock, greeter=greeter)
    return Desk(
        settings,
        policy,
        bot,
        dispatcher,
        engine,
        factory,
        poller,
        lanes,
        desk,
        albums,
        scheduler,
        new_uow,
    )


async def catch_up(app: Desk) -> None:
    """What the staff group should have but did not get before the bot stopped: cards of
    submitted tickets, and customer messages not yet shown."""
    async with app.new_uow() as uow:
        pending = await uow.messages.pending_relay()
        ticket_ids = set(await uow.tickets.without_card()) | {m.ticket_id for m in pending}
    for ticket_id in sorted(ticket_ids):
        async with app.new_uow() as uow:
            ticket = await uow.tickets.get(ticket_id)
            if ticket is None or ticket.status.value in ("intake", "cancelled"):
                continue
            try:
                if ticket.card_message_id is None:  # many at once: a digest, cards after
                    await app.desk.announce(uow, ticket)
                else:
                    await app.desk.relay_pending(uow, ticket)
                await uow.commit()
            except TelegramAPIError as exc:
                logger.error("%s: staff group not reached: %s", ticket.reference, exc)


async def serve(app: Desk) -> None:
    """Run until SIGINT/SIGTERM: recover, then poll; on stop, finish what is in hand."""
    bot = app.bot
    me = await bot.get_me()
    app.desk.bot_username = me.username
    logger.info("Desk started as @%s; staff group %s", me.username, app.settings.staff_chat_id)
    await bot.delete_webhook(drop_pending_updates=False)
    await app.desk.detect_forum()
    with contextlib.suppress(Exception):
        await bot.set_my_commands(
            [
                BotCommand(command="start", description="投诉 / file a complaint"),
                BotCommand(command="cancel", description="取消 / cancel"),
                BotCommand(command="whoami", description="ids for setup"),
            ]
        )
    if app.poller.greeter is not None:
        async with app.new_uow() as uow:
            app.poller.greeter.known.update(await uow.tickets.customer_ids("telegram"))
    await app.poller.recover()
    # the group's limit may make this take minutes: customers are answered meanwhile
    catching_up = asyncio.create_task(catch_up(app))

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, app.poller.stop)
    clock_task = asyncio.create_task(app.scheduler.run())
    try:
        await app.poller.run()
    finally:
        app.scheduler.stop()
        catching_up.cancel()  # what is left is caught up at the next start
        await asyncio.gather(catching_up, return_exceptions=True)
        await clock_task
        await asyncio.wait_for(app.lanes.idle(), timeout=30)
        await app.desk.stop()
        await bot.session.close()
        await app.engine.dispose()
        logger.info("Desk stopped")
