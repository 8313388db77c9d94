"""The shop's phrases in the staff group: `/p` in a ticket's thread, its buttons, `/p NAME`."""

from __future__ import annotations

from bot.standin import BotApiStandIn
from tests.conftest import STAFF_CHAT
from tests.e2e.people import file_complaint, in_group, said


async def test_a_tapped_phrase_reaches_the_customer_as_the_staff_members_answer(
    api: BotApiStandIn, start_bot
) -> None:
    """`/p` as a reply to the card shows the phrases as buttons; a tap sends one, signed, with
    the order number filled in, and the card shows the first answer."""
    await start_bot()
    customer = api.person(2101, "小明", "zh")
    staff = api.person(3101, "小王", "zh")
    card = await file_complaint(api, customer, order="FS2026113001")

    mark = len(api.sent)
    staff.say_in_group(STAFF_CHAT, "/p", reply_to=card.message_id)
    menu = await in_group(api, "常用话术", mark)
    assert {"道歉", "要照片", "问配送", "感谢"} <= set(menu.buttons())

    tapped = staff.tap("问配送", chat_id=STAFF_CHAT)
    assert (await api.wait_answer(tapped))["text"] == "已发送「问配送」。"
    relayed = await said(api, customer, "配送路线", mark)
    assert relayed.text.startswith("小王(花语花店)")
    assert "订单 FS2026113001 的配送路线" in relayed.text
    edited = await api.wait_for(
        lambda s: s.message_id == card.message_id and "首次回复:" in s.text
    )
    assert "负责人:小王" in edited.text

    forged = api.tap_data(staff, STAFF_CHAT, menu.message_id, "t:ph:1:99")
    assert (await api.wait_answer(forged))["text"] == "这个按钮已经失效了,请看最新的消息。"
    other = api.tap_data(staff, STAFF_CHAT, menu.message_id, "t:ph:999:0")
    assert (await api.wait_answer(other))["text"] == "这个按钮已经失效了,请看最新的消息。"


async def test_p_with_a_name_sends_that_phrase_at_once(api: BotApiStandIn, start_bot) -> None:
    """`/p 道歉` in reply to the card reaches the customer signed; an unknown name gets the
    list; the card's 💬 button shows the phrases too."""
    await start_bot()
    customer = api.person(2102, "小红", "zh")
    staff = api.person(3102, "小李", "zh")
    card = await file_complaint(api, customer, order="FS2026113002")

    mark = len(api.sent)
    staff.say_in_group(STAFF_CHAT, "/p 道歉", reply_to=card.message_id)
    relayed = await said(api, customer, "非常抱歉给您带来不好的体验", mark)
    assert relayed.text.startswith("小李(花语花店)") and "FS2026113002" in relayed.text
    edited = await api.wait_for(
        lambda s: s.message_id == card.message_id and "首次回复:" in s.text
    )
    assert "负责人:小李" in edited.text

    mark = len(api.sent)
    staff.say_in_group(STAFF_CHAT, "/p 不存在", reply_to=card.message_id)
    listed = await in_group(api, "没有叫这个名字的话术", mark)
    assert "要照片" in listed.text and "要照片" in listed.buttons()

    mark = len(api.sent)
    tapped = staff.tap("💬 常用话术", chat_id=STAFF_CHAT)
    await api.wait_answer(tapped)
    menu = await in_group(api, "点一句", mark)
    assert "道歉" in menu.buttons()
    assert not [s for s in api.sent[mark:] if s.chat_id == customer.id]


async def test_p_outside_a_thread_says_how_to_use_it(api: BotApiStandIn, start_bot) -> None:
    """`/p` that answers no ticket reaches nobody and tells how it is used."""
    await start_bot()
    staff = api.person(3103, "小王", "zh")
    mark = len(api.sent)
    staff.say_in_group(STAFF_CHAT, "/p 道歉")
    how = await in_group(api, "回复那一单的卡片", mark)
    assert "/p" in how.text
