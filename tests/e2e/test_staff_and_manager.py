"""Staff and the manager in the group: replies both ways, the remedy, resolving, reopening."""

from __future__ import annotations

from bot.standin import BotApiStandIn
from tests.conftest import MANAGER_ID, STAFF_CHAT
from tests.e2e.people import file_complaint, in_group, said


async def test_staff_reply_reaches_the_customer_and_the_answer_comes_back(
    api: BotApiStandIn, start_bot
) -> None:
    """A reply to the card reaches the customer signed; their answer returns under the ticket."""
    await start_bot()
    customer = api.person(2001, "小明", "zh")
    staff = api.person(3001, "小王", "zh")
    card = await file_complaint(api, customer)

    mark = len(api.sent)
    staff.say_in_group(
        STAFF_CHAT, "您好,非常抱歉!我们马上核实,今天给您答复。", reply_to=card.message_id
    )
    relayed = await said(api, customer, "我们马上核实", mark)
    assert relayed.text.startswith("小王(花语花店)")
    edited = await api.wait_for(
        lambda s: s.message_id == card.message_id and "首次回复:" in s.text
    )
    assert "负责人:小王" in edited.text

    mark = len(api.sent)
    customer.send("好的,我等你们消息。<b>别忘了</b> & 谢谢")
    back = await in_group(api, "我等你们消息", mark)
    assert back.reply_to == card.message_id
    assert "T-000001" in back.text and "<b>别忘了</b> & 谢谢" in back.text

    mark = len(api.sent)
    customer.send_photo("extra-photo", caption="这是另一张")
    photo = await api.wait_for(lambda s: s.chat_id == STAFF_CHAT and s.kind == "photo", after=mark)
    assert photo.file_id == "extra-photo" and "这是另一张" in photo.text

    mark = len(api.sent)
    staff.photo_in_group(STAFF_CHAT, "staff-photo", caption="是这束吗?", reply_to=back.message_id)
    to_customer = await api.wait_for(
        lambda s: s.chat_id == customer.id and s.kind == "photo", after=mark
    )
    assert to_customer.file_id == "staff-photo" and "是这束吗?" in to_customer.text

    mark = len(api.sent)
    staff.say_in_group(STAFF_CHAT, "大家注意今天的配送")  # not a reply: staff talking together
    customer.send("还在吗")
    await in_group(api, "还在吗", mark)
    assert not any("配送" in s.text for s in api.sent_to(customer.id)[-3:])


async def test_only_a_manager_decides_and_the_choice_goes_round(
    api: BotApiStandIn, start_bot
) -> None:
    """Staff are refused the remedy buttons; the manager's tier reaches the customer, whose choice
    reaches staff, whose "done" resolves the ticket."""
    await start_bot()
    customer = api.person(2002, "小红", "zh")
    staff = api.person(3002, "小王", "zh")
    manager = api.person(MANAGER_ID, "陈店长", "zh")
    card = await file_complaint(api, customer)

    mark = len(api.sent)
    refused = staff.tap("补偿方案:中等", chat_id=STAFF_CHAT)
    answer = await api.wait_answer(refused)
    assert answer["text"] == "只有店长可以决定补偿方案。" and answer["show_alert"] is True
    assert not [s for s in api.sent[mark:] if s.chat_id == customer.id]

    tapped = manager.tap("补偿方案:中等", chat_id=STAFF_CHAT)
    await api.wait_answer(tapped)
    offer = await said(api, customer, "换作是我", mark)
    assert offer.buttons() == ["今天下午重做并送达", "退还一半货款"]
    await in_group(api, "陈店长 选择了「中等」", mark)

    first_option = offer.reply_markup["inline_keyboard"][0][0]["callback_data"]
    mark = len(api.sent)
    customer.tap("退还一半货款")
    confirmed = await said(api, customer, "已经为您安排", mark)
    assert "退还一半货款" in confirmed.text and "前办好" in confirmed.text
    todo = await in_group(api, "客户选择了「退还一半货款」", mark)
    assert "为该订单退还 50% 货款" in todo.text and todo.buttons() == ["✅ 已办妥,结案"]

    assert offer.reply_markup is None  # the options are taken off once one is chosen
    stale = api.tap_data(customer, customer.id, offer.message_id, first_option)
    assert (await api.wait_answer(stale))["text"] == "这个按钮已经失效了,请看最新的消息。"

    mark = len(api.sent)
    staff.tap("✅ 已办妥,结案", chat_id=STAFF_CHAT)
    done = await said(api, customer, "已经处理好了", mark)
    assert "退还一半货款" in done.text
    resolved_card = await api.wait_for(
        lambda s: s.message_id == card.message_id and "已解决" in s.text
    )
    assert resolved_card.buttons() == ["↩️ 重新打开", "🔎 记录原因", "💬 常用话术"]

    mark = len(api.sent)
    manager.tap("↩️ 重新打开", chat_id=STAFF_CHAT)
    await said(api, customer, "重新打开", mark)
    reopened = await api.wait_for(lambda s: s.message_id == card.message_id and "待处理" in s.text)
    assert "补偿方案:轻微" in reopened.buttons()

    mark = len(api.sent)
    manager.tap("✅ 直接结案(不补偿)", chat_id=STAFF_CHAT)
    await said(api, customer, "已经处理完毕", mark)

    mark = len(api.sent)
    customer.send("我还有一个问题,另一单的花也有问题")
    await said(api, customer, "哪一类问题", mark)  # a resolved ticket: a new complaint starts


async def test_critical_tier_hands_the_ticket_to_the_manager_in_person(
    api: BotApiStandIn, start_bot
) -> None:
    """The critical tier offers no options: the manager is named to the customer."""
    await start_bot()
    customer = api.person(2003, "张先生", "zh")
    manager = api.person(MANAGER_ID, "陈店长", "zh")
    await file_complaint(api, customer, story="花里有异物,孩子碰了以后手过敏了")
    mark = len(api.sent)
    manager.tap("补偿方案:重大(店长亲自处理)", chat_id=STAFF_CHAT)
    told = await said(api, customer, "店长 陈店长 会亲自跟进", mark)
    assert told.buttons() == []
    note = await in_group(api, "重大投诉", mark)
    assert note.buttons() == ["✅ 已办妥,结案"]


async def test_manager_from_group_admins_when_the_policy_says_so(
    api: BotApiStandIn, start_bot, tmp_path
) -> None:
    """With managers_include_group_admins, a group administrator may decide the remedy."""
    from bot.config import BUNDLED_POLICY

    policy = tmp_path / "policy.yaml"
    policy.write_text(
        BUNDLED_POLICY.read_text(encoding="utf-8").replace(
            "managers_include_group_admins: false", "managers_include_group_admins: true"
        ),
        encoding="utf-8",
    )
    api.groups[STAFF_CHAT].admins.add(3999)
    await start_bot(shop_policy=str(policy))
    customer = api.person(2004, "小刘", "zh")
    admin = api.person(3999, "赵组长", "zh")
    await file_complaint(api, customer)
    mark = len(api.sent)
    admin.tap("补偿方案:轻微", chat_id=STAFF_CHAT)
    offer = await said(api, customer, "换作是我", mark)
    assert "¥10 无门槛优惠券" in offer.buttons()


async def test_taking_a_ticket_shows_on_the_card_and_albums_arrive_as_albums(
    api: BotApiStandIn, start_bot
) -> None:
    """ "I'll handle it" names the staff member on the card; a customer's later album reaches
    the group as one album under the ticket."""
    await start_bot()
    customer = api.person(2005, "小杨", "zh")
    staff = api.person(3005, "小李", "zh")
    card = await file_complaint(api, customer, photos=())
    taken = staff.tap("🙋 我来跟进", chat_id=STAFF_CHAT)
    assert "由你跟进" in (await api.wait_answer(taken))["text"]
    await api.wait_for(lambda s: s.message_id == card.message_id and "负责人:小李" in s.text)
    again = staff.tap("🙋 我来跟进", chat_id=STAFF_CHAT)
    assert "已经在 小李 手上" in (await api.wait_answer(again))["text"]

    mark = len(api.sent)
    customer.send_album(["late-1", "late-2", "late-3"], caption="补拍的照片")
    album = await api.wait_for(
        lambda s: s.chat_id == STAFF_CHAT and s.method == "sendMediaGroup", after=mark
    )
    assert album.reply_to == card.message_id and "补拍的照片" in album.text
    await api.wait_for(lambda s: s.file_id == "late-3", after=mark)
    relayed = [s.file_id for s in api.sent[mark:] if s.method == "sendMediaGroup"]
    assert relayed == ["late-1", "late-2", "late-3"]


async def test_photos_beyond_ten_are_kept_but_the_card_shows_ten(
    api: BotApiStandIn, start_bot
) -> None:
    """Twelve photos: the customer is told ten are on the ticket; the card's album has ten."""
    await start_bot()
    customer = api.person(2006, "小何", "zh")
    customer.send("订单 FS2026112301 的花全蔫了,一半都不能看")
    await said(api, customer, "照片")
    mark = len(api.sent)
    customer.send_album([f"m{i}" for i in range(10)])
    customer.send_album(["m10", "m11"])
    full = await said(api, customer, "已经够我们核实了", mark)
    assert "10 张" in full.text
    mark = len(api.sent)
    customer.send("跳过")
    await said(api, customer, "请您核对", mark)
    mark = len(api.sent)
    customer.tap("✅ 提交")
    card = await in_group(api, "投诉单", mark)
    assert "照片:10 张" in card.text
    await api.wait_for(lambda s: s.file_id == "m9", after=mark)
