"""Bad input gets a clear, polite answer and loses nothing."""

from __future__ import annotations

from datetime import timedelta

import pytest

from bot.standin import BotApiStandIn
from handlers import customer as customer_use_cases
from tests.conftest import MANAGER_ID, STAFF_CHAT
from tests.e2e.people import file_complaint, in_group, said


async def test_sticker_voice_and_file_at_a_text_step_are_kept_and_the_question_repeated(
    api: BotApiStandIn, start_bot
) -> None:
    """Where words are needed, other kinds get a polite word; the voice reaches staff later."""
    await start_bot()
    customer = api.person(6001, "小赵", "zh")
    customer.send("你好")
    await said(api, customer, "哪一类问题")
    mark = len(api.sent)
    customer.send_sticker()
    answer = await said(api, customer, "需要您打字回答", mark)
    assert "哪一类问题" in answer.text and "花材质量" in answer.buttons()
    mark = len(api.sent)
    customer.tap("花材质量")
    await said(api, customer, "订单号", mark)
    mark = len(api.sent)
    customer.send_voice("voice-77")
    voice_answer = await said(api, customer, "需要您打字回答", mark)
    assert "语音" in voice_answer.text and "订单号" in voice_answer.text
    mark = len(api.sent)
    customer.send_document("doc-9", "发票.pdf")
    await said(api, customer, "文件", mark)
    mark = len(api.sent)
    customer.send("FS2026112301")
    await said(api, customer, "发生了什么", mark)
    mark = len(api.sent)
    customer.send("花蔫了")
    await said(api, customer, "照片", mark)
    mark = len(api.sent)
    customer.tap("没有照片,跳过")
    await said(api, customer, "怎么联系您", mark)
    mark = len(api.sent)
    customer.send("随便")
    await said(api, customer, "电话号码", mark)
    mark = len(api.sent)
    customer.send("跳过")
    await said(api, customer, "请您核对", mark)
    mark = len(api.sent)
    customer.tap("✅ 提交")
    card = await in_group(api, "投诉单", mark)
    assert "随便" not in card.text.split("联系方式")[1].split("\n")[0]  # not taken as contact
    voice = await api.wait_for(lambda s: s.chat_id == STAFF_CHAT and s.kind == "voice", after=mark)
    assert voice.file_id == "voice-77"
    doc = await api.wait_for(
        lambda s: s.chat_id == STAFF_CHAT and s.kind == "document", after=mark
    )
    assert doc.file_id == "doc-9"


async def test_long_texts_and_html_are_delivered_whole_and_escaped(
    api: BotApiStandIn, start_bot
) -> None:
    """A 4096-character story and HTML in names and texts reach staff intact, in pieces."""
    await start_bot()
    name = "<b>Boss</b> & <script>x</script>"
    customer = api.person(6002, name, "zh")
    staff = api.person(6102, "<i>王", "zh")
    story = ("花全蔫了<br>&nbsp;" * 400)[:4096]
    card = await file_complaint(api, customer, story=story, photos=())
    assert name in card.text  # shown literally: escaped, not parsed
    assert len(card.text) < 4096 and "全文见下方" in card.text

    def full() -> str:
        return "".join(
            s.text.split("\n", 1)[1] for s in api.sent_to(STAFF_CHAT) if "经过全文" in s.text
        )

    await api.until(lambda: len(full()) >= len(story))
    assert full() == story

    mark = len(api.sent)
    staff.say_in_group(
        STAFF_CHAT, "好的 <u>马上</u> & 处理 " + "。" * 4080, reply_to=card.message_id
    )
    first = await said(api, customer, "好的 <u>马上</u> & 处理", mark)
    assert first.text.startswith("<i>王(花语花店)")
    await api.until(lambda: sum(s.text.count("。") for s in api.sent_to(customer.id)) >= 4080)
    pieces = [s for s in api.sent[mark:] if s.chat_id == customer.id]
    assert len(pieces) == 2 and all(len(p.text) <= 4096 for p in pieces)

    mark = len(api.sent)
    customer.send("再补充:" + "很" * 4090)
    await in_group(api, "再补充", mark)

    def relayed() -> int:
        return sum(s.text.count("很") for s in api.sent[mark:] if s.chat_id == STAFF_CHAT)

    await api.until(lambda: relayed() >= 4090)
    assert relayed() == 4090


async def test_forged_and_stale_buttons_get_an_alert_and_change_nothing(
    api: BotApiStandIn, start_bot
) -> None:
    """Unknown, foreign or outdated button data is answered with an alert, never a crash."""
    await start_bot()
    customer = api.person(6003, "小钱", "zh")
    other = api.person(6004, "小孙", "zh")
    manager = api.person(MANAGER_ID, "陈店长", "zh")
    card = await file_complaint(api, customer, photos=())
    summary = next(s for s in api.sent_to(customer.id) if "请您核对" in s.text)

    for data in ("garbage", "t:tier:1:critical", "o:1:medium:7", "i:cat:nonexistent"):
        query = api.tap_data(customer, customer.id, summary.message_id, data)
        answer = await api.wait_answer(query)
        assert answer["show_alert"] is True and "失效" in answer["text"]

    mark = len(api.sent)
    manager.tap("补偿方案:中等", chat_id=STAFF_CHAT)
    offer = await said(api, customer, "换作是我", mark)
    data = offer.reply_markup["inline_keyboard"][0][0]["callback_data"]
    other.send("你好")
    own = await said(api, other, "哪一类问题")
    query = api.tap_data(other, other.id, own.message_id, data)  # not their ticket
    assert (await api.wait_answer(query))["show_alert"] is True
    forged_tier = api.tap_data(manager, STAFF_CHAT, card.message_id, "t:tier:1:platinum")
    assert (await api.wait_answer(forged_tier))["show_alert"] is True
    missing = api.tap_data(manager, STAFF_CHAT, card.message_id, "t:take:99999:")
    assert (await api.wait_answer(missing))["show_alert"] is True
    assert len(api.sent_to(other.id)) == 1  # only the welcome: the forged choice did nothing


async def test_a_second_album_while_the_first_is_collected_is_counted_too(
    api: BotApiStandIn, start_bot
) -> None:
    """Two albums in quick succession: every photo kept, one answer."""
    bot = await start_bot()
    customer = api.person(6005, "小吴", "zh")
    customer.send("订单 FS2026112301 的花全蔫了,一半都不能看")
    await said(api, customer, "照片")
    mark = len(api.sent)
    customer.send_album(["a1", "a2", "a3"])
    customer.send_album(["b1", "b2"])
    await said(api, customer, "已经收到 5 张照片", mark)
    await bot.settled()
    assert len([s for s in api.sent[mark:] if s.chat_id == customer.id]) == 1


async def test_an_album_taken_in_slowly_is_still_answered_once(
    api: BotApiStandIn, start_bot, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a busy day the desk takes in an album's photos further apart than the album window
    (here the window is none at all): the customer still gets one answer, counting them all.
    A photo's answer held for what is behind it does not hold up the answer to that."""
    monkeypatch.setattr(customer_use_cases, "FOLLOWED_HOLD", timedelta(hours=1))
    bot = await start_bot(album_window="0s")
    customer = api.person(6006, "小郑", "zh")
    customer.send("订单 FS2026112301 的花全蔫了,一半都不能看")
    await said(api, customer, "照片")
    mark = len(api.sent)
    customer.send_album(["a1", "a2", "a3", "a4"])
    ack = await said(api, customer, "已经收到 4 张照片", mark)
    await bot.settled()
    assert [s.text for s in api.sent[mark:] if s.chat_id == customer.id] == [ack.text]
    mark = len(api.sent)
    customer.send_photo("a5")  # its answer is held: a word is right behind it
    customer.send("就这些了")
    # answered within the outbox's longest pause (30 s) of what it held, not after it
    answer = await said(api, customer, "已经收到 5 张照片", mark, timeout=20)
    assert "记下了" in answer.text
    assert len([s for s in api.sent[mark:] if s.chat_id == customer.id]) == 1


async def test_a_later_album_taken_in_slowly_reaches_staff_as_one_album(
    api: BotApiStandIn, start_bot, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After the complaint is submitted, the customer sends an album and the desk takes its
    photos in further apart than the album window (none at all here): staff still get one
    album, under the card, at once after its last photo."""
    monkeypatch.setattr(customer_use_cases, "FOLLOWED_HOLD", timedelta(hours=1))
    await start_bot(album_window="0s")
    customer = api.person(6007, "小冯", "zh")
    card = await file_complaint(api, customer, photos=())
    mark = len(api.sent)
    customer.send_album(["late-1", "late-2", "late-3"], caption="补拍的照片")
    album = await api.wait_for(
        lambda s: s.chat_id == STAFF_CHAT and s.method == "sendMediaGroup", after=mark, timeout=20
    )
    assert album.reply_to == card.message_id and "补拍的照片" in album.text
    relayed = [s.file_id for s in api.sent[mark:] if s.chat_id == STAFF_CHAT and s.file_id]
    assert relayed == ["late-1", "late-2", "late-3"]


async def test_messages_in_unknown_groups_are_ignored(api: BotApiStandIn, start_bot) -> None:
    """A group that is not the staff group gets no answer and opens no ticket."""
    bot = await start_bot()
    stranger = api.person(6006, "路人", "zh")
    api.add_group(-100777, "别的群")
    stranger.say_in_group(-100777, "你好")
    stranger.say_in_group(-100777, "订单 FS2026112301 的花蔫了")
    await bot.settled()
    assert api.sent_to(-100777) == [] and api.sent_to(STAFF_CHAT) == []


async def test_a_customer_who_blocked_the_bot_is_reported_to_staff(
    api: BotApiStandIn, start_bot
) -> None:
    """A staff reply that cannot be delivered is reported in the group, the card marked."""
    await start_bot()
    customer = api.person(6007, "小郑", "zh")
    staff = api.person(6107, "小王", "zh")
    card = await file_complaint(api, customer, photos=())
    customer.block_bot()
    mark = len(api.sent)
    staff.say_in_group(STAFF_CHAT, "您好,我们来处理", reply_to=card.message_id)
    notice = await in_group(api, "屏蔽", mark)
    assert "13800138000" in notice.text  # staff are given another way to reach them
    marked = await api.wait_for(
        lambda s: s.message_id == card.message_id and "客户已屏蔽机器人" in s.text
    )
    assert "首次回复:" not in marked.text  # an undelivered reply is no response


async def test_a_reply_to_a_card_the_bot_has_not_heard_back_about_counts(
    api: BotApiStandIn, start_bot
) -> None:
    """Staff answer the card the moment it appears, before Telegram's answer reaches the bot:
    the reply is still tied to the ticket, and the card marked without losing its buttons."""
    await start_bot()
    customer = api.person(6010, "小郭", "zh")
    staff = api.person(6110, "小王", "zh")
    api.slow_answer("sendMessage", 2.0, chat_id=STAFF_CHAT)  # the card's answer comes late
    card = await file_complaint(api, customer, photos=())
    customer.block_bot()
    mark = len(api.sent)
    staff.say_in_group(STAFF_CHAT, "您好,我们来处理", reply_to=card.message_id)
    notice = await in_group(api, "屏蔽", mark)
    assert "13800138000" in notice.text
    marked = await api.wait_for(
        lambda s: s.message_id == card.message_id and "客户已屏蔽机器人" in s.text
    )
    assert "我来跟进" in str(marked.reply_markup)  # the buttons are kept


async def test_telegram_errors_are_retried_and_nothing_is_lost(
    api: BotApiStandIn, start_bot
) -> None:
    """429 waits retry_after and retries; 5xx retries with back-off; a 400 is told to staff."""
    await start_bot()
    api.inject("sendMessage", 429, retry_after=1)
    api.inject("sendMessage", 502, count=2)
    customer = api.person(6008, "小冯", "zh")
    customer.send("你好")
    await said(api, customer, "非常抱歉")
    statuses = [m for m, _ in api.calls if m == "sendMessage"]
    assert len(statuses) >= 4  # the 429, two 502s, then the answer

    card = await file_complaint(api, api.person(6009, "小陈", "zh"), photos=())
    staff = api.person(6109, "小王", "zh")
    api.inject("sendMessage", 400, "Bad Request: message is too long")
    mark = len(api.sent)
    staff.say_in_group(STAFF_CHAT, "这条会被拒绝", reply_to=card.message_id)
    await in_group(api, "Telegram 拒绝了这条消息", mark)


async def test_an_edited_message_reaches_staff_marked_as_a_change(
    api: BotApiStandIn, start_bot
) -> None:
    """A customer corrects a message: during the intake the question goes on and staff see the
    new wording after the card; later, staff see it at once, each marked as a change."""
    bot = await start_bot()
    customer = api.person(6020, "小林", "zh")
    customer.send("你好")
    await said(api, customer, "哪一类问题")
    customer.tap("花材质量")
    await said(api, customer, "订单号")
    customer.send("FS2026112301")
    await said(api, customer, "发生了什么")
    mark = len(api.sent)
    story = customer.send("花都蔫了")
    await said(api, customer, "照片", mark)
    customer.edit(story, "花都蔫了,而且颜色也送错了")
    await bot.handled()
    mark = len(api.sent)
    customer.tap("没有照片,跳过")
    await said(api, customer, "怎么联系您", mark)
    mark = len(api.sent)
    customer.send("跳过,就在这里联系我")
    await said(api, customer, "请您核对", mark)
    mark = len(api.sent)
    customer.tap("✅ 提交")
    card = await in_group(api, "投诉单", mark)
    early = await in_group(api, "改后是", mark)
    assert "颜色也送错了" in early.text and early.message_id > card.message_id

    mark = len(api.sent)
    later = customer.send("另外包装也破了")
    await in_group(api, "包装也破了", mark)
    customer.edit(later, "另外包装也破了,花瓶也碎了")
    change = await in_group(api, "花瓶也碎了", mark)
    assert "改后是" in change.text and "小林" in change.text
    await bot.settled()
    assert not any("改后是" in s.text for s in api.sent_to(customer.id))


async def test_a_restricted_member_who_left_the_group_cannot_open_a_card(
    api: BotApiStandIn, start_bot
) -> None:
    """A digest's link opens a ticket's card for a restricted member still in the staff group,
    and for one who has left it starts a complaint instead."""
    await start_bot()
    await file_complaint(api, api.person(6030, "小何", "zh"), photos=())
    still, gone = api.person(6130, "小在", "zh"), api.person(6131, "小走", "zh")
    api.groups[STAFF_CHAT].restricted.update({still.id: True, gone.id: False})
    still.send("/start T-000001")
    copy = await said(api, still, "T-000001")
    assert "只读副本" in copy.text
    gone.send("/start T-000001")
    await said(api, gone, "哪一类问题")
    assert not any("T-000001" in s.text for s in api.sent_to(gone.id))
