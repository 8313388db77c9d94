"""Only a ticket's own thread carries a reply to its customer: a reply to anything else the desk
says in the staff group (a /ticket printout, a batch alert, a digest) reaches no customer, and
the person who wrote it hears, in one line, how to answer one."""

from __future__ import annotations

from typing import Any

from bot.standin import BotApiStandIn, Person
from tests.conftest import MANAGER_ID, STAFF_CHAT
from tests.e2e.people import file_complaint, in_group, said

HINT = "这条没有发给客户"


def heard(api: BotApiStandIn, customer: Person, words: str) -> bool:
    return any(words in s.text for s in api.sent_to(customer.id))


async def test_a_reply_to_a_ticket_printout_reaches_no_customer(
    api: BotApiStandIn, start_bot: Any
) -> None:
    """A manager remarks on a /ticket printout by replying to it: the customer of that ticket
    never sees the remark, and the manager is told to reply to the card instead."""
    bot = await start_bot()
    customer = api.person(7001, "小明", "zh")
    card = await file_complaint(api, customer, photos=())
    manager = api.person(MANAGER_ID, "陈店长", "zh")
    mark = len(api.sent)
    manager.say_in_group(STAFF_CHAT, "/ticket T-000001")
    printout = await in_group(api, "T-000001 全程记录", mark)

    mark = len(api.sent)
    manager.say_in_group(STAFF_CHAT, "这个单子为什么拖了三天?", reply_to=printout.message_id)
    hint = await in_group(api, HINT, mark)
    assert "陈店长" in hint.text and "卡片" in hint.text
    await bot.settled()
    assert not heard(api, customer, "拖了三天")

    # the card itself still carries a reply to the customer
    manager.say_in_group(STAFF_CHAT, "您好,我们马上处理", reply_to=card.message_id)
    await said(api, customer, "我们马上处理")


async def test_a_reply_to_a_batch_alert_reaches_no_customer(
    api: BotApiStandIn, start_bot: Any
) -> None:
    """Three complaints about one product set off a batch alert; a reply to the alert reaches
    none of the three customers (not even the one whose complaint set it off)."""
    bot = await start_bot()
    staff = api.person(7101, "小王", "zh")
    customers = [api.person(7010 + i, f"顾客{i}", "zh") for i in range(3)]
    for customer in customers:
        card = await file_complaint(api, customer, photos=())
        mark = len(api.sent)
        staff.say_in_group(STAFF_CHAT, "/product 红玫瑰花束", reply_to=card.message_id)
        await in_group(api, "红玫瑰花束", mark)
    alert = await in_group(api, "批量问题提醒")
    assert "T-000003" in alert.text

    mark = len(api.sent)
    staff.say_in_group(STAFF_CHAT, "仓库那批花我去查一下", reply_to=alert.message_id)
    hint = await in_group(api, HINT, mark)
    assert "小王" in hint.text
    await bot.settled()
    assert not any(heard(api, c, "仓库那批花") for c in customers)


async def test_a_reply_to_an_alert_the_bot_has_not_heard_back_about_reaches_the_customer(
    api: BotApiStandIn, start_bot: Any
) -> None:
    """Staff answer an early alert (a safety word during the intake) the moment it appears,
    before Telegram's answer reaches the bot: the reply still reaches that customer."""
    await start_bot()
    api.slow_answer("sendMessage", 2.0, chat_id=STAFF_CHAT)  # the alert's answer comes late
    customer = api.person(7021, "张女士", "zh")
    customer.send("你好,孩子碰了你们的花以后过敏了")
    alert = await in_group(api, "重大投诉预警")
    staff = api.person(7121, "小王", "zh")
    mark = len(api.sent)
    staff.say_in_group(STAFF_CHAT, "张女士您好,店长马上联系您", reply_to=alert.message_id)
    await said(api, customer, "店长马上联系您", mark, timeout=30)
    assert not any(HINT in s.text for s in api.sent_to(STAFF_CHAT)[-3:])
