"""Durable long polling: each update is written to the inbox before Telegram is told we have
it (the next getUpdates offset), handled from there, and marked handled in the handler's own
transaction. On start, whatever is left is handled first; a repeated update_id is ignored.

Updates of one chat run in order, one at a time; different chats run concurrently. A new
customer's first message is answered by the `Greeter` as soon as it arrives, even before it is
stored; in a burst the whole backlog is taken in (and the newcomers answered) before the
handlers start on it.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Hashable
from datetime import datetime
from typing import Any

from aiogram import Bot, Dispatcher
from aiogram.exceptions import TelegramConflictError, TelegramNetworkError, TelegramServerError
from aiogram.types import Update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.greeter import Greeter
from storage.uow import UnitOfWork

logger = logging.getLogger(__name__)

ALLOWED_UPDATES = ["message", "edited_message", "callback_query", "my_chat_member"]
BATCH = 100  # getUpdates' most
MAX_HELD = 1000  # updates taken in before the handlers get them, in a burst
Job = Callable[[], Awaitable[None]]


def chat_key(update: Update) -> str:
    """The lane an update runs in: its chat (callbacks: the chat of the tapped message)."""
    if update.message:
        return str(update.message.chat.id)
    if update.edited_message:
        return str(update.edited_message.chat.id)
    if update.callback_query:
        query = update.callback_query
        if query.message is not None:
            return str(query.message.chat.id)
        return str(query.from_user.id)
    if update.my_chat_member:
        return str(update.my_chat_member.chat.id)
    return "other"


class Lanes:
    """One queue per chat; each runs its jobs in order, all chats at once (up to a limit)."""

    def __init__(self, concurrency: int = 16) -> None:
        self._queues: dict[Hashable, deque[Job]] = {}
        self._workers: dict[Hashable, asyncio.Task[None]] = {}
        self._slots = asyncio.Semaphore(concurrency)

    def submit(self, key: Hashable, job: Job) -> None:
        self._queues.setdefault(key, deque()).append(job)
        if key not in self._workers:
            self._workers[key] = asyncio.create_task(self._drain(key))

    async def _drain(self, key: Hashable) -> None:
        queue = self._queues[key]
        try:
            while queue:
                job = queue.popleft()
                async with self._slots:
                    try:
                        await job()
                    except Exception:
                        logger.exception("A job in lane %s failed", key)
        finally:
            self._workers.pop(key, None)
            if not queue:
                self._queues.pop(key, None)
            else:  # submitted while we were finishing
                self._workers[key] = asyncio.create_task(self._drain(key))

    @property
    def busy(self) -> int:
        return len(self._workers)

    async def idle(self) -> None:
        while self._workers:
            await asyncio.gather(*list(self._workers.values()), return_exceptions=True)


class DurablePoller:
    def __init__(
        self,
        bot: Bot,
        dispatcher: Dispatcher,
        factory: async_sessionmaker[AsyncSession],
        lanes: Lanes,
        clock: Callable[[], datetime],
        polling_timeout: int = 25,
        greeter: Greeter | None = None,
    ) -> None:
        self.bot = bot
        self.dp = dispatcher
        self.factory = factory
        self.lanes = lanes
        self.clock = clock
        self.polling_timeout = polling_timeout
        self.greeter = greeter
        self._stop = asyncio.Event()

    def stop(self) -> None:
        self._stop.set()

    def _handle(self, raw: str, greeting: asyncio.Task[bool] | None = None) -> Job:
        async def job() -> None:
            greeted = False
            if greeting is not None:
                try:
                    greeted = await greeting
                except Exception:  # the handler answers instead
                    logger.exception("The first answer failed; the handler answers")
            update = Update.model_validate_json(raw, context={"bot": self.bot})
            await self.dp.feed_update(self.bot, update, greeted=greeted)

        return job

    async def recover(self) -> int:
        """Hand on the updates stored before a crash but never handled."""
        async with UnitOfWork(self.factory) as uow:
            rows = [(row.chat_key, row.payload) for row in await uow.inbox.pending()]
        for key, payload in rows:
            if self.greeter is not None and key.lstrip("-").isdigit():
                self.greeter.note(int(key))  # handled the usual way, answered there
            self.lanes.submit(key, self._handle(payload))
        if rows:
            logger.info("Handling %s updates left from before the restart", len(rows))
        return len(rows)

    async def run(self) -> None:
        """Poll until stop() is called."""
        loop = asyncio.create_task(self._loop())
        stopped = asyncio.create_task(self._stop.wait())
        await asyncio.wait({loop, stopped}, return_when=asyncio.FIRST_COMPLETED)
        for task in (loop, stopped):
            task.cancel()
        await asyncio.gather(loop, stopped, return_exceptions=True)
        if loop.done() and not loop.cancelled() and loop.exception():
            raise loop.exception()  # type: ignore[misc]

    async def _loop(self) -> None:
        offset: int | None = None
        backoff = 1.0
        held: list[tuple[str, Job]] = []  # handled once the backlog is in and answered
        try:
            while not self._stop.is_set():
                try:
                    updates = await self.bot.get_updates(
                        offset=offset,
                        timeout=0 if held else self.polling_timeout,
                        limit=BATCH,
                        allowed_updates=ALLOWED_UPDATES,
                        request_timeout=self.polling_timeout + 15,
                    )
                    backoff = 1.0
                except TelegramConflictError:
                    logger.error("Another instance is polling with this BOT_TOKEN; retrying in 5s")
                    await self._sleep(5)
                    continue
                except (TelegramNetworkError, TelegramServerError, OSError) as exc:
                    logger.warning("getUpdates failed (%s); retrying in %.0fs", exc, backoff)
                    await self._sleep(backoff)
                    backoff = min(backoff * 2, 30)
                    continue
                if updates:
                    # newcomers are answered before the inbox write: a database held up by
                    # one customer's transaction never delays another's first answer (after a
                    # crash before the write, Telegram sends the update again: answered twice)
                    greetings = {
                        u.update_id: greeting
                        for u in updates
                        if self.greeter and (greeting := self.greeter.answer(u))
                    }
                    fresh = await self._store(updates)
                    offset = updates[-1].update_id + 1  # confirmed only now: they are in the inbox
                    for update, raw in fresh:
                        job = self._handle(raw, greetings.get(update.update_id))
                        held.append((chat_key(update), job))
                if len(updates) == BATCH and len(held) < MAX_HELD:
                    continue  # a burst: take it all in and answer the newcomers first
                for key, job in held:
                    self.lanes.submit(key, job)
                held.clear()
        finally:  # stopping: what was taken in is handled before the bot exits
            for key, job in held:
                self.lanes.submit(key, job)

    async def _store(self, updates: list[Update]) -> list[tuple[Update, str]]:
        now = self.clock()
        rows: list[dict[str, Any]] = []
        raws: dict[int, tuple[Update, str]] = {}
        for update in updates:
            raw = update.model_dump_json(exclude_none=True)
            raws[update.update_id] = (update, raw)
            rows.append(
                {
                    "update_id": update.update_id,
                    "chat_key": chat_key(update),
                    "payload": raw,
                    "received_at": now,
                }
            )
        async with UnitOfWork(self.factory) as uow:
            new_ids = await uow.inbox.put_new(rows)
            await uow.commit()
        return [raws[i] for i in sorted(new_ids)]

    async def _sleep(self, seconds: float) -> None:
        try:
            await asyncio.wait_for(self._stop.wait(), timeout=seconds)
        except TimeoutError:
            pass
