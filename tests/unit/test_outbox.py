"""Flood control with an injected clock: the windows, the priority order, a chat's order."""

from __future__ import annotations

import asyncio
from collections import deque

import pytest

from bot.channels.telegram.limiter import Limiter, Priority, Window


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
    limiter: Limiter, time: FakeTime, sends: list[tuple[int, Priority]], took: float = 0.0
) -> list[tuple[int, float]]:
    """Enqueue every send at once, each answered by Telegram `took` seconds after it went;
    return (index, grant time) in grant order."""
    granted: list[tuple[int, float]] = []

    async def one(index: int, chat: int, priority: Priority) -> None:
        await limiter.acquire(chat, priority)
        granted.append((index, time.now))
        if took:
            await time.sleep(took)
        limiter.done(chat)

    await asyncio.gather(*(one(i, c, p) for i, (c, p) in enumerate(sends)))
    return granted


async def test_the_global_window_allows_thirty_a_second() -> None:
    """Ninety customers at once: 30 go at once, then 30 more each second."""
    time = FakeTime()
    limiter = Limiter(clock=time.clock, sleep=time.sleep)
    granted = await send_all(limiter, time, [(1000 + i, Priority.FIRST_REPLY) for i in range(90)])
    assert len(granted) == 90
    assert granted[29][1] == pytest.approx(0.0)
    assert granted[30][1] == pytest.approx(1.0)
    assert granted[-1][1] == pytest.approx(2.0)
    assert no_window_overfull([t for _, t in granted], 30, 1.0)


def no_window_overfull(times: list[float], limit: int, period: float) -> bool:
    """No `period`-long stretch holds more than `limit` of these times."""
    times = sorted(times)
    return all(times[i + limit] - times[i] >= period for i in range(len(times) - limit))


async def test_a_window_counts_from_telegrams_answer() -> None:
    """Slow answers: the next second's messages wait for the answers, not for the grants, so
    Telegram never sees more than 30 in a second however long the requests take."""
    time = FakeTime()
    limiter = Limiter(clock=time.clock, sleep=time.sleep)
    sends = [(2000 + i, Priority.FIRST_REPLY) for i in range(60)]
    granted = await send_all(limiter, time, sends, took=0.25)
    times = [t for _, t in granted]
    assert times[30] >= 1.25 - 1e-9  # the first 30 were answered at 0.25 s
    assert no_window_overfull([t + 0.25 for t in times], 30, 1.0)


async def test_one_chat_gets_a_short_burst_then_one_a_second_in_order() -> None:
    """Seven messages to one customer: a burst of five, then the window lets more through as
    the first ones age, never reordered."""
    time = FakeTime()
    limiter = Limiter(clock=time.clock, sleep=time.sleep)
    sends = [
        (7, Priority.REPORT),
        (7, Priority.FIRST_REPLY),
        (7, Priority.RELAY),
        (7, Priority.CARD),
        (7, Priority.FIRST_REPLY),
        (7, Priority.RELAY),
        (7, Priority.RELAY),
    ]
    granted = await send_all(limiter, time, sends)
    assert [i for i, _ in granted] == [0, 1, 2, 3, 4, 5, 6]
    assert [round(t, 3) for _, t in granted] == [0.0] * 5 + [5.0, 5.0]


async def test_first_replies_go_before_everything_else() -> None:
    """With the global window full, a first reply enqueued last is sent first."""
    time = FakeTime()
    limiter = Limiter(global_rate=1.0, clock=time.clock, sleep=time.sleep)
    await limiter.acquire(9)  # the one place a second, in flight
    sends = [
        (1, Priority.REPORT),
        (2, Priority.CARD),
        (3, Priority.RELAY),
        (4, Priority.FIRST_REPLY),
    ]
    waiting = asyncio.create_task(send_all(limiter, time, sends))
    await asyncio.sleep(0)
    limiter.done(9)
    granted = await waiting
    assert [i for i, _ in granted] == [3, 2, 1, 0]


async def test_with_nobody_waiting_a_message_goes_at_once() -> None:
    """An idle limiter grants without queueing (the fast path of a quiet day)."""
    time = FakeTime()
    limiter = Limiter(clock=time.clock, sleep=time.sleep)
    await limiter.acquire(1, Priority.REPORT)
    assert limiter.waiting == 0 and limiter.global_window.pending == 1
    limiter.done(1)
    assert limiter.window(1).sent == deque([0.0])


async def test_a_429_waits_retry_after_and_tightens_the_window() -> None:
    """After a 429 for a chat, nothing goes to it before retry_after, and its limit drops."""
    time = FakeTime()
    limiter = Limiter(clock=time.clock, sleep=time.sleep)
    await limiter.acquire(5, Priority.RELAY)
    limiter.done(5)
    limiter.penalize(5, 4.0)
    assert limiter.window(5).limit < 5
    granted = await send_all(limiter, time, [(5, Priority.RELAY), (6, Priority.RELAY)])
    times = dict(granted)
    assert times[1] == pytest.approx(0.0) and times[0] >= 4.0


async def test_a_group_gets_twenty_a_minute() -> None:
    """Twenty-five messages to the staff group: twenty at once, the rest a minute later."""
    time = FakeTime()
    limiter = Limiter(clock=time.clock, sleep=time.sleep)
    granted = await send_all(limiter, time, [(-100, Priority.CARD)] * 25)
    assert granted[19][1] == pytest.approx(0.0)
    assert granted[20][1] == pytest.approx(60.0)
    assert limiter.free(-100) == 15


async def test_a_sender_that_gives_up_frees_its_place() -> None:
    """A send cancelled while it waits takes no place in the window."""
    time = FakeTime()
    limiter = Limiter(global_rate=1.0, clock=time.clock, sleep=time.sleep)
    await limiter.acquire(1)  # holds the only place until answered
    waiting = asyncio.create_task(limiter.acquire(2))
    await asyncio.sleep(0)
    waiting.cancel()
    limiter.done(1)
    granted = await send_all(limiter, time, [(3, Priority.CARD)])
    assert granted == [(0, pytest.approx(1.0))]
    assert limiter.global_window.pending == 0


def test_a_window_lets_a_message_go_once_the_oldest_ages_out() -> None:
    """Two a second: a third waits until the first is a second old; one in flight holds its
    place until answered."""
    window = Window(limit=2, period=1.0)
    window.take()
    window.done(0.0)
    window.take()
    window.done(0.4)
    assert window.ready_at(0.5) == pytest.approx(1.0)
    assert window.ready_at(1.2) == pytest.approx(1.2)
    window.take()  # in flight, not yet answered
    assert window.ready_at(1.3) == pytest.approx(1.4)
    window.take()
    assert window.ready_at(1.5) == float("inf")


async def test_windows_of_chats_gone_quiet_are_forgotten() -> None:
    """Thousands of customers over a day: windows with nothing left in them are dropped."""
    time = FakeTime()
    limiter = Limiter(clock=time.clock, sleep=time.sleep)
    for chat in range(3000):
        await limiter.acquire(chat)
        limiter.done(chat)
        time.now += 0.05  # 20 a second
    assert len(limiter._windows) < 1100  # only chats of the last few seconds, roughly
    await limiter.acquire(2999)
    assert limiter.window(2999).pending == 1  # a live window is kept
