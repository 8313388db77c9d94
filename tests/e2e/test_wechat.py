"""WeChat customers through WeCom customer service, end to end: the WeCom stand-in calls the
desk back as WeCom does, the customer answers by tapping menus, staff work in the Telegram
group."""

from __future__ import annotations

from typing import Any

from bot.standin import BotApiStandIn
from bot.standin.wecom import WeComStandIn
from tests.conftest import MANAGER_ID, STAFF_CHAT
from tests.e2e.people import callback_url, in_group, start_wechat_desk

CUSTOMER = "wmSTANDINcustomer01"


async def start_desk(start_bot: Any, wecom: WeComStandIn, **settings: str) -> Any:
    bot = await start_wechat_desk(start_bot, wecom, **settings)
    wecom.set_callback(callback_url(bot))
    return bot


def menu_id(sent: Any, label: str) -> str:
    """The id of the menu item with this label, in a message the customer got."""
    for item in (sent.menu or {}).get("list", []):
        click = item.get("click") or {}
        if click.get("content") == label:
            return str(click["id"])
    raise LookupError(f"no menu item {label!r} in {sent}")


def words(sent: Any) -> str:
    return str(sent.text or (sent.menu or {}).get("head_content") or "")


async def said_to(wecom: WeComStandIn, needle: str, after: int = 0) -> Any:
    return await wecom.wait_sent(
        lambda s: s.touser == CUSTOMER and needle in words(s), timeout=20, after=after
    )


async def test_a_wechat_customer_files_a_complaint_and_staff_settle_it(
    api: BotApiStandIn, wecom: WeComStandIn, start_bot: Any
) -> None:
    """Order number and photo from WeChat: the card (marked WeChat, with the photo) reaches the
    staff group; a staff reply reaches the customer; the manager's remedy comes as a menu and
    the customer's tap is confirmed. The shop's WeCom group gets a copy of the new card."""
    await start_desk(
        start_bot,
        wecom,
        wecom_group_webhook=f"{wecom.base_url}/cgi-bin/webhook/send?key=shop-group",
    )
    customer = wecom.customer(CUSTOMER, "小李")
    customer.say("你好,我订的生日花束全都蔫了,订单号 FS2026112301")
    first = await said_to(wecom, "非常抱歉")
    assert "照片" in words(first)  # the order number and the story were understood
    assert "没有照片,跳过" in [i["click"]["content"] for i in first.menu["list"]]

    photo = wecom.add_media(b"\xff\xd8 a wilted bouquet", kind="image")
    mark = len(wecom.sent)
    customer.send_image(photo)
    ack = await said_to(wecom, "已经收到 1 张照片", mark)
    mark = len(wecom.sent)
    customer.tap_menu(menu_id(ack, "✅ 照片发完了"), "✅ 照片发完了")
    contact = await said_to(wecom, "怎么联系您", mark)
    assert "📱 分享我的手机号" not in str(contact.menu)  # WeChat cannot share a number
    mark = len(wecom.sent)
    customer.say("13800138000")
    summary = await said_to(wecom, "请您核对", mark)
    mark = len(wecom.sent)
    customer.tap_menu(menu_id(summary, "✅ 提交"), "✅ 提交")
    await said_to(wecom, "投诉单号是 T-000001", mark)

    card = await in_group(api, "投诉单 T-000001", timeout=20)
    assert "微信" in card.text and "FS2026112301" in card.text
    assert "小李" in card.text  # the WeChat nickname (kf/customer/batchget)
    mirrored = await wecom.wait_webhook(lambda m: "T-000001" in m.content, timeout=20)
    assert mirrored.key == "shop-group" and "FS2026112301" in mirrored.content
    group_photo = await api.wait_for(lambda s: s.chat_id == STAFF_CHAT and s.kind == "photo")
    assert group_photo.file_id.startswith("upload:")  # fetched from WeCom, posted to Telegram
    assert b"a wilted bouquet" in api.uploads[-1][1]

    staff = api.person(9701, "小王", "zh")
    mark = len(wecom.sent)
    staff.say_in_group(STAFF_CHAT, "您好,我是小王,马上为您处理", reply_to=card.message_id)
    reply = await said_to(wecom, "马上为您处理", mark)
    assert reply.msgtype == "text" and "小王" in reply.text

    manager = api.person(MANAGER_ID, "陈店长", "zh")
    mark = len(wecom.sent)
    manager.tap("补偿方案:中等", chat_id=STAFF_CHAT)
    offer = await wecom.wait_sent(
        lambda s: s.touser == CUSTOMER and s.msgtype == "msgmenu", timeout=20, after=mark
    )
    option = "今天下午重做并送达"
    mark = len(wecom.sent)
    customer.tap_menu(menu_id(offer, option), option)
    await said_to(wecom, "已经为您安排", mark)
    await in_group(api, "客户选择了「今天下午重做并送达」")


async def test_a_message_pulled_twice_and_a_forged_callback_change_nothing(
    api: BotApiStandIn, wecom: WeComStandIn, start_bot: Any
) -> None:
    """A page pulled again (the stored cursor lost) stores no message twice and answers none
    twice; a callback with a bad signature is refused with 403 and nothing is stored."""
    bot = await start_desk(start_bot, wecom)
    customer = wecom.customer(CUSTOMER, "小李")
    customer.say("你好")
    await said_to(wecom, "非常抱歉")
    await bot.settled()

    from sqlalchemy import delete

    from storage.models import WeComCursorRow

    async with bot.app.new_uow() as uow:  # as if the cursor had never been stored
        await uow.session.execute(delete(WeComCursorRow))
        await uow.commit()
        stored = await uow.wecom.count()
    mark = len(wecom.sent)
    customer.say("花全蔫了,叶子也黄了,太让人失望了")
    await said_to(wecom, "订单号", mark)  # its words named the category: next question
    await bot.settled()
    async with bot.app.new_uow() as uow:
        assert await uow.wecom.count() == stored + 1  # only the new message
    assert len([s for s in wecom.sent_to(CUSTOMER) if "非常抱歉" in words(s)]) == 1

    assert await wecom.post_forged_callback() == 403
    await bot.settled()
    async with bot.app.new_uow() as uow:
        assert await uow.wecom.count() == stored + 1


async def test_past_wechats_five_messages_staff_are_told_to_call_until_the_customer_writes(
    api: BotApiStandIn, wecom: WeComStandIn, start_bot: Any
) -> None:
    """WeChat allows 5 messages after each customer message: a staff reply past them is not
    lost silently (staff are told to call, with the phone number); once the customer writes
    again, replies reach them again."""
    await start_desk(start_bot, wecom)
    customer = wecom.customer(CUSTOMER, "小李")
    customer.say("订单 FS2026112301 的花全蔫了,一半都不能看,电话 13800138000")
    first = await said_to(wecom, "照片")
    customer.tap_menu(menu_id(first, "没有照片,跳过"), "没有照片,跳过")
    summary = await said_to(wecom, "请您核对")
    mark = len(wecom.sent)
    customer.tap_menu(menu_id(summary, "✅ 提交"), "✅ 提交")  # the customer's last message
    await said_to(wecom, "投诉单号", mark)  # 1 of 5
    card = await in_group(api, "投诉单 T-000001", timeout=20)

    staff = api.person(9702, "小王", "zh")
    for number in range(1, 5):  # 2 to 5 of 5
        mark = len(wecom.sent)
        staff.say_in_group(STAFF_CHAT, f"第{number}条回复", reply_to=card.message_id)
        await said_to(wecom, f"第{number}条回复", mark)
    staff.say_in_group(STAFF_CHAT, "第5条回复", reply_to=card.message_id)
    told = await in_group(api, "5 条已经用完", timeout=20)
    assert "13800138000" in told.text
    assert not any("第5条回复" in words(s) for s in wecom.sent_to(CUSTOMER))

    mark = len(wecom.sent)
    customer.say("好的,我等你们电话")
    await in_group(api, "我等你们电话")
    staff.say_in_group(STAFF_CHAT, "第6条回复", reply_to=card.message_id)
    await said_to(wecom, "第6条回复", mark)


async def test_wecom_busy_or_away_for_a_while_delays_a_reply_but_loses_it_not(
    api: BotApiStandIn, wecom: WeComStandIn, start_bot: Any
) -> None:
    """kf/send_msg answers "system busy" and then HTTP 502 more often than the sender used to
    try: the customer's answer waits, then arrives once."""
    bot = await start_desk(start_bot, wecom)
    bot.app.sender.retry_first = bot.app.sender.retry_most = 0.02  # minutes, made short
    customer = wecom.customer(CUSTOMER, "小李")
    customer.say("你好")
    await said_to(wecom, "非常抱歉")
    await bot.settled()
    busy = wecom.inject("kf/send_msg", -1, count=4)
    away = wecom.inject_http("kf/send_msg", 502, count=4)
    mark = len(wecom.sent)
    customer.say("FS2026112301")
    answer = await said_to(wecom, "选一下问题类型", mark)
    await bot.settled()
    assert busy.count == 0 and away.count == 0
    assert sum("选一下问题类型" in words(s) for s in wecom.sent[mark:]) == 1
    assert answer.touser == CUSTOMER
