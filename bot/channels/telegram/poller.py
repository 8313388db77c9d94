"""Durable long polling: each update is written to the inbox before Telegram is told we have it
(the next getUpdates offset), handled from there in its lane (its chat's; in the staff group its
ticket's thread's, or an insight command's own: `Router.lane`, decided when it is stored), and
marked handled in the same transaction as everything it changed and queued. What must not
happen inside that transaction (a file's download, an insight command's long work) is done
before it, once (`Router.prepare`). On start, whatever is left is handled first; a repeated
update_id is ignored.

A customer who never wrote before needs nothing from the database to be answered: their first
answer is queued in the very transaction that stores the update (the inbox row says so, so the
handler does not answer again, and a restart does not greet twice), and the sender delivers it
at once. In a burst the whole backlog is taken in, and the newcomers' answers queued, before the
handlers start on it.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from datetime import datetime, timedelta
from typing import Any

from telegram import Bot, Update
from telegram.constants import ChatType
from telegram.error import BadRequest, Conflict, Forbidden, NetworkError, RetryAfter

from bot.channels.base import Passing
from bot.channels.telegram.routes import (
    CHANNEL,
    DASHBOARD,
    DEEP_LINK,
    AfterCommit,
    Router,
    customer_of,
    said_by_customer,
)
from bot.domain.messages import Said, Urgency
from bot.durable import until_done
from bot.lanes import Job, Lanes
from bot.metrics import Metrics
from bot.shared import LocalShared, LockBusy
from handlers import customer, staff
from handlers.context import Desk
from handlers.manager import Finish
from storage.db import passing
from storage.outbox import GREETING
from storage.uow import NewUnitOfWork

logger = logging.getLogger(__name__)

ALLOWED_UPDATES = ["message", "edited_message", "callback_query", "my_chat_member"]
BATCH = 100  # getUpdates' most
MAX_HELD = 1000  # updates taken in before the handlers get them, in a burst
# webhook mode: an update stored this long ago and not handled is looked at by any instance
# (the one that stored it died, or it waits behind its lane's lock), looked for this often
ORPHAN_AFTER = timedelta(seconds=10)
SWEEP_EVERY = 5.0
LANE_LOCK_TTL = 30.0  # renewed while held: a dead holder's lane is free after at most this

Lock = Callable[[str], AbstractAsyncContextManager[None]]


class DurablePoller:
    def __init__(
        self,
        bot: Bot,
        router: Router,
        new_uow: NewUnitOfWork,
        lanes: Lanes,
        desk: Desk,
        clock: Callable[[], datetime],
        default_language: str,
        polling_timeout: int = 25,
        webhook: bool = False,
        lock: Lock | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        """`webhook`: Telegram posts updates to this instance's server (`take`), perhaps to
        several instances; each lane then runs under `lock` (shared by the instances: Redis),
        handling its stored updates in order, whoever stored them."""
        self.bot = bot
        self.webhook = webhook
        self.lock: Lock = lock or LocalShared().lock
        self.metrics = metrics or Metrics()
        self.router = router
        self.new_uow = new_uow
        self.lanes = lanes
        self.desk = desk
        self.clock = clock
        self.default_language = default_language
        self.polling_timeout = polling_timeout
        self.polls = 0
        self._stop = asyncio.Event()
        self.ready = asyncio.Event()  # the bot knows itself (getMe): updates can be read

    def stop(self) -> None:
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def _job(
        self,
        update_id: int,
        raw: dict[str, Any],
        greeted: bool,
        followed: Callable[[], bool] = lambda: False,
    ) -> Job:
        """The job that handles a stored update. `followed`: whether more of its chat's updates
        wait behind it when it runs."""

        async def job() -> None:
            update = Update.de_json(raw, self.bot)
            after: list[AfterCommit | None] = []
            prepared: list[Finish | None] = []

            async def attempt() -> None:
                if not prepared:  # an insight command's download, import, reading: done once
                    prepared.append(await self.router.prepare(update, self.new_uow))
                async with self.new_uow(read_only=True) as uow:  # holds no lock
                    stored = await uow.inbox.get(update_id)
                    handled = stored is not None and stored.handled_at is not None
                if handled:
                    return  # done already (a commit whose answer was lost, a repeat)
                then = None
                async with self.new_uow() as uow:  # the router asks Telegram before it reads
                    if prepared[0] is not None:  # what the insight command made, written now
                        await prepared[0](uow)
                    else:
                        then = await self.router.handle(uow, update, greeted, followed())
                    if not await uow.inbox.mark_handled(update_id, self.clock()):
                        return  # another instance handled it meanwhile: this is undone
                    await uow.commit()
                self.metrics.handled(CHANNEL)
                after.append(then)

            async def set_aside(exc: Exception) -> None:
                await self._set_aside(update_id, update, exc)

            done = await until_done(
                attempt,
                what=f"Update {update_id}",
                passing=lambda exc: passing(exc) or _passing_telegram(exc),
                set_aside=set_aside,
                stopped=self._stop,
            )
            if done and after and after[-1] is not None:
                await after[-1]()

        return job

    async def _set_aside(self, update_id: int, update: Update, exc: Exception) -> None:
        """An update that keeps failing for a reason that will not pass (a bug) no longer holds
        up its chat: it is kept with its error, and staff hear whose message it was."""
        message = update.message or update.edited_message
        chat, user = update.effective_chat, update.effective_user
        in_group = chat is not None and chat.id == self.router.staff_chat_id
        said = None
        if message is not None and message.chat.type == ChatType.PRIVATE:
            said = said_by_customer(message, self.default_language)
        elif update.callback_query is not None and user is not None and not in_group:
            said = Said(customer_of(user), user.full_name, self.default_language, "tap", None)
        try:
            async with self.new_uow() as uow:
                if not await uow.inbox.mark_handled(update_id, self.clock(), repr(exc)[:2000]):
                    return  # handled elsewhere after all
                if in_group and user is not None and not user.is_bot:  # they hear it went nowhere
                    text = (message.text or message.caption or "") if message else ""
                    staff.not_handled(uow, self.desk, user.first_name or user.full_name, text)
                elif said is not None and self.router.open:
                    await customer.not_handled(uow, self.desk, said)
                await uow.commit()
            self.metrics.handled(CHANNEL)
        except Exception:  # left in the inbox: tried again at the next start
            logger.exception("Update %s could not be set aside", update_id)

    async def recover(self) -> int:
        """Hand on the updates stored before a crash but never handled."""
        async with self.new_uow() as uow:
            rows = [
                (r.update_id, r.chat_key, r.payload, r.greeted) for r in await uow.inbox.pending()
            ]
        if self.webhook:  # each lane's stored updates, in order, under its lock
            for key in dict.fromkeys(key for _, key, _, _ in rows):
                self.lanes.submit(key, self._drain(key))
            return len(rows)
        for update_id, key, payload, greeted in rows:
            self.lanes.submit(
                key, self._job(update_id, json.loads(payload), greeted, self._behind(key))
            )
        if rows:
            logger.info("Handling %s updates left from before the restart", len(rows))
        return len(rows)

    # -- webhook mode ----------------------------------------------------------------------

    async def take(self, raw: dict[str, Any]) -> None:
        """An update Telegram posted: stored (with a newcomer's first answer) before this
        returns, then handled in its lane. Raises if it could not be stored: the caller answers
        an error and Telegram sends it again. Stored before: nothing more happens."""
        update = Update.de_json(raw, self.bot)
        if update is None:
            raise ValueError("not an update")
        chat = update.effective_chat
        user = update.effective_user
        whose = chat.id if chat is not None else (user.id if user is not None else 0)
        # one chat's updates are stored one at a time across instances: a newcomer who writes
        # twice at once is greeted once
        async with self.lock(f"telegram:store:{whose}"):
            jobs = await self._store([update])
        for key in dict.fromkeys(key for key, _ in jobs):
            self.lanes.submit(key, self._drain(key))

    def _drain(self, key: str) -> Job:
        """Handle the lane's stored updates, oldest first, under the lane's lock: whichever
        instance stored them, a chat's updates are handled in order and by one at a time."""

        async def job() -> None:
            try:
                async with self.lock(f"telegram:lane:{key}"):
                    await drain()
            except LockBusy:  # another instance drains it (and sees our row), or the sweep will
                logger.info("Lane %s is busy elsewhere; left to its holder", key)

        async def drain() -> None:
            done: set[int] = set()
            while not self._stop.is_set():
                async with self.new_uow(read_only=True) as uow:
                    rows = [
                        (r.update_id, r.payload, r.greeted)
                        for r in await uow.inbox.unhandled_in_lane(key)
                        if r.update_id not in done
                    ]
                if not rows:
                    return
                for n, (update_id, payload, greeted) in enumerate(rows, 1):
                    if self._stop.is_set():
                        return  # the rest is another instance's, or the next start's
                    done.add(update_id)  # set aside or handled: not again in this drain
                    more = n < len(rows)
                    await self._job(update_id, json.loads(payload), greeted, lambda m=more: m)()

        return job

    async def _sweep(self) -> None:
        """Webhook mode: lanes with updates stored a while ago and still not handled (their
        instance died between storing and handling) are taken over."""
        while not self._stop.is_set():
            try:
                async with self.new_uow(read_only=True) as uow:
                    keys = await uow.inbox.waiting_lanes(self.clock() - ORPHAN_AFTER)
                for key in keys:
                    if not self.lanes.has(key):
                        self.lanes.submit(key, self._drain(key))
            except Exception as exc:
                logger.warning("Looking for updates left unhandled failed: %r", exc)
            await self._sleep(SWEEP_EVERY)

    async def run(self) -> None:
        """Poll (or, in webhook mode, look after what other instances left) until stop()."""
        loop = asyncio.create_task(self._sweep() if self.webhook else self._loop())
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
                    try:
                        held.extend(await self._store(updates))
                    except Exception as exc:  # the database is away: ask for them again
                        logger.warning("Updates not stored (%r); again in %.0fs", exc, backoff)
                        await self._sleep(backoff)
                        backoff = min(backoff * 2, 30)
                        continue
                    offset = updates[-1].update_id + 1  # confirmed only now: they are stored
                if len(updates) == BATCH and len(held) < MAX_HELD:
                    continue  # a burst: take it all in and answer the newcomers first
                for key, job in held:
                    self.lanes.submit(key, job)
                held.clear()
        finally:  # stopping: what was taken in is handled before the bot exits
            for key, job in held:
                self.lanes.submit(key, job)

    def _opens(self, update: Update) -> bool:
        """Whether this update, from a chat that never wrote, opens a complaint: answered from
        here."""
        message = update.message
        if message is None or message.chat.type != ChatType.PRIVATE:
            return False
        user = message.from_user
        if user is None or user.is_bot or message.media_group_id:
            return False
        text = (message.text or "").strip()
        if DEEP_LINK.match(text) or DASHBOARD.match(text):  # staff's links: not a complaint
            return False
        return not (text.startswith("/") and text.split("@")[0].split(" ")[0] != "/start")

    async def _store(self, updates: list[Update]) -> list[tuple[str, Job]]:
        """Store the batch in the inbox, with the newcomers' first answers, in one commit. A
        newcomer is a private chat the inbox has never seen and no ticket names (indexed
        look-ups: nothing about every customer is kept in memory)."""
        now = self.clock()
        async with self.new_uow() as uow:
            keyed = [(update, await self.router.lane(uow, update)) for update in updates]
            private = [key for update, key in keyed if self._private(update)]
            known = await uow.inbox.known_chats(private)
            known |= {
                f"{CHANNEL}:{i}"
                for i in await uow.tickets.known_customers(
                    CHANNEL, [key.partition(":")[2] for key in private]
                )
            }
            rows: list[dict[str, Any]] = []
            greetings = {}
            for update, key in keyed:
                first = self._private(update) and key not in known
                known.add(key)  # the chat's later updates in this batch are not its first
                greeting = self._greeting(update, now) if first else None
                if greeting is not None:
                    greetings[update.update_id] = greeting
                rows.append(
                    {
                        "update_id": update.update_id,
                        "chat_key": key,
                        "payload": update.to_json(),
                        "received_at": now,
                        "greeted": greeting is not None,
                    }
                )
            new_ids = await uow.inbox.put_new(rows)
            for update_id in sorted(new_ids):
                if update_id in greetings:
                    said, greeting = greetings[update_id]
                    uow.outbox.to_customer(
                        said.who, greeting.say, urgency=Urgency.FIRST_REPLY, kind=GREETING
                    )
            # and those stored before whose store looked failed (a commit whose answer was
            # lost): a job that finds its update handled does nothing
            waiting = await uow.inbox.unhandled([int(str(r["update_id"])) for r in rows])
            await uow.commit()
        return [
            (
                row.chat_key,
                self._job(
                    row.update_id, json.loads(row.payload), row.greeted, self._behind(row.chat_key)
                ),
            )
            for row in waiting
        ]

    def _behind(self, key: str) -> Callable[[], bool]:
        """Whether more jobs wait in the lane (asked as a job runs: it has left the queue)."""
        return lambda: self.lanes.waiting(key) > 0

    def _greeting(self, update: Update, now: datetime) -> tuple[Said, customer.Greeting] | None:
        """A newcomer's first answer, when their first message opens a complaint."""
        if not self.router.open or not self._opens(update):
            return None
        assert update.message is not None
        said = said_by_customer(update.message, self.default_language)
        return (said, customer.greet(self.desk, said, now)) if said is not None else None

    @staticmethod
    def _private(update: Update) -> bool:
        message = update.message
        return message is not None and message.chat.type == ChatType.PRIVATE

    async def _sleep(self, seconds: float) -> None:
        try:
            await asyncio.wait_for(self._stop.wait(), timeout=seconds)
        except TimeoutError:
            pass


def _passing_telegram(exc: BaseException) -> bool:
    """A Telegram call made while handling (a file, a member's status) that will pass."""
    if isinstance(exc, Passing | RetryAfter):
        return True
    return isinstance(exc, NetworkError) and not isinstance(exc, BadRequest | Forbidden)
