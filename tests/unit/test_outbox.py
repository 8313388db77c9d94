"""Flood control with an injected clock: the buckets, the priority order, a chat's order."""

from __future__ import annotations

import asyncio

import pytest

from bot.outbox import Limiter, Priority, TokenBucket


class FakeTime:
    """A clock that moves only when the limiter sleeps."""

    def __init__(self) -> None:
        self.now = 0.0

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds
        await asyncio.sleep(0)


async def send_all(
    limiter: Limiter, time: FakeTime, sends: list[tuple[int, Priority]]
) -> list[tuple[int, float]]:
    """Enqueue every send at once; return (index, grant time) in grant order."""
    granted: list[tuple[int, float]] = []

    async def one(index: int, chat: int, priority: Priority) -> None:
        await limiter.acquire(chat, priority)
        granted.append((index, time.now))

    await asyncio.gather(*(one(i, c, p) for i, (c, p) in enumerate(sends)))
    return granted


async def test_the_global_bucket_allows_thirty_a_second() -> None:
    """Ninety customers at once: 30 go at once, the rest at 30 a second."""
    time = FakeTime()
    limiter = Limiter(clock=time.clock, sleep=time.sleep)
    granted = await send_all(limiter, time, [(1000 + i, Priority.FIRST_REPLY) for i in range(90)])
    assert len(granted) == 90
    assert granted[29][1] == pytest.approx(0.0)
    assert granted[-1][1] == pytest.approx(2.0, abs=0.05)


async def test_one_chat_gets_a_short_burst_then_one_a_second_in_order() -> None:
    """Five messages to one customer: three at once, then one a second, never reordered."""
    time = FakeTime()
    limiter = Limiter(clock=time.clock, sleep=time.sleep)
    sends = [
        (7, Priority.REPORT),
        (7, Priority.FIRST_REPLY),
        (7, Priority.RELAY),
        (7, Priority.CARD),
        (7, Priority.FIRST_REPLY),
    ]
    granted = await send_all(limiter, time, sends)
    assert [i for i, _ in granted] == [0, 1, 2, 3, 4]
    assert [round(t, 3) for _, t in granted] == [0.0, 0.0, 0.0, 1.0, 2.0]


async def test_first_replies_go_before_everything_else() -> None:
    """With the global bucket busy, a first reply enqueued last is sent first."""
    time = FakeTime()
    limiter = Limiter(global_rate=1.0, clock=time.clock, sleep=time.sleep)
    sends = [
        (1, Priority.REPORT),
        (2, Priority.CARD),
        (3, Priority.RELAY),
        (4, Priority.FIRST_REPLY),
    ]
    granted = await send_all(limiter, time, sends)
    assert [i for i, _ in granted] == [3, 2, 1, 0]


async def test_a_429_waits_retry_after_and_slows_the_bucket() -> None:
    """After a 429 for a chat, nothing goes to it before retry_after, and its rate drops."""
    time = FakeTime()
    limiter = Limiter(clock=time.clock, sleep=time.sleep)
    await limiter.acquire(5, Priority.RELAY)
    limiter.penalize(5, 4.0)
    assert limiter.bucket(5).rate < 1.0
    granted = await send_all(limiter, time, [(5, Priority.RELAY), (6, Priority.RELAY)])
    times = dict(granted)
    assert times[1] == pytest.approx(0.0) and times[0] >= 4.0


async def test_a_group_gets_twenty_a_minute() -> None:
    """Twenty-five messages to the staff group: twenty at once, then one every three seconds."""
    time = FakeTime()
    limiter = Limiter(clock=time.clock, sleep=time.sleep)
    granted = await send_all(limiter, time, [(-100, Priority.CARD)] * 25)
    assert granted[19][1] == pytest.approx(0.0)
    assert granted[20][1] == pytest.approx(3.0, abs=0.01)
    assert granted[-1][1] == pytest.approx(15.0, abs=0.01)


def test_a_bucket_refills_at_its_rate_up_to_its_capacity() -> None:
    """Tokens come back at `rate` a second and never exceed `capacity`."""
    bucket = TokenBucket(rate=2.0, capacity=4.0)
    for _ in range(4):
        bucket.take(0.0)
    assert bucket.ready_at(0.0) == pytest.approx(0.5)
    assert bucket.ready_at(10.0) == 10.0 and bucket.tokens == 4.0
