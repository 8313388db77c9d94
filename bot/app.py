"""Wiring: the one place where the desk's parts are built and put together (the composition
root). `build` makes them; `serve` runs them until SIGINT/SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import uuid
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import AsyncEngine

from bot.channels.base import CustomerChannel, StaffRoom
from bot.channels.telegram.adapter import Telegram
from bot.channels.telegram.webapp import MiniAppSignIn
from bot.config import Settings
from bot.dashboard import Dashboard, SessionTokens, SignIn, derive_key
from bot.domain.clock import Deadline, DeadlineKind, plan, weekly_due
from bot.domain.messages import Attachment
from bot.domain.orders import Order
from bot.domain.tickets import Ticket
from bot.lanes import Lanes
from bot.leases import Claims
from bot.metrics import Health, Metrics
from bot.metrics import routes as health_and_metrics
from bot.policy import Policy
from bot.render import make_renderer
from bot.scheduler import Scheduler
from bot.sender import Sender
from bot.shared import RedisShared, Shared, build_shared
from bot.web import HttpServer
from handlers import clock as clock_cases
from handlers import manager as manager_cases
from handlers.context import Desk, no_link, no_managers
from storage.db import create_engine, ping, session_factory
from storage.uow import NewUnitOfWork, UnitOfWork

if TYPE_CHECKING:
    from bot.channels.wecom.adapter import WeCom
    from bot.channels.wecom.robot import GroupRobot
    from bot.channels.wecom.staff import WeComStaff

logger = logging.getLogger(__name__)


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class App:
    """The running desk: what `python -m bot` starts and the demo and tests drive."""

    settings: Settings
    policy: Policy
    desk: Desk
    telegram: Telegram | None  # None: no BOT_TOKEN (an all-WeCom shop)
    engine: AsyncEngine
    lanes: Lanes
    sender: Sender
    scheduler: Scheduler
    new_uow: NewUnitOfWork
    clock: Callable[[], datetime]
    wecom: WeCom | None = None  # WeChat customers, when the WeCom settings are given
    mirror: GroupRobot | None = None  # a WeCom group that sees new cards and alerts too
    wecom_staff: WeComStaff | None = None  # the staff room in WeCom (STAFF_ROOM=wecom)
    http: HttpServer | None = None  # the instance's server: webhook, callbacks, health, metrics
    stopping: asyncio.Event = field(default_factory=asyncio.Event)  # no poller: `serve` waits
    started: asyncio.Event = field(default_factory=asyncio.Event)  # recovered, callbacks served
    shared: Shared | None = None  # what the instances share (Redis, where REDIS_URL is set)
    metrics: Metrics = field(default_factory=Metrics)  # what GET /metrics serves

    @property
    def poller(self) -> Any:
        return self.telegram.poller if self.telegram is not None else None

    def stop(self) -> None:
        """Stop `serve`: the poller's end, or (with no Telegram) the stop event. /healthz says
        503 from now on."""
        if self.http is not None:
            self.http.drain()
        if self.telegram is not None:
            self.telegram.poller.stop()
        self.stopping.set()

    def callback_port(self) -> int | None:
        """Where WeCom's callbacks come (the customer service's and the app's): the instance's
        HTTP server."""
        return self.http.port if self.http is not None else None


def build(settings: Settings, policy: Policy, clock: Callable[[], datetime] = utc_now) -> App:
    shared = build_shared(settings)
    metrics = Metrics(settings.instance)
    telegram = Telegram(settings, shared=shared, metrics=metrics) if settings.telegram else None
    engine = create_engine(settings.database_url, settings.database_busy_timeout.total_seconds())
    factory = session_factory(engine)
    sla = settings.sla()
    fetchers: dict[str, Callable[[Attachment], Awaitable[bytes]]] = {}

    async def fetch(attachment: Attachment) -> bytes:
        """A file's bytes from the channel that holds it (for another channel to upload)."""
        found = fetchers.get(attachment.channel)
        if found is None:
            raise LookupError(f"no channel {attachment.channel} for a file")
        return await found(attachment)

    wecom_staff = None
    if settings.staff_room == "wecom":  # imported only then
        from bot.channels.wecom.staff import WeComStaff

        wecom_staff = WeComStaff(settings, fetch, shared=shared, metrics=metrics)
    managers = wecom_staff.people if wecom_staff is not None else no_managers
    if telegram is not None and wecom_staff is None:
        managers = telegram.managers.people
    desk = Desk(
        policy=policy,
        render=make_renderer(policy.timezone),
        sla=sla,
        staff_language=settings.default_language,
        managers=managers,
        album_window=settings.album_window,
        group_per_minute=(
            telegram.limiter.group_per_minute if telegram is not None else Desk.group_per_minute
        ),
        order_lookup=_order_lookup(policy),
        ticket_link=(
            telegram.ticket_link if telegram is not None and wecom_staff is None else no_link
        ),
        how_to_answer=(
            "staff/how_to_answer_app.html"
            if wecom_staff is not None
            else "staff/how_to_answer_group.html"
        ),
        dashboard_url=f"{settings.public_url}/dashboard" if settings.public_url else None,
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
        async with new_uow(read_only=True) as uow:
            found = await uow.files.get(int(attachment.ref))
        if found is None:
            raise LookupError(f"file {attachment.ref} is gone")
        return found[1]

    fetchers["desk"] = desk_file
    lanes = Lanes()
    customers: dict[str, CustomerChannel] = {}
    if telegram is not None:
        telegram.connect(
            desk,
            new_uow,
            lanes,
            clock,
            staff_group=wecom_staff is None,
            lock=lambda name: shared.lock(name, wait=LOCK_WAIT),
        )
        telegram.api.fetchers["desk"] = desk_file
        fetchers["telegram"] = telegram.api.download
        customers["telegram"] = telegram.customers
    # several instances share the outbox and the WeCom pull: each claims what it works on
    # the holder of claimed work: unique to this process even where replicas share one
    # INSTANCE_NAME (the same .env), which still names it in the metrics
    holder = f"{settings.instance}:{uuid.uuid4().hex[:8]}"
    claims = Claims(holder) if settings.redis_url is not None else None
    wecom = None
    if settings.wecom:  # imported only then: aiohttp and cryptography stay out otherwise
        from bot.channels.wecom.adapter import WeCom

        wecom = WeCom(settings, fetch_telegram=fetch, metrics=metrics)
        wecom.connect(
            desk,
            new_uow,
            lanes,
            clock,
            claims=claims,
            lock=(lambda name: shared.lock(name, wait=LOCK_WAIT)) if claims else None,
        )
        fetchers["wecom"] = wecom.fetch
        if telegram is not None:
            telegram.api.fetchers["wecom"] = wecom.fetch  # a WeChat photo, for the staff room
        customers["wecom"] = wecom.customers
    if wecom_staff is not None:
        wecom_staff.connect(desk, new_uow, lanes, clock, several=claims is not None)
        fetchers["wecom_app"] = wecom_staff.fetch_media  # a member's photo, for a customer
        if telegram is not None:
            telegram.api.fetchers["wecom_app"] = wecom_staff.fetch_media
    mirror = None
    if settings.wecom_group_webhook is not None:  # new cards and alerts, copied to WeCom too
        from bot.channels.wecom.robot import GroupRobot

        def digest_header(count: int) -> str:
            return desk.render(desk.staff_language, "staff/mirror_digest.txt", count=count)

        mirror = GroupRobot(settings.wecom_group_webhook.get_secret_value(), digest_header)
    staff_room: StaffRoom
    if wecom_staff is not None:
        staff_room = wecom_staff
    else:
        assert telegram is not None
        staff_room = telegram.staff_room
    sender = Sender(
        new_uow, desk, staff_room, customers, clock, mirror, claims=claims, metrics=metrics
    )

    async def act(uow: UnitOfWork, ticket_id: int, kind: DeadlineKind) -> None:
        """A passed deadline, in the unit of work that claimed it."""
        await clock_cases.deadline_passed(uow, desk, ticket_id, kind, clock())

    async def lane_of(ticket_id: int) -> Hashable:
        async with new_uow(read_only=True) as uow:
            ticket = await uow.tickets.get(ticket_id)
        return f"{ticket.channel}:{ticket.customer_id}" if ticket else f"ticket:{ticket_id}"

    scheduler = Scheduler(new_uow, clock, act, lanes.submit, lane_of)
    wake.extend([sender.poke, scheduler.poke])
    http = HttpServer(settings.http_host, settings.http_port)
    if telegram is not None and telegram.webhook is not None:
        http.add_routes(telegram.webhook.add_routes)

    async def database_answers() -> None:
        await ping(engine)

    health = Health(
        settings.instance,
        database_answers,
        redis=shared.ping if isinstance(shared, RedisShared) else None,
        stopping=lambda: http.draining,
    )
    http.add_routes(health_and_metrics(metrics, health, new_uow))
    dashboard = _dashboard(settings, desk, new_uow, clock, telegram, wecom_staff)
    if dashboard is not None:
        http.add_routes(dashboard.add_routes)
    if wecom is not None:
        http.add_routes(wecom.add_routes)
    if wecom_staff is not None:
        http.add_routes(wecom_staff.add_routes)
    if settings.wecom_verify_file is not None:  # WeCom checks the domain is the shop's
        from bot.channels.wecom.domain import verify_file_routes

        http.add_routes(verify_file_routes(settings.wecom_verify_file))
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
        wecom_staff,
        http,
        shared=shared,
        metrics=metrics,
    )


def _dashboard(
    settings: Settings,
    desk: Desk,
    new_uow: NewUnitOfWork,
    clock: Callable[[], datetime],
    telegram: Telegram | None,
    wecom_staff: WeComStaff | None,
) -> Dashboard | None:
    """The manager's dashboard, wherever managers work: one sign-in per messenger (the page
    says which with `?via=`), Telegram's Mini App and the WeCom app's web sign-in. Its session
    tokens are signed with a key of their own, derived from the bot's token (or, with no
    Telegram, from the WeCom app's secret)."""
    sign_ins: dict[str, SignIn] = {}
    secret = None
    if telegram is not None and settings.bot_token is not None:
        secret = settings.bot_token.get_secret_value()
        sign_ins["telegram"] = MiniAppSignIn(
            secret, telegram.managers.is_manager, settings.default_language, clock
        )
    if wecom_staff is not None:
        from bot.channels.wecom.signin import WeComSignIn

        def is_manager(userid: str) -> bool:
            actor = wecom_staff.actor(userid)
            return actor is not None and actor.role == "manager"

        sign_ins["wecom"] = WeComSignIn(wecom_staff.client, is_manager, desk.staff_language)
        if secret is None and settings.wecom_app_secret is not None:
            secret = settings.wecom_app_secret.get_secret_value()
    if not sign_ins or secret is None:
        return None
    return Dashboard(desk, new_uow, clock, sign_ins, SessionTokens(derive_key(secret)))


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


LOCK_WAIT = 10.0  # a lane's lock held elsewhere this long: its holder has our update, or the sweep
STOP_HANDLING = 4.0  # on stopping, the updates in hand are finished within this (SIGTERM: 10 s)
MANAGERS_EVERY = 240.0  # the managers' names and the group's administrators, asked again


async def ask_about_managers(app: App) -> None:
    """What Telegram says of the managers (their names, the group's administrators), asked
    outside any unit of work: the desk reads it at once (`Desk.managers`), never waiting on
    Telegram while it holds the database."""
    if app.telegram is None or app.wecom_staff is not None:
        return  # the WeCom app's managers are the settings' userids
    try:
        await app.telegram.managers.refresh()
    except Exception:
        logger.exception("The managers could not be asked about; trying again later")


async def keep_managers_fresh(app: App, stopped: asyncio.Event) -> None:
    """Ask about the managers every few minutes (first at start), until `stopped`."""
    while True:
        try:
            await asyncio.wait_for(stopped.wait(), timeout=MANAGERS_EVERY)
            return
        except TimeoutError:
            await ask_about_managers(app)


async def start(app: App) -> None:
    """Catch up on what a stop left, connect the messengers and recover their inboxes (the
    poller is `serve`'s)."""
    alone = only_one(app.settings)
    if alone:
        logger.warning(alone)
    if app.settings.public_url is None:
        logger.warning(
            "PUBLIC_URL is not set (nor WEBHOOK_URL): /dashboard cannot open the manager's "
            "dashboard; set PUBLIC_URL to this server's public https:// address"
        )
    async with app.new_uow() as uow:
        caught = await clock_cases.catch_up(uow, app.desk)
        await uow.commit()
    if caught:
        logger.info("Catching up: %s tickets' cards", caught)
    await _serve_http(app)  # listening before Telegram is told the webhook's address
    if app.telegram is not None:
        await app.telegram.start()
        try:  # the managers' names for the first mentions; a slow answer does not hold the start
            await asyncio.wait_for(ask_about_managers(app), timeout=10)
        except TimeoutError:
            logger.warning("Telegram did not say who the managers are in time; asking again later")
    if app.wecom is not None:
        await app.wecom.start()
    if app.wecom_staff is not None:
        await app.wecom_staff.start()


async def _serve_http(app: App) -> None:
    """Start the instance's server. Where nothing but health and metrics need it (long
    polling, no WeCom), a port already taken is said in the log, and the desk runs on."""
    if app.http is None:
        return
    try:
        await app.http.start()
    except OSError as exc:
        settings = app.settings
        where = f"{settings.http_host}:{settings.http_port}"
        if (
            settings.webhook_url is not None
            or app.wecom is not None
            or app.wecom_staff is not None
        ):
            raise OSError(f"HTTP_PORT: cannot listen on {where}: {exc.strerror}") from exc
        logger.warning(
            "Cannot listen on %s (%s): /healthz and /metrics are not served; set HTTP_PORT to "
            "a free port",
            where,
            exc.strerror,
        )
        await app.http.stop()
        app.http = None


def only_one(settings: Settings) -> str | None:
    """Why this instance must be the only one, in webhook mode (None: several may run)."""
    if settings.webhook_url is None:
        return None  # long polling: Telegram gives the updates to one poller anyway
    lacking = []
    if settings.database_url.startswith("sqlite"):
        lacking.append("it runs on SQLite (several instances need PostgreSQL)")
    if settings.redis_url is None:
        lacking.append("REDIS_URL is not set (several instances share their limits there)")
    if not lacking:
        return None
    return "This instance must be the only one behind WEBHOOK_URL: " + "; ".join(lacking)


async def serve(app: App, signals: bool = True) -> None:
    """Run until SIGINT/SIGTERM (or `app.stop()`): recover, then poll; on stop, finish
    what is in hand. `signals`: False where the caller owns them (tests, the demo)."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM) if signals else ():
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, app.stop)
    try:
        await start(app)
    except BaseException:
        if app.http is not None:
            await app.http.stop()
        if app.wecom_staff is not None:
            await app.wecom_staff.stop()
        if app.wecom is not None:
            await app.wecom.stop()
        if app.telegram is not None:
            await app.telegram.shutdown()
        if app.shared is not None:
            await app.shared.close()
        await app.engine.dispose()
        raise
    app.started.set()
    sending = asyncio.create_task(app.sender.run())
    ticking = asyncio.create_task(app.scheduler.run())
    stopped = asyncio.Event()
    reporting = asyncio.create_task(weekly_reports(app, stopped))
    asking = asyncio.create_task(keep_managers_fresh(app, stopped))
    try:
        if app.telegram is not None:
            await app.poller.run()
        else:  # no Telegram: WeCom calls back; run until stopped
            await app.stopping.wait()
    finally:
        if app.http is not None:  # however it ends, a load balancer hears it at once
            app.http.drain()
        app.scheduler.stop()
        await ticking
        stopped.set()
        await reporting
        await asking
        try:  # what is left is handled at the next start (it is in the inbox)
            await asyncio.wait_for(app.lanes.idle(), timeout=STOP_HANDLING)
        except TimeoutError:
            logger.warning("Stopped with updates still being handled")
        await app.sender.stop()
        await sending
        if app.mirror is not None:
            await app.mirror.close()
        if app.http is not None:
            await app.http.stop()
        if app.wecom_staff is not None:
            await app.wecom_staff.stop()
        if app.wecom is not None:
            await app.wecom.stop()
        if app.telegram is not None:
            await app.telegram.stop()
            await app.telegram.shutdown()
        if app.shared is not None:
            await app.shared.close()
        await app.engine.dispose()
        for sig in (signal.SIGINT, signal.SIGTERM) if signals else ():
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(sig)
        logger.info("Desk stopped")
