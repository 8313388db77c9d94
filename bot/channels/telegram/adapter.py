"""The Telegram adapter as the composition root sees it: the bot, its limiter, the staff group,
the customers' chats, the router and the durable poller, built and started together."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import ssl
from collections.abc import Callable
from datetime import datetime
from typing import Any

import httpx
from telegram import Bot, BotCommand
from telegram.error import NetworkError, TelegramError, TimedOut
from telegram.request import HTTPXRequest

from bot.channels.telegram.limiter import Limiter
from bot.channels.telegram.poller import ALLOWED_UPDATES, DurablePoller, Lock
from bot.channels.telegram.routes import Managers, Router
from bot.channels.telegram.sender import Api, CustomerChats, Digest, StaffGroup
from bot.config import Settings
from bot.lanes import Lanes
from bot.metrics import Metrics
from bot.shared import Shared
from handlers import common
from handlers.context import Desk
from storage.uow import NewUnitOfWork

logger = logging.getLogger(__name__)

COMMANDS = [
    ("start", "投诉 / file a complaint"),
    ("cancel", "取消 / cancel"),
    ("whoami", "ids for setup"),
]


class CountedRequest(HTTPXRequest):
    """python-telegram-bot's HTTP client, counting every error answer from the Bot API by its
    HTTP status (429, 400, 403, 5xx...), and the calls that got none ("network", "timeout"):
    the one place every call passes, whoever makes it and however its error is handled."""

    def __init__(self, metrics: Metrics, **kwargs: Any) -> None:
        super().__init__(httpx_kwargs={"verify": tls()}, **kwargs)
        self.metrics = metrics

    async def do_request(self, *args: Any, **kwargs: Any) -> tuple[int, bytes]:
        try:
            code, payload = await super().do_request(*args, **kwargs)
        except TimedOut:
            self.metrics.messenger_error("telegram", "timeout")
            raise
        except NetworkError:
            self.metrics.messenger_error("telegram", "network")
            raise
        if code >= 400:
            self.metrics.messenger_error("telegram", code)
        return code, payload


@functools.cache
def tls() -> ssl.SSLContext:
    """One TLS context for every client that talks to Telegram: httpx would load the CA bundle
    for each (some 60 ms of a start, twice per bot); a context is safe to share."""
    return httpx.create_ssl_context()


def telegram_bot(settings: Settings, metrics: Metrics | None = None) -> Bot:
    base = settings.telegram_api_url.rstrip("/")
    metrics = metrics or Metrics()
    return Bot(
        settings.bot_token.get_secret_value() if settings.bot_token else "",
        base_url=f"{base}/bot",
        base_file_url=f"{base}/file/bot",
        # a few connections serve Telegram's 30 messages a second; many make httpx's pool slow
        request=CountedRequest(metrics, connection_pool_size=16, pool_timeout=60.0),
        get_updates_request=CountedRequest(metrics, connection_pool_size=1, read_timeout=45.0),
    )


class Telegram:
    """Built in two steps: `Telegram(settings)` (what the desk needs to know: the managers, the
    group's limit), then `connect(...)` once the desk exists."""

    def __init__(
        self, settings: Settings, shared: Shared | None = None, metrics: Metrics | None = None
    ) -> None:
        """`shared`: what several instances share (their rate windows), where there are."""
        self.settings = settings
        self.metrics = metrics or Metrics()
        self.bot = telegram_bot(settings, self.metrics)
        self.limiter = Limiter(
            global_rate=settings.rate_global,
            private_rate=settings.rate_per_chat,
            private_burst=settings.rate_chat_burst,
            group_per_minute=settings.rate_group_per_minute,
            windows=shared.windows if shared is not None else None,
        )
        self.api = Api(self.bot, self.limiter)
        self.managers = Managers(
            self.bot, settings.manager_ids, settings.staff_chat_id, include_admins=False
        )
        self.customers = CustomerChats(self.api)
        self._commands: asyncio.Task[None] | None = None

    def ticket_link(self, reference: str) -> str | None:
        """A link that opens a ticket's card for staff (in a private chat with the bot)."""
        digest = getattr(self, "digest", None)
        username = digest.bot_username if digest is not None else None
        return f"https://t.me/{username}?start={reference}" if username else None

    def connect(
        self,
        desk: Desk,
        new_uow: NewUnitOfWork,
        lanes: Lanes,
        clock: Callable[[], datetime],
        staff_group: bool = True,
        lock: Lock | None = None,
    ) -> None:
        """`staff_group`: False where staff work elsewhere (WeCom): Telegram serves customers.
        `lock`: the instances' shared locks (webhook mode, several instances)."""
        settings = self.settings
        self.staff_group = staff_group
        self.managers.include_admins = desk.policy.managers_include_group_admins
        language = settings.default_language
        self.staff_room = StaffGroup(
            self.api,
            settings.staff_chat_id or 0,
            desk.render,
            language,
            card_of=lambda ticket: common.card(desk, ticket),
            describe=lambda ticket: (
                common.category_label(desk, ticket, language),
                common.severity_label(desk, ticket, language),
            ),
        )
        self.digest = Digest(self.staff_room, self.limiter)
        self.staff_room.digest = self.digest
        self.router = Router(
            self.bot,
            desk,
            settings.staff_chat_id if staff_group else None,
            self.managers,
            language,
            clock,
            forum=lambda: self.staff_room.forum,
            new_topics=self.staff_room.topics,
            staff_elsewhere=not staff_group,
        )
        self.poller = DurablePoller(
            self.bot,
            self.router,
            new_uow,
            lanes,
            desk,
            clock,
            language,
            webhook=settings.webhook_url is not None,
            lock=lock,
            metrics=self.metrics,
        )
        self.webhook = None
        if settings.webhook_url is not None and settings.webhook_secret is not None:
            from bot.channels.telegram.webhook import Webhook

            poller = self.poller
            self.webhook = Webhook(
                settings.webhook_path or "/",
                settings.webhook_secret.get_secret_value(),
                poller,
                accepting=lambda: poller.ready.is_set() and not poller.stopping,
            )

    async def start(self) -> None:
        """Connect to the Bot API, look at the staff group, and recover the inbox."""
        bot = self.bot
        await bot.initialize()
        self.poller.ready.set()  # the webhook's updates can be read from now
        me = bot.bot
        self.digest.bot_username = me.username
        if not self.staff_group:
            logger.info("Desk started as @%s for customers; staff work in WeCom", me.username)
        elif self.settings.staff_chat_id is None:
            logger.warning(
                "Set-up mode: STAFF_CHAT_ID is not set. Add @%s to your staff group as an "
                "administrator (it will say the line to put in .env), or send /whoami there.",
                me.username,
            )
        else:
            logger.info(
                "Desk started as @%s; staff group %s", me.username, self.settings.staff_chat_id
            )
            await self.staff_room.detect_forum()
        if self.webhook is not None:
            await self._set_webhook()
        else:  # long polling: a webhook left from before would keep the updates from us
            with contextlib.suppress(TelegramError):
                await bot.delete_webhook(drop_pending_updates=False)
        with contextlib.suppress(TelegramError):
            await bot.set_my_commands([BotCommand(name, text) for name, text in COMMANDS])
        await self.poller.recover()

    async def _set_webhook(self) -> None:
        """Each instance says the same URL and secret at start (the updates stored meanwhile
        are kept by Telegram); none ever deletes it on stopping: that would cut off the
        others."""
        settings = self.settings
        assert settings.webhook_url is not None and settings.webhook_secret is not None
        await self.bot.set_webhook(
            settings.webhook_url,
            secret_token=settings.webhook_secret.get_secret_value(),
            allowed_updates=ALLOWED_UPDATES,
            max_connections=40,
        )
        logger.info("Telegram posts updates to %s", settings.webhook_url)

    async def _no_webhook(self) -> None:
        with contextlib.suppress(TelegramError):
            await self.bot.delete_webhook(drop_pending_updates=False)

    async def _set_commands(self) -> None:
        with contextlib.suppress(TelegramError):
            await self.bot.set_my_commands([BotCommand(name, text) for name, text in COMMANDS])

    async def stop(self) -> None:
        if self._commands is not None:
            await asyncio.gather(self._commands, return_exceptions=True)
        await self.digest.stop()
        with contextlib.suppress(TimeoutError):  # a stop ends in time, Redis or not
            await asyncio.wait_for(self.limiter.settle(), timeout=2)

    async def shutdown(self) -> None:
        await self.bot.shutdown()
