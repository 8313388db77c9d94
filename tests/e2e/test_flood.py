"""A shop's bad day: many customers at once, with the stand-in enforcing Telegram's limits."""

from __future__ import annotations

import asyncio
import re

import pytest

from bot.standin import BotApiStandIn, TelegramLimits
from tests.conftest import STAFF_CHAT
from tests.e2e.people import file_complaint, in_group, said

# Telegram's limits are the same whatever the database: these wait out real minutes of them,
# so they run on SQLite only (the database's part of a burst: test_restarts, bench/burst.py)
pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

REFERENCE = re.compile(r"T-\d{6}")

# Telegram's limits as the bot assumes them by default (the other tests widen them)
TELEGRAM_DEFAULTS = {"rate_per_chat": "1", "rate_chat_burst": "5", "rate_group_per_minute": "20"}


async def test_fifty_customers_at_once_all_get_a_first_reply(
    api: BotApiStandIn, start_bot
) -> None:
    """Fifty customers write in the same second: each gets the bot's first reply exactly once,
    and the bot stays inside Telegram's limits (no 429)."""
    api.limits = TelegramLimits()
    await start_bot(**TELEGRAM_DEFAULTS)
    customers = [api.person(8000 + i, f"顾客{i}", "zh") for i in range(50)]
    for customer in customers:
        customer.send("你好,我的花出问题了")
    replies = await asyncio.gather(
        *(said(api, customer, "哪一类问题", timeout=30) for customer in customers)
    )
    assert all("非常抱歉" in reply.text for reply in replies)
    for customer in customers:  # answered once: nothing lost, nothing doubled
        assert len(api.sent_to(customer.id)) == 1
    assert api.limits.refused == 0


async def test_a_429_under_the_limits_is_retried_not_lost(api: BotApiStandIn, start_bot) -> None:
    """Telegram answers 429 to one customer's first reply: the bot waits and sends the same
    reply again; everyone else is answered meanwhile."""
    api.limits = TelegramLimits()
    await start_bot(**TELEGRAM_DEFAULTS)
    unlucky = api.person(8100, "小运", "zh")
    others = [api.person(8101 + i, f"顾客{i}", "zh") for i in range(10)]
    api.inject("sendMessage", 429, retry_after=2, chat_id=unlucky.id)
    for customer in [unlucky, *others]:
        customer.send("你好")
    await asyncio.gather(*(said(api, c, "哪一类问题", timeout=30) for c in others))
    reply = await said(api, unlucky, "哪一类问题", timeout=30)
    assert "非常抱歉" in reply.text
    assert len(api.sent_to(unlucky.id)) == 1
    refused = [p for m, p in api.calls if m == "sendMessage" and p.get("chat_id") == unlucky.id]
    assert len(refused) == 2  # the 429, then the same reply again
    assert api.limits.refused == 0  # the bot caused no 429 of its own


async def test_many_tickets_at_once_reach_the_group_as_a_digest_then_as_cards(
    api: BotApiStandIn, start_bot
) -> None:
    """Five tickets submitted in the same second to a group that takes four messages a
    minute: the group gets a digest listing the tickets whose card must wait, each linked;
    a staff member opens one in a private chat; a reply to the digest reaches no customer;
    every card still arrives; no 429."""
    api.limits = TelegramLimits(group_per_minute=4)
    await start_bot(**{**TELEGRAM_DEFAULTS, "rate_group_per_minute": "4"})
    customers = [api.person(8200 + i, f"顾客{i}", "zh") for i in range(5)]
    await asyncio.gather(  # five people (one phone would make them one repeat customer)
        *(
            file_complaint(
                api, c, order=f"FS20261123{i:02}", phone=f"1380013800{i}", photos=(), submit=False
            )
            for i, c in enumerate(customers)
        )
    )
    mark = len(api.sent)
    for customer in customers:
        customer.tap("✅ 提交")
    confirmations = [await said(api, c, "投诉单号", mark, timeout=30) for c in customers]
    references = [REFERENCE.findall(c.text)[0] for c in confirmations]
    digest = await in_group(api, "同时进来", mark, timeout=30)
    listed = REFERENCE.findall(digest.text)
    cards = [s for s in api.sent_to(STAFF_CHAT) if "📋 投诉单" in s.text]
    carded_before = {REFERENCE.findall(card.text)[0] for card in cards}
    assert listed and set(listed) | carded_before == set(references)
    assert digest.links == [f"https://t.me/desk_bot?start={ref}" for ref in listed]

    staff = api.person(8300, "小王", "zh")
    api.groups[STAFF_CHAT].members.add(staff.id)
    staff.send(f"/start {listed[0]}")
    copy = await said(api, staff, listed[0])
    assert "只读副本" in copy.text and "经过" in copy.text

    stranger = api.person(8301, "路人", "zh")  # not staff: the link starts a complaint
    stranger.send(f"/start {listed[0]}")
    await said(api, stranger, "哪一类问题")
    assert not any(listed[0] in s.text for s in api.sent_to(stranger.id))

    staff.say_in_group(STAFF_CHAT, "这几单我来看", reply_to=digest.message_id)
    for ref in references:  # every ticket gets its card, as the group's limit allows
        await api.wait_for(
            lambda s, ref=ref: s.chat_id == STAFF_CHAT and "📋 投诉单" in s.text and ref in s.text,
            timeout=90,
        )
    # a reply to the digest is no reply to a customer (not even the first ticket it lists)
    await in_group(api, "这条没有发给客户", mark, timeout=90)
    assert not any("这几单我来看" in s.text for c in customers for s in api.sent_to(c.id))
    assert api.limits.refused == 0


async def test_a_customer_held_up_does_not_hold_up_a_newcomers_first_answer(
    api: BotApiStandIn, start_bot
) -> None:
    """One customer's update is stuck in the middle of its transaction (its database write
    done, Telegram slow to answer the next question); a new customer is answered meanwhile."""
    await start_bot()
    slow = api.person(8400, "小慢", "zh")
    slow.send("你好")
    await said(api, slow, "哪一类问题")
    slow.tap("花材质量")
    await said(api, slow, "订单号")
    api.slow_answer("sendMessage", 15.0, chat_id=slow.id)
    mark = len(api.sent)
    slow.send("FS2026112301")  # stored with the ticket; the next question waits for Telegram
    await said(api, slow, "发生了什么", mark)
    newcomer = api.person(8401, "小新", "zh")
    newcomer.send("你好")
    reply = await said(api, newcomer, "哪一类问题", timeout=8)  # well before the 15 s are up
    assert "非常抱歉" in reply.text


async def test_a_customer_whose_answer_must_wait_does_not_hold_up_another(
    api: BotApiStandIn, start_bot
) -> None:
    """A customer has had their share of messages for now, so the bot's next answer to them
    must wait its turn, with their words already stored: another customer in the middle of
    the intake is answered meanwhile (the database is not held through the wait)."""
    bot = await start_bot(rate_per_chat="0.5", rate_chat_burst="5")  # one per 2 s, 10 s window
    other = api.person(8500, "小等", "zh")
    other.send("你好")
    await said(api, other, "哪一类问题")
    busy = api.person(8501, "小急", "zh")
    busy.send("你好")
    await said(api, busy, "哪一类问题")
    busy.tap("花材质量")  # the buttons taken off (2) and the next question (3)
    await said(api, busy, "订单号")
    busy.send("FS2026112301")
    await said(api, busy, "发生了什么")  # 4
    busy.send("花送到的时候一半都蔫了")
    await said(api, busy, "照片")  # 5: the window is full for about 10 s
    mark = len(api.sent)
    busy.send("我没有照片")  # stored at once; the answer waits its turn
    await bot.handled()
    other.tap("花材质量")
    reply = await said(api, other, "订单号", mark, timeout=5)  # well before the 10 s
    assert "好的:花材质量" in reply.text
    assert not any(s.chat_id == busy.id for s in api.sent[mark:])  # still waiting, not lost
    await said(api, busy, "记下了", mark, timeout=40)


async def test_the_card_does_not_wait_behind_the_customers_own_confirmation(
    api: BotApiStandIn, start_bot
) -> None:
    """The customer's chat is at its limit when they submit: their confirmation waits its
    turn there, and the card reaches the staff group meanwhile (the group is not that chat)."""
    api.limits = TelegramLimits(private_rate=0.2, private_burst=3)
    await start_bot(rate_per_chat="0.2", rate_chat_burst="3")  # then one per 5 s
    customer = api.person(8600, "小快", "zh")
    customer.send("订单 FS2026112301 的花全蔫了,一半都不能看,电话 13800138000")
    await said(api, customer, "照片")  # 1
    customer.tap("没有照片,跳过")
    await said(api, customer, "请您核对")  # 2, and the buttons taken off: 3, the chat is full
    mark = len(api.sent)
    customer.tap("✅ 提交")
    card = await in_group(api, "投诉单 T-000001", mark, timeout=30)
    confirmation = await said(api, customer, "投诉单号", mark, timeout=60)
    assert api.sent.index(card) < api.sent.index(confirmation)  # the card did not wait for it
    assert api.limits.refused == 0


async def test_one_customer_flooding_does_not_hold_up_another_customers_card(
    api: BotApiStandIn, start_bot
) -> None:
    """One angry customer sends 120 short messages into their open ticket while another files
    a complaint: the second card reaches the group before the flood is through, and all 120
    messages reach staff, merged into a few messages that say how many they hold."""
    api.limits = TelegramLimits()
    await start_bot(**TELEGRAM_DEFAULTS)
    angry = api.person(8700, "小怒", "zh")
    await file_complaint(api, angry, photos=())
    mark = len(api.sent)
    for number in range(1, 121):
        angry.send(f"第{number}句")
    calm = api.person(8701, "小静", "zh")
    card = await file_complaint(api, calm, photos=())  # waits for its own card
    last = await in_group(api, "第120句", mark, timeout=150)
    assert api.sent.index(card) < api.sent.index(last)  # the card did not wait for the flood
    relayed = [s for s in api.sent_to(STAFF_CHAT)[0:] if "小怒" in s.text and "句" in s.text]
    said_all = "\n".join(s.text for s in relayed)
    assert all(f"第{n}句" in said_all for n in range(1, 121))  # nothing lost
    assert len(relayed) < 30  # merged, not one group message per customer message
    assert any("条消息" in s.text for s in relayed)  # a merged one says how many it holds
    assert api.limits.refused == 0
