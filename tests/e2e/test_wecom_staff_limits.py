"""The WeCom staff room's outbound side within WeCom's rules: each member receives at most 30
messages a minute and 1000 an hour from the app (the excess is dropped without a word), so the
desk counts, announces waiting cards in a digest and merges a customer's flood."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from bot.standin.wecom import WeComStandIn
from tests.e2e.test_wechat import menu_id, said_to
from tests.e2e.test_wecom_staff import card_of, complaint_filed, key_of, start_all_wecom, told


class SharedTime:
    """The stand-in's clock and the desk's per-member count on one time that a wait moves on
    at once: minutes of WeCom's limits pass without a test waiting for them."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset

    async def sleep(self, seconds: float) -> None:
        target = self() + seconds
        self.offset = max(self.offset, target - time.time())
        await asyncio.sleep(0)


def on_shared_time(bot: Any, wecom: WeComStandIn) -> SharedTime:
    shared = SharedTime()
    wecom.clock = shared
    bot.app.wecom_staff.pace.clock = shared
    bot.app.wecom_staff.pace.sleep = shared.sleep
    return shared


async def files(wecom: WeComStandIn, userid: str, order: str) -> None:
    """A WeChat customer files a complaint with no photo, waiting on each answer."""

    def to_me(needle: str, after: int) -> Any:
        return wecom.wait_sent(
            lambda s: s.touser == userid and needle in (s.text or str(s.menu or "")),
            timeout=60,
            after=after,
        )

    customer = wecom.customer(userid, f"客户{userid[-2:]}")
    mark = len(wecom.sent)
    customer.say(f"你好,我订的生日花束全都蔫了,订单号 {order}")
    first = await to_me("照片", mark)
    mark = len(wecom.sent)
    customer.tap_menu(menu_id(first, "没有照片,跳过"), "没有照片,跳过")
    await to_me("怎么联系您", mark)
    mark = len(wecom.sent)
    customer.say("13800138000")
    summary = await to_me("请您核对", mark)
    mark = len(wecom.sent)
    customer.tap_menu(menu_id(summary, "✅ 提交"), "✅ 提交")
    await to_me("投诉单号是", mark)


async def test_forty_complaints_at_once_stay_within_each_members_minute(
    wecom: WeComStandIn, start_bot: Any
) -> None:
    """40 WeChat customers complain at once with 2 staff and a manager: WeCom drops nothing,
    and every ticket reaches every member as a card, the busy ones announced first in a
    digest."""
    members = [wecom.staff("zhangsan", "张三"), wecom.staff("lisi", "李四"), wecom.staff("boss")]
    bot = await start_all_wecom(start_bot, wecom)
    on_shared_time(bot, wecom)
    await asyncio.gather(
        *(files(wecom, f"wmMANY{i:04d}", f"FS20261123{i:02d}") for i in range(40))
    )
    await bot.settled()
    references = {f"T-{i:06d}" for i in range(1, 41)}
    digested = 0
    for member in members:
        assert member.dropped == 0
        received = member.received()
        carded = {r for r in references for m in received if m.card and r in m.title}
        assert carded == references, member.userid
        digested += sum("同时进来" in m.text for m in received)
        assert all(r in " ".join(m.text for m in received) for r in references)
    # 80 messages a member at once fill a minute: someone's cards were announced in a digest
    # first (which members, depends on how the intakes interleave on a busy machine)
    assert digested


async def test_a_customers_flood_reaches_the_member_merged(
    wecom: WeComStandIn, start_bot: Any
) -> None:
    """A customer sends 15 messages quickly: the member on the ticket gets every one, marked
    with the reference, in far fewer messages, and WeCom drops none."""
    zhang = wecom.staff("zhangsan", "张三")
    wecom.staff("lisi", "李四"), wecom.staff("boss")
    bot = await start_all_wecom(start_bot, wecom)
    await files(wecom, "wmFLOOD01", "FS2026112301")
    card = await card_of(wecom, zhang)
    mark = len(wecom.app_sent)
    zhang.tap(card, key_of(card, "🙋"))
    await told(wecom, zhang, "由你跟进", mark)
    await bot.settled()
    mark = len(wecom.app_sent)
    customer = wecom.customer("wmFLOOD01")
    for i in range(1, 16):
        customer.say(f"补充第{i}条:花是昨天下午送到的")
    needles = [f"补充第{i}条" for i in range(1, 16)]

    def relays() -> list[Any]:
        return [
            m
            for m in wecom.app_sent[mark:]
            if m.touser == "zhangsan" and any(n in m.text for n in needles)
        ]

    await wecom.until(lambda: all(any(n in m.text for m in relays()) for n in needles), timeout=30)
    await bot.settled()
    assert len(relays()) <= 5
    assert all("T-000001" in m.text for m in relays())
    assert any("合并成一条" in m.text for m in relays())
    assert zhang.dropped == 0


async def test_an_untrusted_address_is_said_once_and_the_cards_wait_for_it(
    wecom: WeComStandIn, start_bot: Any, caplog: Any
) -> None:
    """While WeCom answers 60020 the desk logs one line naming the address to add to the
    app's 企业可信IP, not one per try, and keeps the card; once added, the card arrives."""
    zhang = wecom.staff("zhangsan", "张三")
    wecom.staff("lisi", "李四"), wecom.staff("boss")
    bot = await start_all_wecom(start_bot, wecom)
    bot.app.sender.retry_first, bot.app.sender.retry_most = 0.05, 0.1
    wecom.trusted_ips = True
    await complaint_filed(wecom)
    await wecom.wait_calls("message/send", 5)
    lines = [r for r in caplog.records if "企业可信IP" in r.getMessage()]
    assert len(lines) == 1
    assert wecom.outgoing_ip in lines[0].getMessage() and lines[0].exc_info is None
    assert not zhang.received()
    wecom.trusted_ips = False
    await card_of(wecom, zhang)
    await bot.settled()
    assert sum(1 for r in caplog.records if "企业可信IP" in r.getMessage()) == 1


async def test_the_customer_reads_the_members_name_not_the_userid(
    wecom: WeComStandIn, start_bot: Any
) -> None:
    """A member's answer reaches the customer signed with the name WeCom knows them by (张三),
    and the others' cards say 张三 has the ticket."""
    zhang, li = wecom.staff("zhangsan", "张三"), wecom.staff("lisi", "李四")
    wecom.staff("boss", "陈店长")
    bot = await start_all_wecom(start_bot, wecom)
    await complaint_filed(wecom)
    card, other = await card_of(wecom, zhang), await card_of(wecom, li)
    mark = len(wecom.app_sent)
    zhang.tap(card, key_of(card, "🙋"))
    await told(wecom, zhang, "由你跟进", mark)
    mark_customer = len(wecom.sent)
    zhang.say("您好,非常抱歉,我们马上为您处理")
    answer = await said_to(wecom, "马上为您处理", mark_customer)
    assert "张三" in answer.text and "zhangsan" not in answer.text
    await bot.settled()
    assert li.card(other.task_id or "").replaced_name == "张三 跟进中"
