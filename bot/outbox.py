"""Flood control for everything the bot sends: token buckets for Telegram's limits (about 30
messages a second overall, about 1 a second per private chat with short bursts, 20 a minute per
group), first replies ahead of everything else, each chat's messages in order.

python-telegram-bot's AIORateLimiter is the usual model; aiogram ships none. This module is the
scheduling core (plain asyncio, clock and sleep injected so it is tested without waiting);
`bot.retry.RetryRequests` routes every send of the bot through it.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import deque
from collections.abc import Awaitable, Callable, Hashable
from contextvars import ContextVar
from dataclasses import dataclass, field
from enum import IntEnum


class Priority(IntEnum):
    """Who waits least: a customer's first answer, then staff relays, then cards and
    reminders, then reports."""

    FIRST_REPLY = 0
    RELAY = 1
    CARD = 2
    REPORT = 3


# the priority of what the current update sends; set per update, defaults to a card's
send_priority: ContextVar[Priority] = ContextVar("send_priority", default=Priority.CARD)


@dataclass
class TokenBucket:
    """`rate` tokens a second up to `capacity`; a 429 empties it until `retry_after` has
    passed and slows it down."""

    rate: float
    capacity: float
    tokens: float = -1.0
    updated: float = 0.0
    blocked_until: float = 0.0
    min_rate: float = 0.0

    def __post_init__(self) -> None:
        if self.tokens < 0:
            self.tokens = self.capacity
        if not self.min_rate:
            self.min_rate = self.rate / 4

    def _refill(self, now: float) -> None:
        if now > self.updated:
            self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
            self.updated = now

    def ready_at(self, now: float) -> float:
        """When one token is there (now, if it is)."""
        self._refill(now)
        start = max(now, self.blocked_until)
        if self.tokens >= 1:
            return start
        return max(start, now + (1 - self.tokens) / self.rate)

    def take(self, now: float) -> None:
        self._refill(now)
        self.tokens -= 1

    def penalize(self, now: float, retry_after: float) -> None:
        self.blocked_until = max(self.blocked_until, now + retry_after)
        self.tokens = 0
        self.updated = now
        self.rate = max(self.min_rate, self.rate * 0.8)


@dataclass(order=True)
class _Waiter:
    priority: int
    seq: int
    future: asyncio.Future[None] = field(compare=False)


class Limiter:
    """Grants sends one at a time: the most urgent head of any chat's queue whose buckets
    allow it. Only a chat's oldest waiting message may go, so a chat's order is kept."""

    def __init__(
        self,
        global_rate: float = 30.0,
        private_rate: float = 1.0,
        private_burst: float = 3.0,
        group_per_minute: float = 20.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.clock = clock
        self.sleep = sleep
        self.global_bucket = TokenBucket(global_rate, global_rate)
        self._private = (private_rate, private_burst)
        self._group = (group_per_minute / 60.0, group_per_minute)
        self._buckets: dict[Hashable, TokenBucket] = {}
        self._queues: dict[Hashable, deque[_Waiter]] = {}
        self._seq = itertools.count()
        self._wake = asyncio.Event()
        self._pump: asyncio.Task[None] | None = None

    def bucket(self, chat_id: int) -> TokenBucket:
        if chat_id not in self._buckets:
            rate, burst = self._group if chat_id < 0 else self._private
            self._buckets[chat_id] = TokenBucket(rate, burst, updated=self.clock())
        return self._buckets[chat_id]

    async def acquire(self, chat_id: int, priority: Priority = Priority.CARD) -> None:
        """Wait until a message to this chat may be sent."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queues.setdefault(chat_id, deque()).append(
            _Waiter(int(priority), next(self._seq), future)
        )
        self._wake.set()
        if self._pump is None or self._pump.done():
            self._pump = asyncio.create_task(self._run())
        await future

    def penalize(self, chat_id: int | None, retry_after: float) -> None:
        """Telegram answered 429: that bucket (or the global one) waits and slows down."""
        now = self.clock()
        bucket = self.global_bucket if chat_id is None else self.bucket(chat_id)
        bucket.penalize(now, retry_after)
        self._wake.set()

    @property
    def waiting(self) -> int:
        return sum(len(q) for q in self._queues.values())

    async def _run(self) -> None:
        while self._queues:
            self._wake.clear()
            now = self.clock()
            best: tuple[_Waiter, int] | None = None
            soonest = float("inf")
            global_at = self.global_bucket.ready_at(now)
            for chat_id, queue in self._queues.items():
                head = queue[0]
                at = max(global_at, self.bucket(chat_id).ready_at(now))
                if at <= now and (best is None or head < best[0]):
                    best = (head, chat_id)
                soonest = min(soonest, at)
            if best is not None:
                head, chat_id = best
                self._queues[chat_id].popleft()
                if not self._queues[chat_id]:
                    del self._queues[chat_id]
                self.global_bucket.take(now)
                self.bucket(chat_id).take(now)
                if not head.future.done():
                    head.future.set_result(None)
                await asyncio.sleep(0)  # let the granted send start
                continue
            waker = asyncio.create_task(self._wake.wait())
            sleeper = asyncio.create_task(self.sleep(max(soonest - now, 0.0)))
            await asyncio.wait({waker, sleeper}, return_when=asyncio.FIRST_COMPLETED)
            for task in (waker, sleeper):
                task.cancel()
