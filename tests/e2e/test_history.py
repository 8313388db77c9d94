"""The customer's history on the card: their earlier complaints by reference, category and
outcome; a third within the policy's window raises the severity and the managers hear of it;
one person across Telegram and WeChat by the phone number they gave."""

from __future__ import annotations

from typing import Any

from bot.standin import BotApiStandIn
from bot.standin.wecom import WeComStandIn
from tests.conftest import MANAGER_ID, STAFF_CHAT
from tests.e2e.people import file_complaint, in_group, said

MANAGER_LINK = f"tg://user?id={MANAGER_ID}"


async def test_a_third_complaint_within_the_window_is_raised_and_the_managers_told(
    api: BotApiStandIn, start_bot: Any
) -> None:
    await start_bot()
    customer = api.person(8801, "小冯", "zh")
    manager = api.person(MANAGER_ID, "陈店长", "zh")
    first = await file_complaint(api, customer, photos=(), story="花有点蔫")
    assert "投诉过" not in first.text  # a first complaint has no history
    manager.tap("✅ 直接结案(不补偿)", chat_id=STAFF_CHAT)
    await said(api, customer, "已经处理完毕")

    second = await file_complaint(api, customer, photos=(), order="FS2026112398")
    assert "90 天内投诉过 1 次:T-000001 花材质量" in second.text
    assert "上调" not in second.text
    mark = len(api.sent)
    manager.tap("✅ 直接结案(不补偿)", chat_id=STAFF_CHAT)
    await said(api, customer, "已经处理完毕", mark)

    mark = len(api.sent)
    third = await file_complaint(api, customer, photos=(), order="FS2026112397")
    assert "90 天内投诉过 2 次:T-000002 花材质量" in third.text and "T-000001" in third.text
    assert "30 天内第 3 次投诉,等级已上调一级" in third.text
    alert = await in_group(api, "第 3 次投诉,等级已上调一级。", mark)
    assert MANAGER_LINK in alert.links and "T-000003" in alert.text


async def test_one_customer_on_telegram_and_wechat_by_their_phone_is_one_history(
    api: BotApiStandIn, wecom: WeComStandIn, start_bot: Any
) -> None:
    """A customer complained on Telegram leaving their phone; later they write from WeChat and
    give the same number: the WeChat ticket's card names the Telegram one."""
    from tests.e2e.people import callback_url, start_wechat_desk
    from tests.e2e.test_wechat import CUSTOMER, menu_id, said_to

    bot = await start_wechat_desk(start_bot, wecom)
    wecom.set_callback(callback_url(bot))
    on_telegram = api.person(8802, "小冯", "zh")
    await file_complaint(api, on_telegram, photos=(), phone="13800138000")

    customer = wecom.customer(CUSTOMER, "冯先生")
    customer.say("你好,我订的生日花束全都蔫了,订单号 FS2026112301")
    first = await said_to(wecom, "非常抱歉")
    mark = len(wecom.sent)
    customer.tap_menu(menu_id(first, "没有照片,跳过"), "没有照片,跳过")
    await said_to(wecom, "怎么联系您", mark)
    mark = len(wecom.sent)
    customer.say("138-0013-8000")
    summary = await said_to(wecom, "请您核对", mark)
    mark = len(api.sent)
    customer.tap_menu(menu_id(summary, "✅ 提交"), "✅ 提交")
    card = await in_group(api, "投诉单 T-000002", mark, timeout=20)
    assert "90 天内投诉过 1 次:T-000001" in card.text
    assert "T-000001 还没处理完" in card.text  # the Telegram one is still open


async def test_history_in_a_thread_lists_the_customer_s_tickets_and_opens_one(
    api: BotApiStandIn, start_bot: Any
) -> None:
    """`/history` as a reply to the card: the customer's tickets, newest first, with how each
    ended; a tap on an earlier one shows its card; forged data gets the stale answer."""
    await start_bot()
    customer = api.person(8803, "小褚", "zh")
    staff = api.person(8903, "小王", "zh")
    manager = api.person(MANAGER_ID, "陈店长", "zh")
    await file_complaint(api, customer, photos=())
    manager.tap("✅ 直接结案(不补偿)", chat_id=STAFF_CHAT)
    await said(api, customer, "已经处理完毕")
    card = await file_complaint(api, customer, photos=(), order="FS2026112396")

    mark = len(api.sent)
    staff.say_in_group(STAFF_CHAT, "/history", reply_to=card.message_id)
    listed = await in_group(api, "这位顾客的投诉记录(共 2 单", mark)
    lines = listed.text.splitlines()
    assert lines[1].startswith("T-000002") and "就是这一单" in lines[1]
    assert lines[2].startswith("T-000001") and "已解决" in lines[2]
    assert listed.buttons() == ["T-000001"]

    mark = len(api.sent)
    staff.tap("T-000001", chat_id=STAFF_CHAT)
    shown = await in_group(api, "这位顾客之前的一单", mark)
    assert "投诉单 T-000001" in shown.text and "FS2026112301" in shown.text
    forged = api.tap_data(staff, STAFF_CHAT, listed.message_id, "t:hist:2:99")
    assert (await api.wait_answer(forged))["text"] == "这个按钮已经失效了,请看最新的消息。"

    mark = len(api.sent)
    staff.say_in_group(STAFF_CHAT, "/history")  # not in a thread: which ticket?
    await in_group(api, "这样才知道是哪一单", mark)
