"""Durable long polling: each update is written to the inbox before Telegram is told we have it
(the next getUpdates offset), handled from there in its chat's lane, and marked handled in the
same transaction as everything it changed and queued. On start, whatever is left is handled
first; a repeated update_id is ignored.

A customer who never wrote before needs nothing from the database to be answered: their first
answer is queued in the very transaction that stores the update (the inbox row says so, so the
handler does not answer again, and a restart does not greet twice), and the sender delivers it
at once. In a burst the whole backlog is taken in, and the newcomers' answers queued, before the
handlers start on it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

from telegram import Bot, Update
from telegram.constants import ChatType
from telegram.error import Conflict

from bot.channels.telegram.routes import Router, chat_key, said_by_customer
from bot.domain.messages import Urgency
from bot.lanes import Job, Lanes
from handlers import customer
from handlers.context import Desk
from storage.outbox import GREETING
from storage.uow import UnitOfWork

logger = logging.getLogger(__name__)

ALLOWED_UPDATES = ["message", "edited_message", "callback_query", "my_chat_member"]
BATCH = 100  # getUpdates' most
MAX_HELD = 1000  # updates taken in before the handlers get them, in a burst


class DurablePoller:
    def __init__(
        self,
        bot: Bot,
        router: Router,
        new_uow: Callable[[], UnitOfWork],
        lanes: Lanes,
        desk: Desk,
        clock: Callable[[], datetime],
        default_language: str,
        polling_timeout: int = 25,
    ) -> None:
        self.bot = bot
        self.router = router
        self.new_uow = new_uow
        self.lanes = lanes
        self.desk = desk
        self.clock = clock
        self.default_language = default_language
        self.polling_timeout = polling_timeout
        self.known: set[int] = set()  # private chats that ever wrote (or have a ticket)
        self.polls = 0
        self._stop = asyncio.Event()

    def stop(self) -> None:
        self._stop.set()

    def _job(self, update_id: int, raw: dict[str, Any], greeted: bool) -> Job:
        async def job() -> None:
            update = Update.de_json(raw, self.bot)
            after = None
            try:
                async with self.new_uow() as uow:
                    after = await self.router.handle(uow, update, greeted)
                    await uow.inbox.mark_handled(update_id, self.clock())
                    await uow.commit()
            except Exception as exc:
                logger.exception("Update %s failed", update_id)
                async with self.new_uow() as uow:  # kept, with its error, for a look later
                    await uow.inbox.mark_handled(update_id, self.clock(), repr(exc))
                    await uow.commit()
                return
            if after is not None:
                await after()

        return job

    async def recover(self) -> int:
        """Hand on the updates stored before a crash but never handled."""
        import json

        async with self.new_uow() as uow:
            rows = [
                (r.update_id, r.chat_key, r.payload, r.greeted) for r in await uow.inbox.pending()
            ]
        for update_id, key, payload, greeted in rows:
            self.lanes.submit(key, self._job(update_id, json.loads(payload), greeted))
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
                        read_timeout=self.polling_timeout + 15,
                    )
                    self.polls += 1
                    backoff = 1.0
                except Conflict:
                    logger.error("Another instance is polling with this BOT_TOKEN; retrying in 5s")
                    await self._sleep(5)
                    continue
                except Exception as exc:  # network, 5xx, or an update the library cannot read
                    logger.warning("getUpdates failed (%r); retrying in %.0fs", exc, backoff)
                    await self._sleep(backoff)
                    backoff = min(backoff * 2, 30)
                    continue
                if updates:
                    held.extend(await self._store(updates))
                    offset = updates[-1].update_id + 1  # confirmed only now: they are stored
                if len(updates) == BATCH and len(held) < MAX_HELD:
                    continue  # a burst: take it all in and answer the newcomers first
                for key, job in held:
                    self.lanes.submit(key, job)
                held.clear()
        finally:  # stopping: what was taken in is handled before the bot exits
            for key, job in held:
                self.lanes.submit(key, job)

    def _newcomer(self, update: Update) -> bool:
        """A new customer's first message that opens a complaint: answered from here."""
        message = update.message
        if message is None or message.chat.type != ChatType.PRIVATE:
            return False
        user = message.from_user
        new = message.chat.id not in self.known
        self.known.add(message.chat.id)
        if not new or user is None or user.is_bot or message.media_group_id:
            return False
        text = (message.text or "").strip()
        return not (text.startswith("/") and text.split("@")[0].split(" ")[0] != "/start")

    async def _store(self, updates: list[Update]) -> list[tuple[str, Job]]:
        """Store the batch in the inbox, with the newcomers' first answers, in one commit."""
        now = self.clock()
        rows: list[dict[str, Any]] = []
        raws: dict[int, tuple[str, dict[str, Any], bool]] = {}
        greetings = {}
        for update in updates:
            raw = update.to_dict()
            greeted = False
            if self.router.staff_chat_id is not None and self._newcomer(update):
                assert update.message is not None
                said = said_by_customer(update.message, self.default_language)
                if said is not None:
                    greetings[update.update_id] = (said, customer.greet(self.desk, said, now))
                    greeted = True
            key = chat_key(update)
            raws[update.update_id] = (key, raw, greeted)
            rows.append(
                {
                    "update_id": update.update_id,
                    "chat_key": key,
                    "payload": update.to_json(),
                    "received_at": now,
                    "greeted": greeted,
                }
            )
        async with self.new_uow() as uow:
            new_ids = await uow.inbox.put_new(rows)
            for update_id in sorted(new_ids):
                if update_id in greetings:
                    said, greeting = greetings[update_id]
                    uow.outbox.to_customer(
                        said.who, greeting.say, urgency=Urgency.FIRST_REPLY, kind=GREETING
                    )
            await uow.commit()
        jobs = []
        for update_id in sorted(new_ids):
            key, raw, greeted = raws[update_id]
            jobs.append((key, self._job(update_id, raw, greeted)))
        return jobs

    async def _sleep(self, seconds: float) -> None:
        try:
            await asyncio.wait_for(self._stop.wait(), timeout=seconds)
        except TimeoutError:
            pass
