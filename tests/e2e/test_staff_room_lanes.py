"""Nobody in the staff room waits behind someone else's work: a manager's large orders file is
imported while newcomers are answered and staff replies reach their customers, and each ticket's
thread runs in a lane of its own, in order."""

from __future__ import annotations

import asyncio
from typing import Any

from bot.standin import BotApiStandIn, Person
from bot.standin.orders import orders_file
from tests.conftest import MANAGER_ID, STAFF_CHAT
from tests.e2e.people import file_complaint, in_group, said

ROWS = 200_000  # the most one file may hold: seconds to read and write on two cores


def heard(api: BotApiStandIn, person: Person, words: str) -> int | None:
    """Where in everything the bot sent this person first heard `words` (None: not yet)."""
    return next(
        (n for n, s in enumerate(api.sent) if s.chat_id == person.id and words in s.text), None
    )


def get_files(api: BotApiStandIn) -> int:
    return sum(1 for method, _ in api.calls if method == "getFile")


async def test_a_large_orders_import_keeps_nobody_waiting(
    api: BotApiStandIn, start_bot: Any
) -> None:
    """While 200,000 orders are read and written, five newcomers get their first answers and a
    staff reply reaches its customer; the import then ends with every order counted, the card
    of its order shows it, and the desk still polls."""
    bot = await start_bot()
    customer = api.person(8001, "小明", "zh")
    card = await file_complaint(api, customer, photos=())
    staff = api.person(8101, "小王", "zh")
    manager = api.person(MANAGER_ID, "陈店长", "zh")
    api.files["orders-year"] = orders_file(ROWS)

    fetched = get_files(api)
    mark = len(api.sent)
    manager.say_in_group(
        STAFF_CHAT,
        caption="/orders",
        document={"file_id": "orders-year", "file_unique_id": "u-y", "file_name": "全年订单.csv"},
    )
    await api.wait_calls("getFile", fetched + 1)  # the import has begun
    newcomers = [api.person(8201 + i, f"新客{i}", "zh") for i in range(5)]
    for newcomer in newcomers:
        newcomer.send("你好,花有问题")
    staff.say_in_group(STAFF_CHAT, "您好,我们马上处理", reply_to=card.message_id)
    for newcomer in newcomers:
        await said(api, newcomer, "哪一类问题", mark, timeout=20)
    await said(api, customer, "我们马上处理", mark, timeout=20)
    answered = len(api.sent)
    assert not any("已导入" in s.text for s in api.sent[mark:answered])  # still importing

    imported = await in_group(api, "已导入", mark, timeout=180)
    assert f"{ROWS} 个订单" in imported.text
    assert "已有 1 张投诉卡片补上了订单信息" in imported.text  # the card of FS2026112301
    assert bot.task is not None and not bot.task.done()  # the poller lives
    later = api.person(8301, "后来的客人", "zh")
    later.send("你好")
    await said(api, later, "哪一类问题", answered)


async def test_replies_to_two_tickets_do_not_wait_for_each_other(
    api: BotApiStandIn, start_bot: Any, monkeypatch: Any
) -> None:
    """While staff's reply to one ticket is held up in its handling, a reply to another ticket
    reaches that customer and a tap on its card is answered; a colleague's answer to the held
    reply waits in the held ticket's lane, and both then reach their customer, in order."""
    from bot.channels.telegram import routes

    held, release = asyncio.Event(), asyncio.Event()
    original = routes.Router.handle

    async def handle(self: routes.Router, uow: Any, update: Any, *args: Any) -> Any:
        message = update.message
        if message is not None and message.text == "第一句:正在查":
            held.set()  # outside any transaction: the unit of work has not read yet
            await release.wait()
        return await original(self, uow, update, *args)

    monkeypatch.setattr(routes.Router, "handle", handle)
    await start_bot()
    first, second = api.person(8401, "小明", "zh"), api.person(8402, "小红", "zh")
    card_a = await file_complaint(api, first, photos=())
    card_b = await file_complaint(api, second, photos=())
    staff, colleague = api.person(8501, "小王", "zh"), api.person(8502, "小李", "zh")

    mark = len(api.sent)
    try:
        held_reply = staff.say_in_group(STAFF_CHAT, "第一句:正在查", reply_to=card_a.message_id)
        await asyncio.wait_for(held.wait(), timeout=15)
        # a colleague answers that reply, which is not handled yet: still the first ticket's
        colleague.say_in_group(STAFF_CHAT, "第二句:查到了", reply_to=held_reply["message_id"])
        staff.say_in_group(STAFF_CHAT, "小红您好,马上补发", reply_to=card_b.message_id)
        tap = staff.tap("🙋 我来跟进", chat_id=STAFF_CHAT)  # the newest card: the second's
        await said(api, second, "马上补发", mark)
        await api.wait_answer(tap)
        assert heard(api, first, "正在查") is None and heard(api, first, "查到了") is None
    finally:
        release.set()
    await said(api, first, "查到了", mark)
    one, two = heard(api, first, "正在查"), heard(api, first, "查到了")
    assert one is not None and two is not None and one < two
