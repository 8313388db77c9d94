"""The per-member count of what the WeCom app sends: 30 a minute, 1000 an hour."""

from __future__ import annotations

from bot.channels.wecom.pace import MemberPace


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


async def test_the_31st_message_of_a_minute_waits_for_the_first_to_leave_the_window() -> None:
    """30 go at once; the 31st waits until a minute after the first was answered."""
    clock = Clock()
    pace = MemberPace(clock=clock, sleep=clock.sleep)
    for _ in range(30):
        await pace.take(["a"])
        pace.sent(["a"])
        clock.now += 0.5
    assert pace.free("a") == 0 and pace.free("b") == 30
    await pace.take(["a", "b"])
    assert clock.now >= 1060.0 and clock.slept


async def test_a_reserve_is_kept_and_an_unused_place_given_back() -> None:
    """A send that leaves a reserve waits while only the reserve is free; a failed send's
    place is free again."""
    clock = Clock()
    pace = MemberPace(per_minute=3, clock=clock, sleep=clock.sleep)
    await pace.take(["a"])
    pace.unused(["a"])
    assert pace.free("a") == 3
    await pace.take(["a"], reserve=2)
    pace.sent(["a"])
    await pace.take(["a"], reserve=1)
    pace.sent(["a"])
    assert clock.slept == []
    await pace.take(["a"], reserve=1)
    assert clock.slept


async def test_the_hour_counts_too() -> None:
    """Past 1000 in an hour the next waits for the hour's oldest to leave it."""
    clock = Clock()
    pace = MemberPace(per_minute=10_000, per_hour=5, clock=clock, sleep=clock.sleep)
    for _ in range(5):
        await pace.take(["a"])
        pace.sent(["a"])
    await pace.take(["a"])
    assert clock.now >= 1000.0 + 3600
