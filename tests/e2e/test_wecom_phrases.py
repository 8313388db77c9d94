"""The shop's phrases in the WeCom app's 1:1 chat, for the member's current ticket."""

from __future__ import annotations

from typing import Any

from bot.standin.wecom import WeComStandIn
from tests.e2e.test_wechat import said_to
from tests.e2e.test_wecom_staff import card_of, complaint_filed, key_of, start_all_wecom, told


async def test_p_in_the_app_shows_and_sends_the_shops_phrases(
    wecom: WeComStandIn, start_bot: Any
) -> None:
    """`/p` with no current ticket says how to use it; on the current ticket `/p` shows the
    phrases as buttons, a tap sends one, and `/p NAME` sends one at once, filled in and signed."""
    zhang = wecom.staff("zhangsan")
    wecom.staff("lisi"), wecom.staff("boss")
    await start_all_wecom(start_bot, wecom)
    await complaint_filed(wecom)
    card = await card_of(wecom, zhang)

    mark = len(wecom.app_sent)
    zhang.say("/p")
    await told(wecom, zhang, "「T-000123 /p」", mark)

    zhang.tap(card, key_of(card, "🙋"))
    await told(wecom, zhang, "由你跟进", mark)
    mark, mark_customer = len(wecom.app_sent), len(wecom.sent)
    zhang.say("/p")
    menu = await wecom.wait_app_sent(
        lambda m: m.touser == "zhangsan" and "问配送" in m.buttons(), timeout=20, after=mark
    )
    zhang.tap(menu, key_of(menu, "问配送"))
    relayed = await said_to(wecom, "配送路线", mark_customer)
    assert "订单 FS2026112301 的配送路线" in str(relayed.text)

    mark_customer = len(wecom.sent)
    zhang.say("/p 道歉")
    relayed = await said_to(wecom, "非常抱歉给您带来不好的体验", mark_customer)
    assert "FS2026112301" in str(relayed.text)


async def test_history_in_the_app_for_the_current_ticket(
    wecom: WeComStandIn, start_bot: Any
) -> None:
    """`/history` with no current ticket says how to name one; on the current ticket it lists
    the customer's tickets with how each stands."""
    zhang = wecom.staff("zhangsan")
    wecom.staff("lisi"), wecom.staff("boss")
    await start_all_wecom(start_bot, wecom)
    await complaint_filed(wecom)
    card = await card_of(wecom, zhang)

    mark = len(wecom.app_sent)
    zhang.say("/history")
    await told(wecom, zhang, "「T-000123 /history …」", mark)

    zhang.tap(card, key_of(card, "🙋"))
    await told(wecom, zhang, "由你跟进", mark)
    mark = len(wecom.app_sent)
    zhang.say("/history")
    listed = await told(wecom, zhang, "这位顾客的投诉记录(共 1 单", mark)
    assert "T-000001" in listed.text and "就是这一单" in listed.text


async def test_the_app_card_names_the_customer_s_earlier_complaint(
    wecom: WeComStandIn, start_bot: Any
) -> None:
    """A customer's second complaint: the card in the app has a history row naming the first."""
    from tests.e2e.test_wechat import CUSTOMER, menu_id

    wecom.staff("zhangsan"), wecom.staff("lisi")
    boss = wecom.staff("boss")
    await start_all_wecom(start_bot, wecom)
    await complaint_filed(wecom)
    first = await card_of(wecom, boss)
    boss.tap(first, key_of(first, "✅"))  # the manager closes it without a remedy
    await said_to(wecom, "已经处理完毕")

    customer = wecom.customer(CUSTOMER, "小李")
    mark = len(wecom.sent)
    customer.say("又出问题了,这次的花也蔫了,订单号 FS2026112302")
    asked = await said_to(wecom, "照片", mark)
    customer.tap_menu(menu_id(asked, "没有照片,跳过"), "没有照片,跳过")
    await said_to(wecom, "怎么联系您", mark)
    mark = len(wecom.sent)
    customer.say("13800138000")
    summary = await said_to(wecom, "请您核对", mark)
    customer.tap_menu(menu_id(summary, "✅ 提交"), "✅ 提交")
    second = await wecom.wait_app_sent(
        lambda m: m.touser == "zhangsan" and m.card is not None and "T-000002" in m.title,
        timeout=20,
    )
    rows = {row["keyname"]: row["value"] for row in second.card["horizontal_content_list"]}
    assert rows["历史"] == "1次/90天·上单T-000001"
