"""Flood control for everything the bot sends: a sliding window for each of Telegram's limits
(about 30 messages a second overall, about 1 a second per private chat with short bursts, 20 a
minute per group), first replies ahead of everything else, each chat's messages in order.

python-telegram-bot's AIORateLimiter is the usual model, but it has no priorities and no per-chat
order. This module is the scheduling core (plain asyncio, clock and sleep injected so it is tested
without waiting); `bot.channels.telegram.sender` routes every send of the bot through it.

Waiters queue by lane: a private chat is one lane; the staff group has one lane per ticket, so
tickets take turns for the group's places instead of queueing behind each other.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import deque
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass, field

from bot.domain.messages import Urgency

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
    ) -> None:
        self.clock = clock
        self.sleep = sleep
        self.global_window = Window(max(1, round(global_rate)), 1.0)
        burst = max(1, round(private_burst))
        self._private = (burst, burst / private_rate)
        self._group = (max(1, round(group_per_minute)), 60.0)
        self.group_per_minute = self._group[0]
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
        if not self._queues:  # nobody waiting: no queue to keep, go now if the windows allow
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
                self.global_window.release()
                self.window(chat_id).release()
                self._wake.set()
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
        self._wake.set()

    def penalize(self, chat_id: int | None, retry_after: float) -> None:
        """Telegram answered 429: that window (or the global one) waits and tightens."""
        now = self.clock()
        window = self.global_window if chat_id is None else self.window(chat_id)
        window.penalize(now, retry_after)
        self._wake.set()

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
            best: tuple[_Waiter, int] | None = None
            soonest = float("inf")
            global_at = self.global_window.ready_at(now)
            for lane, queue in self._queues.items():
                head = queue[0]
                at = max(global_at, self.window(self._chat_of[lane]).ready_at(now))
                if at <= now and (best is None or head < best[0]):
                    best = (head, lane)
                soonest = min(soonest, at)
            if best is not None:
                head, lane = best
                chat_id = self._chat_of[lane]
                self._queues[lane].popleft()
                if not self._queues[lane]:
                    del self._queues[lane]
                    del self._chat_of[lane]
                if head.future.done():  # its sender gave up waiting
                    continue
                self.global_window.take()
                self.window(chat_id).take()
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
