"""The one outgoing path: every send waits for its turn in the flood-control limiter (when
given one); 429 waits `retry_after` (and tightens that window) and sends the same message again;
5xx and network errors are retried with back-off. aiogram raises these but retries nothing.

A send that must wait for its turn first commits the update's transaction so far
(`before_wait`): SQLite has one writer, and a write lock held through a wait of seconds would
make every other chat's handler wait too."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from aiogram import Bot
from aiogram.client.session.middlewares.base import (
    BaseRequestMiddleware,
    NextRequestMiddlewareType,
)
from aiogram.exceptions import (
    RestartingTelegram,
    TelegramNetworkError,
    TelegramRetryAfter,
    TelegramServerError,
)
from aiogram.methods import GetUpdates, TelegramMethod
from aiogram.methods.base import Response, TelegramType

from bot.outbox import Limiter, send_priority

logger = logging.getLogger(__name__)


LIMITED_PREFIXES = ("send", "copyMessage", "forwardMessage", "editMessage", "createForumTopic")


def limited_chat(method: TelegramMethod[object]) -> int | None:
    """The chat a message-sending call counts against (None: not a message)."""
    name = type(method).__name__
    name = name[0].lower() + name[1:]
    chat_id = getattr(method, "chat_id", None)
    if not name.startswith(LIMITED_PREFIXES) or chat_id is None:
        return None
    try:
        return int(chat_id)
    except (TypeError, ValueError):
        return None


class RetryRequests(BaseRequestMiddleware):
    def __init__(
        self,
        attempts: int = 6,
        first_backoff: float = 0.5,
        max_backoff: float = 8.0,
        limiter: Limiter | None = None,
        before_wait: Callable[[], Awaitable[None]] | None = None,
    ):
        self.attempts = attempts
        self.first_backoff = first_backoff
        self.max_backoff = max_backoff
        self.limiter = limiter
        self.before_wait = before_wait

    async def __call__(
        self,
        make_request: NextRequestMiddlewareType[TelegramType],
        bot: Bot,
        method: TelegramMethod[TelegramType],
    ) -> Response[TelegramType]:
        if isinstance(method, GetUpdates):  # the poller has its own loop
            return await make_request(bot, method)
        backoff = self.first_backoff
        chat = limited_chat(method) if self.limiter is not None else None
        for attempt in range(1, self.attempts + 1):
            if chat is not None and self.limiter is not None:
                if self.before_wait is not None and self.limiter.would_wait(chat):
                    await self.before_wait()  # no database lock is held while it waits
                await self.limiter.acquire(chat, send_priority.get())
            try:
                try:
                    return await make_request(bot, method)
                finally:
                    if chat is not None and self.limiter is not None:
                        self.limiter.done(chat)  # it counts from Telegram's answer
            except TelegramRetryAfter as exc:
                if attempt == self.attempts:
                    raise
                logger.info("429 on %s: waiting %ss", type(method).__name__, exc.retry_after)
                if chat is not None and self.limiter is not None:
                    self.limiter.penalize(chat, exc.retry_after)  # the next acquire waits
                else:
                    await asyncio.sleep(exc.retry_after)
            except (TelegramServerError, RestartingTelegram, TelegramNetworkError) as exc:
                if attempt == self.attempts:
                    raise
                logger.info("%s on %s: retry in %.1fs", exc, type(method).__name__, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self.max_backoff)
        raise AssertionError("unreachable")  # pragma: no cover
