"""An all-WeCom shop: WeChat customers, and staff and managers in the shop's WeCom app, with no
Telegram at all. The WeCom stand-in plays the app and its members."""

from __future__ import annotations

from typing import Any

from bot.standin.wecom import AppMessage, Staff, WeComStandIn
from tests.e2e.people import start_wechat_desk
from tests.e2e.test_wechat import CUSTOMER, menu_id, said_to

STAFF_IDS = "zhangsan,lisi"
MANAGER_IDS = "boss"


async def start_all_wecom(start_bot: Any, wecom: WeComStandIn, **settings: Any) -> Any:
    """The desk with no BOT_TOKEN: WeChat customers, the staff room in the WeCom app (and any
    other `settings`); the stand-in calls back."""
    bot = await start_wechat_desk(
        start_bot,
        wecom,
        bot_token="",
        staff_chat_id="",
        manager_ids="",
        **{**wecom.app_settings(STAFF_IDS.split(","), MANAGER_IDS.split(",")), **settings},
    )
    assert bot.app.telegram is None
    port = bot.app.callback_port()
    wecom.set_callback(f"http://127.0.0.1:{port}/wecom/callback")
    wecom.set_app_callback(f"http://127.0.0.1:{port}/wecom/app")
    return bot


async def start_telegram_with_wecom_staff(start_bot: Any, wecom: WeComStandIn) -> Any:
    """Customers on Telegram, the staff room in the WeCom app (no Telegram group)."""
    bot = await start_bot(
        staff_chat_id="",
        manager_ids="",
        **wecom.app_settings(STAFF_IDS.split(","), MANAGER_IDS.split(",")),
    )
    wecom.set_app_callback(f"http://127.0.0.1:{bot.app.callback_port()}/wecom/app")
    return bot


async def complaint_filed(wecom: WeComStandIn) -> None:
    """A WeChat customer files T-000001, with no photo."""
    customer = wecom.customer(CUSTOMER, "小李")
    customer.say("你好,我订的生日花束全都蔫了,订单号 FS2026112301")
    first = await said_to(wecom, "照片")
    customer.tap_menu(menu_id(first, "没有照片,跳过"), "没有照片,跳过")
    contact = await said_to(wecom, "怎么联系您")
    mark = len(wecom.sent)
    customer.say("13800138000")
    summary = await said_to(wecom, "请您核对", mark)
    mark = len(wecom.sent)
    customer.tap_menu(menu_id(summary, "✅ 提交"), "✅ 提交")
    await said_to(wecom, "投诉单号是 T-000001", mark)
    assert contact


async def card_of(wecom: WeComStandIn, member: Staff) -> AppMessage:
    return await wecom.wait_app_sent(
        lambda m: m.touser == member.userid and m.card is not None and "T-000001" in m.title,
        timeout=20,
    )


async def told(wecom: WeComStandIn, member: Staff, needle: str, after: int = 0) -> AppMessage:
    return await wecom.wait_app_sent(
        lambda m: m.touser == member.userid and m.msgtype == "text" and needle in m.text,
        timeout=20,
        after=after,
    )


def key_of(card: AppMessage, label_start: str) -> str:
    for button in (card.card or {}).get("button_list", []):
        if str(button.get("text", "")).startswith(label_start):
            return str(button["key"])
    raise LookupError(f"no button {label_start!r}: {card.buttons()}")


async def test_an_all_wecom_shop_settles_a_wechat_complaint(
    wecom: WeComStandIn, start_bot: Any
) -> None:
    """The card reaches two staff and a manager (only the manager's has the tiers); a staff
    member takes it and everyone's card shows who has it; they answer from the app and the
    customer gets it; the manager's tier reaches the customer as a menu, the customer chooses,
    the person on the ticket is told and resolves it with a button."""
    zhang, li, boss = wecom.staff("zhangsan"), wecom.staff("lisi"), wecom.staff("boss")
    bot = await start_all_wecom(start_bot, wecom)
    await complaint_filed(wecom)
    cards = {m.userid: await card_of(wecom, m) for m in (zhang, li, boss)}
    assert "🙋 我来跟进" in cards["zhangsan"].buttons()
    assert not any("补偿方案" in b for b in cards["lisi"].buttons())
    assert any("补偿方案" in b for b in cards["boss"].buttons())
    assert "FS2026112301" in str(cards["boss"].card)  # the order, in the card's rows
    await told(wecom, li, "花束全都蔫了")  # what happened, in full, as text

    mark = len(wecom.app_sent)
    zhang.tap(cards["zhangsan"], key_of(cards["zhangsan"], "🙋"))
    await told(wecom, zhang, "由你跟进", mark)
    await bot.settled()
    assert li.card(cards["lisi"].task_id or "").replaced_name == "张三 跟进中"
    assert "张三 跟进中" in str(boss.card(cards["boss"].task_id or "").card)

    mark_customer = len(wecom.sent)
    zhang.say("您好,非常抱歉,我们马上为您处理")
    await said_to(wecom, "马上为您处理", mark_customer)
    await told(wecom, zhang, "已发给 T-000001", mark)

    mark_customer = len(wecom.sent)
    manager_card = boss.card(cards["boss"].task_id or "")
    boss.tap(manager_card, key_of(manager_card, "补偿方案:中等"))
    offer = await said_to(wecom, "重做", mark_customer)
    mark = len(wecom.app_sent)
    option = next(
        i["click"]["content"] for i in offer.menu["list"] if "重做" in i["click"]["content"]
    )
    wecom.customer(CUSTOMER).tap_menu(menu_id(offer, option), option)
    done = await wecom.wait_app_sent(
        lambda m: (
            m.touser == "zhangsan" and m.card is not None and "✅ 已办妥,结案" in m.buttons()
        ),
        timeout=20,
        after=mark,
    )
    mark_customer = len(wecom.sent)
    zhang.tap(done, key_of(done, "✅ 已办妥"))
    await said_to(wecom, "", mark_customer)
    await bot.settled()
    async with bot.app.new_uow(read_only=True) as uow:
        ticket = await uow.tickets.get(1)
    assert ticket is not None and ticket.status.value == "resolved"


async def test_a_typed_tier_from_staff_is_refused(wecom: WeComStandIn, start_bot: Any) -> None:
    """`方案 1 T-000001` typed by someone who is not a manager is refused and changes nothing."""
    li = wecom.staff("lisi")
    wecom.staff("zhangsan"), wecom.staff("boss")
    bot = await start_all_wecom(start_bot, wecom)
    await complaint_filed(wecom)
    await card_of(wecom, li)
    mark = len(wecom.app_sent)
    li.say("方案 1 T-000001")
    await told(wecom, li, "只有店长", mark)
    await bot.settled()
    async with bot.app.new_uow(read_only=True) as uow:
        ticket = await uow.tickets.get(1)
    assert ticket is not None and ticket.status.value == "open"


async def test_doubled_and_forged_callbacks(wecom: WeComStandIn, start_bot: Any) -> None:
    """A callback posted twice has one effect; a forged or old one gets 403 and stores
    nothing; the URL check is answered."""
    zhang = wecom.staff("zhangsan")
    wecom.staff("lisi"), wecom.staff("boss")
    bot = await start_all_wecom(start_bot, wecom)
    status, body = await wecom.verify_app_url()
    assert status == 200 and body == wecom.last_echo
    assert await wecom.post_forged_app_callback() == 403
    assert await wecom.post_old_app_callback() == 403
    query, posted = wecom.app_callback_body("/whoami", userid="zhangsan")
    assert await wecom._post_app(query, posted, None) == 200
    assert await wecom._post_app(query, posted, None) == 200
    await told(wecom, zhang, "zhangsan")
    await bot.settled()
    assert sum(1 for m in zhang.received() if "userid" in m.text) == 1
    async with bot.app.new_uow(read_only=True) as uow:
        assert len(await uow.staff_app.pending()) == 0


async def test_two_take_at_once(wecom: WeComStandIn, start_bot: Any) -> None:
    """Two people tap 我来跟进 at once: one takes it, the other is told who has it."""
    zhang, li = wecom.staff("zhangsan"), wecom.staff("lisi")
    wecom.staff("boss")
    bot = await start_all_wecom(start_bot, wecom)
    await complaint_filed(wecom)
    a, b = await card_of(wecom, zhang), await card_of(wecom, li)
    mark = len(wecom.app_sent)
    zhang.tap(a, key_of(a, "🙋"))
    li.tap(b, key_of(b, "🙋"))
    await bot.settled()
    await wecom.until(
        lambda: (
            sum(1 for m in wecom.app_sent[mark:] if "由你跟进" in m.text) == 1
            and any("已经在" in m.text for m in wecom.app_sent[mark:])
        ),
        timeout=20,
    )


async def test_a_telegram_customer_is_served_by_wecom_staff(
    api: Any, wecom: WeComStandIn, start_bot: Any
) -> None:
    """Customers on Telegram, staff in the WeCom app: the newcomer is greeted at once, the card
    reaches the WeCom members, and a member's answer from the app reaches the Telegram chat."""
    from tests.e2e.people import file_complaint, said

    await start_telegram_with_wecom_staff(start_bot, wecom)
    zhangsan = wecom.staff("zhangsan", "张三")
    wecom.staff("lisi", "李四")
    wecom.staff("boss", "陈店长")
    customer = api.person(7601, "小明", "zh")
    await file_complaint(api, customer, photos=(), submit=False)
    customer.tap("✅ 提交")
    await said(api, customer, "投诉单号")
    card = await card_of(wecom, zhangsan)
    assert "Telegram" in str(card.card)

    mark = len(wecom.app_sent)
    zhangsan.tap(card.task_id, key_of(card, "🙋"))
    await told(wecom, zhangsan, "由你跟进", mark)
    zhangsan.say("您好,我是张三,马上为您处理")
    answer = await said(api, customer, "马上为您处理")
    assert "张三" in answer.text or "zhangsan" in answer.text


async def test_a_card_that_can_no_longer_change_says_where_the_ticket_stands(
    wecom: WeComStandIn, start_bot: Any
) -> None:
    """Three days after the take, no card can be updated by its old code: when the manager
    offers a remedy, the others hear where the ticket stands in one plain message, once."""
    zhang, li, boss = wecom.staff("zhangsan"), wecom.staff("lisi"), wecom.staff("boss")
    bot = await start_all_wecom(start_bot, wecom)
    await complaint_filed(wecom)
    cards = {m.userid: await card_of(wecom, m) for m in (zhang, li, boss)}
    mark = len(wecom.app_sent)
    zhang.tap(cards["zhangsan"], key_of(cards["zhangsan"], "🙋"))
    await told(wecom, zhang, "由你跟进", mark)
    await bot.settled()

    wecom.travel(73 * 3600)  # past the 72 hours WeCom allows an update in
    mark = len(wecom.app_sent)
    manager_card = boss.card(cards["boss"].task_id or "")
    boss.tap(manager_card, key_of(manager_card, "补偿方案:中等"))  # a fresh code: his only
    said = await told(wecom, li, "等客户选方案", mark)
    assert "T-000001" in said.text and "张三" in said.text
    await bot.settled()
    plain = [
        m
        for m in wecom.app_sent[mark:]
        if m.msgtype == "text" and "等客户选方案" in m.text and m.touser in ("zhangsan", "lisi")
    ]
    assert sorted(m.touser for m in plain) == ["lisi", "zhangsan"]  # once each


async def test_the_never_say_guard_holds_in_the_app(wecom: WeComStandIn, start_bot: Any) -> None:
    """A member's answer with a phrase staff must never say is held back: the customer gets
    nothing of it and only that member hears why; a clean answer then goes through."""
    zhang = wecom.staff("zhangsan")
    wecom.staff("lisi"), wecom.staff("boss")
    bot = await start_all_wecom(start_bot, wecom)
    await complaint_filed(wecom)
    card = await card_of(wecom, zhang)
    mark = len(wecom.app_sent)
    zhang.tap(card, key_of(card, "🙋"))
    await told(wecom, zhang, "由你跟进", mark)
    mark, mark_customer = len(wecom.app_sent), len(wecom.sent)
    zhang.say("不好意思,公司的规定就是这样的")
    held = await told(wecom, zhang, "公司的规定就是这样的", mark)
    assert "没有发给客户" in held.text and "可以这样说" in held.text
    await bot.settled()
    assert not any("公司的规定" in str(s.text) for s in wecom.sent[mark_customer:])
    assert not any("公司的规定" in m.text for m in wecom.app_sent[mark:] if m.touser == "lisi")
    zhang.say("非常抱歉,我们马上为您重做一束")
    await said_to(wecom, "马上为您重做", mark_customer)
