"""What the WeCom channel keeps in memory grows with its traffic, not with every customer it
ever had: windows of customers quiet for 48 hours are dropped, and both the windows and the
nicknames have a bound that holds."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import pytest

from bot.channels.base import Delivery
from bot.channels.wecom.adapter import (
    BUDGET,
    WINDOW,
    Nicknames,
    WeComCustomers,
    Windows,
)
from bot.domain.messages import Outgoing, Say, Urgency


class Clock:
    """The windows' clock, moved by hand."""

    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class NoClient:
    """The kf API, never reached in these tests."""

    async def send_msg(self, body: dict[str, Any]) -> str:
        raise AssertionError("nothing may be sent")


async def no_fetch(_attachment: object) -> bytes:
    raise AssertionError("nothing to fetch")


def message_to(who: str) -> Outgoing:
    return Outgoing(
        1,
        "wecom",
        who,
        f"wecom:{who}",
        None,
        "text",
        Urgency.RELAY,
        {"say": Say("您好").to_json()},
        datetime.now(UTC),
        None,
        None,
    )


def test_windows_of_customers_quiet_for_48_hours_are_dropped_as_others_write() -> None:
    """A thousand customers wrote two days ago; the next customer's message leaves only
    windows that are still open."""
    clock = Clock()
    windows = Windows(clock=clock)
    for n in range(1000):
        windows.customer_wrote(f"wm{n}", clock.now)
    clock.now += 3600
    windows.customer_wrote("wm-recent", clock.now)
    assert len(windows.by_customer) == 1001  # all still open
    clock.now += WINDOW - 1800  # the thousand are past 48 hours, the recent one is not
    windows.customer_wrote("wm-new", clock.now)
    assert set(windows.by_customer) == {"wm-recent", "wm-new"}
    assert windows.evicted == 0


def test_a_dropped_window_answers_as_a_kept_closed_one_would() -> None:
    """Once 48 hours have passed, nothing may be sent, whether the window is kept or not."""
    clock = Clock()
    windows = Windows(clock=clock)
    windows.customer_wrote("wm1", clock.now)
    kept = windows.of("wm1")
    clock.now += WINDOW + 1
    windows.customer_wrote("wm2", clock.now)  # wm1 is dropped here
    assert "wm1" not in windows.by_customer
    assert windows.get("wm1").left(clock.now) == kept.left(clock.now) == 0
    windows.customer_wrote("wm1", clock.now)  # and when they write again, five once more
    assert windows.get("wm1").left(clock.now) == BUDGET


def test_the_bound_holds_in_a_flood_and_the_most_recent_stay(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Past the bound, the least recently active open windows go, with a warning."""
    clock = Clock()
    windows = Windows(most=100, clock=clock)
    with caplog.at_level(logging.WARNING, logger="bot.channels.wecom.adapter"):
        for n in range(1000):
            windows.customer_wrote(f"wm{n}", clock.now)
            clock.now += 1
            assert len(windows.by_customer) <= 100
    assert list(windows.by_customer) == [f"wm{n}" for n in range(900, 1000)]
    assert windows.evicted == 900
    assert any("windows dropped" in r.getMessage() for r in caplog.records)
    assert len(caplog.records) == 1  # the first only, not one line a customer


def test_a_customer_who_writes_again_is_kept_over_quieter_ones() -> None:
    """The order is by the customer's last message, not by the first."""
    clock = Clock()
    windows = Windows(most=3, clock=clock)
    for who in ("wm1", "wm2", "wm3"):
        windows.customer_wrote(who, clock.now)
    windows.customer_wrote("wm1", clock.now + 1)
    windows.customer_wrote("wm4", clock.now + 2)
    assert list(windows.by_customer) == ["wm3", "wm1", "wm4"]


def test_a_welcome_keeps_its_window_only_while_it_may_be_used() -> None:
    """A customer who opened the chat and said nothing is kept for the welcome's seconds."""
    clock = Clock()
    windows = Windows(clock=clock)
    windows.welcomed("wm-guest", "code-1", clock.now)
    windows.customer_wrote("wm2", clock.now)
    assert "wm-guest" in windows.by_customer
    assert windows.get("wm-guest").welcome_valid(clock.now)
    clock.now += 60
    windows.customer_wrote("wm3", clock.now)
    assert "wm-guest" not in windows.by_customer


async def test_a_message_to_a_customer_without_a_window_keeps_nothing() -> None:
    """Refused as late, as before, and no window is made for the customer."""
    windows = Windows()
    channel = WeComCustomers(NoClient(), "wk1", windows, no_fetch)  # type: ignore[arg-type]

    async def refresh() -> list[Outgoing]:
        raise AssertionError("no refresh")

    outcome = await channel.deliver([message_to("wm-gone")], refresh)
    assert outcome.delivery is Delivery.FAILED and outcome.detail == "window: late"
    assert windows.by_customer == {}


def test_nicknames_keep_the_most_recently_used_within_their_bound() -> None:
    """The bound holds; a name in use is kept, the longest unused goes first."""
    names = Nicknames(most=3)
    for n in range(3):
        names.put(f"wm{n}", f"客户{n}")
    assert names.get("wm0") == "客户0"  # used: now the most recent
    names.put("wm3", "客户3")
    assert len(names) == 3
    assert "wm1" not in names and "wm0" in names
    for n in range(4, 1000):
        names.put(f"wm{n}", f"客户{n}")
        assert len(names) <= 3
    assert names.get("wm999") == "客户999"
    assert names.get("wm0") is None  # asked of WeCom again when they next write
