"""The customer's path through the intake, against the bot started as `python -m bot`."""

from __future__ import annotations

from bot.standin import BotApiStandIn
from tests.conftest import STAFF_CHAT
from tests.e2e.people import in_group, said


async def test_whole_intake_with_album_reaches_the_staff_group(
    api: BotApiStandIn, start_bot
) -> None:
    """Empathy first, every question asked, the album kept as one answer, and a full card."""
    bot = await start_bot()
    customer = api.person(1001, "小明", "zh", username="xiaoming")
    customer.send("你好")
    first = await said(api, customer, "非常抱歉给您带来不好的体验")
    assert first.text.index("非常抱歉") < first.text.index("哪一类问题")  # empathy first
    assert "花材质量" in first.buttons() and "配送延误" in first.buttons()

    mark = len(api.sent)
    customer.tap("花材质量")
    await said(api, customer, "订单号", mark)
    mark = len(api.sent)
    customer.send("12ab")
    invalid = await said(api, customer, "格式", mark)
    assert "FS2026112301" in invalid.text  # the polite re-ask shows the expected form
    mark = len(api.sent)
    customer.send("fs2026112301")
    await said(api, customer, "发生了什么", mark)
    mark = len(api.sent)
    customer.send("花送到的时候一半都蔫了,叶子也黄了")
    await said(api, customer, "照片", mark)
    mark = len(api.sent)
    customer.send_album(["p1", "p2", "p3"])
    ack = await said(api, customer, "已经收到 3 张照片", mark)
    assert ack.buttons() == ["✅ 照片发完了"]
    await bot.settled()
    acks = [s for s in api.sent_to(customer.id) if "已经收到" in s.text]
    assert len(acks) == 1  # one answer for the whole album
    mark = len(api.sent)
    customer.tap("✅ 照片发完了")
    contact_question = await said(api, customer, "怎么联系您", mark)
    assert "📱 分享我的手机号" in contact_question.buttons()
    mark = len(api.sent)
    customer.share_contact("+86 138 0013 8000")
    summary = await said(api, customer, "请您核对", mark)
    assert "FS2026112301" in summary.text and "3 张" in summary.text
    assert summary.buttons() == ["✅ 提交", "✏️ 修改", "✖️ 取消投诉"]
    mark = len(api.sent)
    customer.tap("✅ 提交")
    done = await said(api, customer, "投诉单号是 T-000001", mark)
    assert "10 分钟" in done.text and "1 天" in done.text  # what next, and by when

    card = await in_group(api, "投诉单 T-000001", mark)
    for expected in (
        "小明",
        "@xiaoming",
        "花材质量",
        "FS2026112301",
        "叶子也黄了",
        "+86 138 0013 8000",
        "中等",
        "照片:3 张",
    ):
        assert expected in card.text
    assert f"tg://user?id={customer.id}" in card.links
    assert "补偿方案:轻微" in card.buttons() and "🙋 我来跟进" in card.buttons()
    album = await api.wait_for(lambda s: s.method == "sendMediaGroup" and s.chat_id == STAFF_CHAT)
    assert album.reply_to == card.message_id
    photos = [s.file_id for s in api.sent_to(STAFF_CHAT) if s.method == "sendMediaGroup"]
    assert photos == ["p1", "p2", "p3"]


async def test_first_message_that_says_everything_goes_straight_to_the_summary(
    api: BotApiStandIn, start_bot
) -> None:
    """Order number, phone, category and story from the first message are not asked again."""
    await start_bot()
    customer = api.person(1002, "王女士", "zh")
    customer.send_photo(
        "first-photo",
        caption="订单 FS2026112388 的花全都蔫了,送来就这样,电话 13912345678",
    )
    summary = await said(api, customer, "请您核对")
    assert "非常抱歉" in summary.text
    assert "FS2026112388" in summary.text and "13912345678" in summary.text
    assert "花材质量" in summary.text and "照片:1 张" in summary.text
    questions = [s.text for s in api.sent_to(customer.id)]
    assert not any("订单号," in q or "发生了什么" in q for q in questions)


async def test_english_customer_is_answered_in_english(api: BotApiStandIn, start_bot) -> None:
    """A customer whose Telegram is in English gets English questions and buttons."""
    await start_bot()
    customer = api.person(1003, "Anna", "en")
    customer.send("hello")
    first = await said(api, customer, "truly sorry")
    assert "What kind of problem" in first.text and "Flower quality" in first.buttons()
    mark = len(api.sent)
    customer.tap("Flower quality")
    ask = await said(api, customer, "order number", mark)
    assert ask.buttons() == ["I don't have an order number"]
    mark = len(api.sent)
    customer.tap("I don't have an order number")
    await said(api, customer, "what happened", mark)


async def test_cancel_works_at_every_step_and_a_new_message_starts_afresh(
    api: BotApiStandIn, start_bot
) -> None:
    """/cancel ends the intake; the next message opens a new complaint."""
    await start_bot()
    customer = api.person(1004, "小李", "zh")
    customer.send("你好")
    await said(api, customer, "哪一类问题")
    mark = len(api.sent)
    customer.send("/cancel")
    await said(api, customer, "已经取消", mark)
    mark = len(api.sent)
    customer.send("/cancel")
    await said(api, customer, "没有正在填写的投诉", mark)
    mark = len(api.sent)
    customer.send("我又来了")
    await said(api, customer, "哪一类问题", mark)


async def test_change_from_the_summary_asks_only_that_again(api: BotApiStandIn, start_bot) -> None:
    """ "Change" offers the parts; the chosen one is asked again, then the summary returns."""
    await start_bot()
    customer = api.person(1005, "小周", "zh")
    customer.send("订单 FS2026112301,花全都蔫了,我的电话 13800138000")
    await said(api, customer, "照片")
    mark = len(api.sent)
    customer.tap("没有照片,跳过")
    await said(api, customer, "请您核对", mark)
    mark = len(api.sent)
    customer.tap("✏️ 修改")
    fields = await said(api, customer, "修改哪一项", mark)
    assert "订单号" in fields.buttons()
    mark = len(api.sent)
    customer.tap("订单号")
    await said(api, customer, "请发一下您的订单号", mark)
    mark = len(api.sent)
    customer.send("FS2026119999")
    summary = await said(api, customer, "请您核对", mark)
    assert "FS2026119999" in summary.text and "13800138000" in summary.text


async def test_whoami_answers_ids_in_the_group_and_in_private(
    api: BotApiStandIn, start_bot
) -> None:
    """/whoami tells the chat id and the user id a shop owner puts in .env."""
    await start_bot()
    owner = api.person(555, "老板", "zh")
    owner.say_in_group(STAFF_CHAT, "/whoami")
    answer = await in_group(api, "ID")
    assert str(STAFF_CHAT) in answer.text and "555" in answer.text
    owner.send("/whoami")
    private = await said(api, owner, "用户 ID")
    assert "555" in private.text
    assert not any("哪一类问题" in s.text for s in api.sent_to(owner.id))
