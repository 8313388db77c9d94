"""Flood control for everything the bot sends: a sliding window for each of Telegram's limits
(about 30 messages a second overall, about 1 a second per private chat with short bursts, 20 a
minute per group), first replies ahead of everything else, each chat's messages in order.

python-telegram-bot's AIORateLimiter is the usual model, but it has no priorities and no per-chat
order. This module is the scheduling core (plain asyncio, clock and sleep injected so it is tested
without waiting); `bot.channels.telegram.sender` routes every send of the bot through it.

Waiters queue by lane: a private chat is one lane; the staff group has one lane per ticket, so
tickets take turns for the group's places instead of queueing behind each other.

Several instances (`windows`: the shared windows of `bot.shared`, in Redis): the priorities and
the lanes stay in-process, and a send granted here also takes its places in the shared windows
(the bot's and its chat's) before it goes; refused there, it waits (its chat, or everyone when
the bot's window is full) while the next in order may go. Its answer and a 429 update them too,
so the limits hold for all the instances together.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Hashable
from dataclasses import dataclass, field
from typing import Any

from bot.domain.messages import Urgency
from bot.shared import Place, Refused, Updates, Windows

logger = logging.getLogger(__name__)

Priority = Urgency  # who waits least: first replies, relays, cards, reports


@dataclass
class Window:
    """At most `limit` messages in any `period` seconds, the way Telegram counts them.

    A message holds its place from the moment it is granted and counts from the moment
    Telegram answered it, so a window that passes here has passed at Telegram's end too, however
    long the request took on the way. (A token bucket of capacity above one lets more than
    `limit` through in some `period`, which is what Telegram answers with 429.)
    A 429 closes the window until `retry_after` has passed and lowers its limit."""

    limit: int
    period: float
    blocked_until: float = 0.0
    pending: int = 0
    sent: deque[float] = field(default_factory=deque)

    def _forget(self, now: float) -> None:
        while self.sent and self.sent[0] <= now - self.period:
            self.sent.popleft()

    def ready_at(self, now: float) -> float:
        """When one more message may go (now, if it may; inf: when one in flight returns)."""
        self._forget(now)
        start = max(now, self.blocked_until)
        over = len(self.sent) + self.pending - self.limit  # how many must age out first
        if over < 0:
            return start
        if over >= len(self.sent):
            return float("inf")
        return max(start, self.sent[over] + self.period)

    def take(self) -> None:
        self.pending += 1

    def done(self, now: float) -> None:
        self.release()
        self.sent.append(now)

    def release(self) -> None:
        """A granted message that was never sent."""
        self.pending = max(0, self.pending - 1)

    def idle(self, now: float) -> bool:
        """Nothing in flight, nothing counted, not blocked: as good as new."""
        self._forget(now)
        return not self.pending and not self.sent and now >= self.blocked_until

    def free(self, now: float) -> int:
        """How many more messages may go now."""
        self._forget(now)
        if now < self.blocked_until:
            return 0
        return max(0, self.limit - len(self.sent) - self.pending)

    def penalize(self, now: float, retry_after: float) -> None:
        self.blocked_until = max(self.blocked_until, now + retry_after)
        self.limit = max(1, int(self.limit * 0.8))


@dataclass(order=True)
class _Waiter:
    priority: int
    seq: int
    future: asyncio.Future[None] = field(compare=False)


class Limiter:
    """Grants sends one at a time: the most urgent head of any chat's queue whose windows
    allow it. Only a chat's oldest waiting message may go, so a chat's order is kept."""

    def __init__(
        self,
        global_rate: float = 30.0,
        private_rate: float = 1.0,
        private_burst: float = 5.0,
        group_per_minute: float = 20.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        windows: Windows | None = None,
    ) -> None:
        self.clock = clock
        self.sleep = sleep
        self.global_window = Window(max(1, round(global_rate)), 1.0)
        self.windows = windows
        self._tokens: dict[int, deque[str]] = {}  # each chat's shared places, granted here
        self._after: dict[int | None, float] = {}  # refused by a shared window until (None: all)
        # answers and 429s on their way to Redis; each may free a place here
        self._updates = Updates("Shared rate window", lambda: self._wake.set())
        burst = max(1, round(private_burst))
        self._private = (burst, burst / private_rate)
        self._group = (max(1, round(group_per_minute)), 60.0)
        self.group_per_minute = self._group[0]
        self._global_limit = self.global_window.limit
        self._windows: dict[Hashable, Window] = {}
        self._sweep_at = 1024
        self._queues: dict[Hashable, deque[_Waiter]] = {}
        self._chat_of: dict[Hashable, int] = {}  # each lane's chat (its windows)
        self._seq = itertools.count()
        self._wake = asyncio.Event()
        self._pump: asyncio.Task[None] | None = None

    def window(self, chat_id: int) -> Window:
        if chat_id not in self._windows:
            if len(self._windows) >= self._sweep_at:
                self._sweep()
            limit, period = self._group if chat_id < 0 else self._private
            self._windows[chat_id] = Window(limit, period)
        return self._windows[chat_id]

    def _sweep(self) -> None:
        """Forget the windows of chats that have had nothing for a whole period (a shop meets
        new customers every day: the table must not grow forever)."""
        now = self.clock()
        for chat_id, window in list(self._windows.items()):
            if window.idle(now) and chat_id not in self._chat_of.values():
                del self._windows[chat_id]
        self._sweep_at = max(1024, 2 * len(self._windows))

    async def acquire(
        self, chat_id: int, priority: Priority = Priority.CARD, lane: Hashable | None = None
    ) -> None:
        """Wait until a message to this chat may be sent; call `done` once Telegram answered.
        Waiters of one lane (default: the chat) go in order."""
        lane = chat_id if lane is None else lane
        if not self._queues and self.windows is None:  # nobody waiting: go now if allowed
            now = self.clock()
            window = self.window(chat_id)
            if max(self.global_window.ready_at(now), window.ready_at(now)) <= now:
                self.global_window.take()
                window.take()
                return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._chat_of[lane] = chat_id
        self._queues.setdefault(lane, deque()).append(
            _Waiter(int(priority), next(self._seq), future)
        )
        self._wake.set()
        if self._pump is None or self._pump.done():
            self._pump = asyncio.create_task(self._run())
        try:
            await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():  # granted, then given up
                self.release(chat_id)
            raise

    def would_wait(self, chat_id: int) -> bool:
        """Whether a message to this chat would have to wait for its turn now."""
        now = self.clock()
        if self._queues:
            return True
        return max(self.global_window.ready_at(now), self.window(chat_id).ready_at(now)) > now

    def done(self, chat_id: int) -> None:
        """Telegram answered a granted message: it counts from now."""
        now = self.clock()
        self.global_window.done(now)
        self.window(chat_id).done(now)
        if self.windows is not None:
            self._update(self.windows.done(self._token(chat_id), self._places(chat_id)))
        self._wake.set()

    def release(self, chat_id: int) -> None:
        """A granted message that was never sent: its places are free again."""
        self.global_window.release()
        self.window(chat_id).release()
        if self.windows is not None:
            self._update(self.windows.release(self._token(chat_id), self._places(chat_id)))
        self._wake.set()

    def penalize(self, chat_id: int | None, retry_after: float) -> None:
        """Telegram answered 429: that window (or the global one) waits and tightens."""
        now = self.clock()
        window = self.global_window if chat_id is None else self.window(chat_id)
        window.penalize(now, retry_after)
        if self.windows is not None:
            places = self._places(chat_id if chat_id is not None else 0)
            self._update(self.windows.block(places[0 if chat_id is None else 1], retry_after))
        self._wake.set()

    # -- the shared windows (several instances) ---------------------------------------------

    def _places(self, chat_id: int) -> list[Place]:
        """A message's windows across instances: the bot's, its chat's (at their set limits;
        the shared windows lower their own on a 429)."""
        limit, period = self._group if chat_id < 0 else self._private
        return [Place("tg:bot", self._global_limit, 1.0), Place(f"tg:{chat_id}", limit, period)]

    def _token(self, chat_id: int) -> str:
        tokens = self._tokens[chat_id]
        token = tokens.popleft()  # any of the chat's places: they count alike
        if not tokens:
            del self._tokens[chat_id]
        return token

    def _update(self, update: Coroutine[Any, Any, None]) -> None:
        self._updates.tell(update)

    async def settle(self) -> None:
        """Wait until the shared windows have heard of every answer given here."""
        await self._updates.settle()

    def _shared_after(self, chat_id: int | None, now: float) -> float:
        at = self._after.get(chat_id, 0.0)
        if at and at <= now:
            del self._after[chat_id]
        return at

    async def _reserve(self, chat_id: int) -> str | None:
        """This chat's places in the shared windows, or None (refused: it, or everyone when
        the bot's window refused, waits as long as the windows say)."""
        assert self.windows is not None
        try:
            got = await self.windows.try_take(self._places(chat_id))
        except Exception as exc:  # Redis away: nobody sends until it is back
            logger.warning("Shared rate windows unreachable (%s): sends wait", exc)
            self._after[None] = self.clock() + 1.0
            return None
        if isinstance(got, Refused):
            now = self.clock()
            if len(self._after) >= 1024:  # chats long gone
                self._after = {k: at for k, at in self._after.items() if at > now}
            wait = got.wait if got.wait is not None else self.windows_poll
            self._after[None if got.place == 0 else chat_id] = now + wait
            return None
        return got

    windows_poll = 0.02  # refused until an answer elsewhere frees a place: ask again this soon

    def free(self, chat_id: int) -> int:
        """How many messages this chat may still get now, not counting those waiting."""
        now = self.clock()
        waiting = sum(
            len(q) for lane, q in self._queues.items() if self._chat_of.get(lane) == chat_id
        )
        return max(0, min(self.window(chat_id).free(now), self.global_window.free(now)) - waiting)

    @property
    def waiting(self) -> int:
        return sum(len(q) for q in self._queues.values())

    async def _run(self) -> None:
        while self._queues:
            self._wake.clear()
            now = self.clock()
            best: tuple[_Waiter, Hashable] | None = None
            soonest = float("inf")
            global_at = self.global_window.ready_at(now)
            if self._after:
                global_at = max(global_at, self._shared_after(None, now))
            for lane, queue in self._queues.items():
                head = queue[0]
                chat_id = self._chat_of[lane]
                at = max(global_at, self.window(chat_id).ready_at(now))
                if self._after:
                    at = max(at, self._shared_after(chat_id, now))
                if at <= now and (best is None or head < best[0]):
                    best = (head, lane)
                soonest = min(soonest, at)
            if best is not None:
                head, lane = best
                chat_id = self._chat_of[lane]
                token = None
                if self.windows is not None and not head.future.done():
                    token = await self._reserve(chat_id)
                    if token is None:
                        continue  # refused: the next in order, or wait
                self._queues[lane].popleft()  # only this task takes from the queues
                if not self._queues[lane]:
                    del self._queues[lane]
                    del self._chat_of[lane]
                if head.future.done():  # its sender gave up waiting
                    if token is not None:
                        assert self.windows is not None
                        self._update(self.windows.release(token, self._places(chat_id)))
                    continue
                self.global_window.take()
                self.window(chat_id).take()
                if token is not None:
                    self._tokens.setdefault(chat_id, deque()).append(token)
                head.future.set_result(None)
                await asyncio.sleep(0)  # let the granted send start
                continue
            waker = asyncio.create_task(self._wake.wait())
            tasks = {waker}
            if soonest != float("inf"):  # else only a returning message frees a place
                tasks.add(asyncio.create_task(self.sleep(max(soonest - now, 0.0))))
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in tasks:
                task.cancel()
