"""The WeCom group robot that mirrors new cards and alerts: 20 messages a minute, a digest when
more wait, against the WeCom stand-in's webhook (which refuses the 21st of a minute)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bot.channels.base import Delivery, Passing
from bot.channels.wecom.robot import GroupRobot
from bot.domain.messages import Outgoing, Say, Urgency
from bot.standin.wecom import WeComStandIn

NOW = datetime(2026, 11, 23, 4, 0, tzinfo=UTC)


def row(number: int, text: str) -> Outgoing:
    return Outgoing(
        number, "mirror", "mirror", "mirror", number, "mirrored", Urgency.REPORT,
        {"say": Say(text).to_json()}, NOW, None, None,
    )  # fmt: skip


class Minutes:
    """A clock shared by the robot and the stand-in; sleeping moves both on at once."""

    def __init__(self, standin: WeComStandIn) -> None:
        self.now = 1000.0
        self.standin = standin
        self.slept: list[float] = []
        standin.clock = lambda: self.now

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def robot(wecom: WeComStandIn, clock: Minutes) -> GroupRobot:
    return GroupRobot(
        f"{wecom.base_url}/cgi-bin/webhook/send?key=shop-group",
        lambda count: f"【投诉台】{count} 条新动态:",
        clock=clock,
        sleep=clock.sleep,
    )


async def test_a_card_is_mirrored_as_plain_text(wecom: WeComStandIn) -> None:
    clock = Minutes(wecom)
    mirror = robot(wecom, clock)
    card = row(1, "📋 <b>投诉单 T-000001</b>\n客户:&lt;b&gt;小李 · 微信\n花全蔫了")

    outcome = await mirror.deliver([card], lambda: _none())
    await mirror.close()

    assert outcome.delivery is Delivery.SENT and outcome.rows == [1]
    [sent] = wecom.webhook_sent
    assert sent.key == "shop-group" and sent.msgtype == "text"
    assert sent.content == "📋 投诉单 T-000001\n客户:<b>小李 · 微信\n花全蔫了"


async def _none() -> list[Outgoing]:
    return []


async def test_past_twenty_a_minute_the_rest_go_as_one_digest(wecom: WeComStandIn) -> None:
    """25 alerts at once: 20 go one by one, the robot waits out the minute, then the 5 left
    go together; WeCom never refuses one and none is lost."""
    clock = Minutes(wecom)
    mirror = robot(wecom, clock)
    waiting = [row(n, f"⏰ T-{n:06d} 客户已经等了 10 分钟") for n in range(1, 26)]

    async def refresh() -> list[Outgoing]:
        return waiting

    covered: list[int] = []
    while waiting:
        outcome = await mirror.deliver([waiting[0]], refresh)
        assert outcome.delivery is Delivery.SENT
        covered += outcome.rows
        waiting = [r for r in waiting if r.id not in outcome.rows]
    await mirror.close()

    assert sorted(covered) == list(range(1, 26))
    assert len(wecom.webhook_sent) == 21
    digest = wecom.webhook_sent[-1].content
    assert digest.startswith("【投诉台】5 条新动态:")
    assert all(f"T-{n:06d}" in digest for n in range(21, 26))
    assert clock.slept and sum(clock.slept) <= 60


async def test_a_refusal_for_frequency_is_waited_out(wecom: WeComStandIn) -> None:
    """Another robot of the group used the minute up (45009): this one waits, then sends."""
    clock = Minutes(wecom)
    mirror = robot(wecom, clock)
    wecom.inject("webhook/send", 45009, "api freq out of limit")

    with pytest.raises(Passing):  # the sender tries again
        await mirror.deliver([row(1, "⚠️ T-000001")], _none)
    outcome = await mirror.deliver([row(1, "⚠️ T-000001")], _none)
    await mirror.close()

    assert outcome.delivery is Delivery.SENT
    assert clock.slept == [60.0]
    assert [m.content for m in wecom.webhook_sent] == ["⚠️ T-000001"]
