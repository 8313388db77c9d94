"""Nothing is lost to a stop or a crash: the inbox, the dialogue state, the pending relays."""

from __future__ import annotations

from bot.standin import BotApiStandIn
from tests.e2e.people import said


async def test_messages_written_while_the_bot_was_down_are_answered(
    api: BotApiStandIn, start_bot
) -> None:
    """Pending updates are not dropped at start."""
    early = api.person(4001, "早到的客户", "zh")
    early.send("你好,我的花还没到")
    await start_bot()
    await said(api, early, "非常抱歉")


async def test_kill_9_in_the_middle_of_the_intake_resumes_at_the_same_step(
    api: BotApiStandIn, start_bot_process
) -> None:
    """The dialogue state lives in the database: after kill -9 the customer goes on."""
    bot = await start_bot_process()
    customer = api.person(4002, "小陈", "zh")
    customer.send("你好")
    await said(api, customer, "哪一类问题")
    mark = len(api.sent)
    customer.tap("配送延误")
    await said(api, customer, "订单号", mark)  # sent only once the tap's work is committed
    bot.kill9()

    await start_bot_process()
    mark = len(api.sent)
    customer.send("FS2026112377")
    await said(api, customer, "发生了什么", mark)
    mark = len(api.sent)
    customer.send("说好中午送到,下午三点还没到")
    await said(api, customer, "照片", mark)
    mark = len(api.sent)
    customer.tap("没有照片,跳过")
    await said(api, customer, "怎么联系您", mark)
    mark = len(api.sent)
    customer.send("13700001111")
    summary = await said(api, customer, "请您核对", mark)
    assert "配送延误" in summary.text and "FS2026112377" in summary.text


async def test_kill_9_during_a_burst_loses_no_customer(
    api: BotApiStandIn, start_bot_process
) -> None:
    """Sixty customers write, the bot is killed with handlers in flight; after the restart
    every one of them has been answered."""
    api.latency = 0.25  # each send takes a while, so many handlers are in flight at the kill
    bot = await start_bot_process()
    customers = [api.person(5000 + i, f"客户{i}", "zh") for i in range(60)]
    for customer in customers:
        customer.send(f"你好,我是第{customer.id}号客户,花有问题")
    await api.wait_confirmed(timeout=30)  # Telegram has been told it may forget them
    answered = {s.chat_id for s in api.sent if "非常抱歉" in s.text}
    assert len(answered) < len(customers)  # the kill lands with work in flight
    bot.kill9()

    api.latency = 0.0
    await start_bot_process()
    for customer in customers:
        await said(api, customer, "非常抱歉", timeout=60)
    firsts = [s.chat_id for s in api.sent if "非常抱歉" in s.text]
    assert sorted(firsts) == sorted(c.id for c in customers)  # each answered once, none twice


async def test_kill_9_while_relaying_staff_replies_repeats_at_most_the_one_in_flight(
    api: BotApiStandIn, start_bot_process
) -> None:
    """Staff send 24 replies to one customer; the bot is killed halfway through relaying them;
    after the restart every reply has reached the customer, at most one of them twice."""
    from tests.conftest import STAFF_CHAT
    from tests.e2e.people import file_complaint

    bot = await start_bot_process()
    customer = api.person(4010, "小周", "zh")
    staff = api.person(4110, "小王", "zh")
    card = await file_complaint(api, customer, photos=())
    api.latency = 0.25  # each send takes a while: the customer's lane is mid-way at the kill
    mark = len(api.sent)
    for number in range(1, 25):
        staff.say_in_group(STAFF_CHAT, f"第{number}条回复", reply_to=card.message_id)
    await api.wait_confirmed(timeout=30)
    await said(api, customer, "第6条回复", mark, timeout=30)
    bot.kill9()
    relayed_before = sum(1 for s in api.sent[mark:] if "条回复" in s.text)
    assert relayed_before < 24  # the kill lands with replies still to go

    api.latency = 0.0
    await start_bot_process()
    await said(api, customer, "第24条回复", mark, timeout=60)
    replies = [s.text.split("\n")[-1] for s in api.sent[mark:] if "条回复" in s.text]
    assert {f"第{n}条回复" for n in range(1, 25)} == set(replies)  # nothing lost
    assert len(replies) <= 25  # at most the one in flight at the kill came twice


async def test_a_card_the_group_refused_is_posted_at_the_next_start(
    api: BotApiStandIn, start_bot
) -> None:
    """No submitted complaint stays invisible to staff."""
    from tests.conftest import STAFF_CHAT
    from tests.e2e.people import in_group

    bot = await start_bot()
    api.inject("sendMessage", 400, "Bad Request: chat not found", count=1, chat_id=STAFF_CHAT)
    customer = api.person(4003, "小黄", "zh")
    customer.send("订单 FS2026112301 的花全蔫了,一半都不能看,电话 13800138000")
    await said(api, customer, "照片")
    mark = len(api.sent)
    customer.tap("没有照片,跳过")
    await said(api, customer, "请您核对", mark)
    mark = len(api.sent)
    customer.tap("✅ 提交")
    await said(api, customer, "投诉单号", mark)
    await bot.settled()
    assert api.sent_to(STAFF_CHAT) == []
    await bot.stop()
    await start_bot()
    card = await in_group(api, "投诉单 T-000001")
    assert "小黄" in card.text
