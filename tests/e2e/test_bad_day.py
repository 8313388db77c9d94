"""A bad day loses nothing: the database locked for longer than a write waits, a passing fault
while an update is handled, a bug that keeps one message from being handled, and the staff
group answering 502 for longer than the sender used to try."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.exc import OperationalError

from bot.standin import BotApiStandIn
from tests.conftest import STAFF_CHAT
from tests.e2e.people import file_complaint, in_group, said


def fail_handling(bot: Any, text: str, fault: Exception, times: int | None = None) -> list[int]:
    """Handling a message with this text fails with `fault` (`times` times; None: always);
    returns how often it was tried, as the test goes on."""
    router = bot.app.poller.router
    handle, tries = router.handle, [0]

    async def failing(uow: Any, update: Any, greeted: bool, followed: bool = False) -> Any:
        if update.message is not None and update.message.text == text:
            tries[0] += 1
            if times is None or tries[0] <= times:
                if isinstance(fault, sqlite3.Error):  # as SQLAlchemy raises a driver's error
                    raise OperationalError("UPDATE tickets", {}, fault)
                raise fault
        return await handle(uow, update, greeted, followed)

    router.handle = failing
    return tries


def _polls(api: BotApiStandIn) -> int:
    return sum(1 for method, _ in api.calls if method == "getUpdates")


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # a lock from outside
async def test_a_locked_database_holds_a_customer_up_and_loses_nothing(
    api: BotApiStandIn, start_bot: Any, database_url: str, tmp_path: Path
) -> None:
    """Another program holds SQLite's write lock for longer than the desk's busy timeout while
    two customers write (one new, one mid-intake): the desk keeps asking Telegram for the same
    updates, and once the lock is gone both are answered, once each."""
    bot = await start_bot(database_busy_timeout="1s")
    known = api.person(7301, "小周", "zh")
    known.send("你好")
    await said(api, known, "哪一类问题")
    known.tap("花材质量")
    await said(api, known, "订单号")
    await bot.settled()

    lock = sqlite3.connect(tmp_path / "desk.db", isolation_level=None, timeout=30)
    lock.execute("BEGIN IMMEDIATE")
    try:
        mark, polls = len(api.sent), _polls(api)
        known.send("FS2026112301")
        newcomer = api.person(7302, "小吴", "zh")
        newcomer.send("你好")
        # storing failed at least twice: the same updates were asked for again
        await api.wait_calls("getUpdates", polls + 3, timeout=60)
        assert not api.sent_to(newcomer.id)
    finally:
        lock.execute("ROLLBACK")
        lock.close()
    await said(api, known, "发生了什么", mark, timeout=60)
    await said(api, newcomer, "哪一类问题", mark, timeout=60)
    await bot.settled()
    assert sum("发生了什么" in s.text for s in api.sent_to(known.id)) == 1
    assert sum("哪一类问题" in s.text for s in api.sent_to(newcomer.id)) == 1


async def test_a_passing_fault_while_handling_is_tried_again(
    api: BotApiStandIn, start_bot: Any
) -> None:
    """Handling a customer's message meets "database is locked" twice: the message is not
    dropped; it is handled again and answered once."""
    bot = await start_bot()
    customer = api.person(7311, "小郑", "zh")
    customer.send("你好")
    await said(api, customer, "哪一类问题")
    customer.tap("花材质量")
    await said(api, customer, "订单号")
    await bot.settled()

    tries = fail_handling(bot, "FS2026112309", sqlite3.OperationalError("locked"), times=2)
    mark = len(api.sent)
    customer.send("FS2026112309")
    await said(api, customer, "发生了什么", mark, timeout=30)
    await bot.settled()
    assert tries == [3]  # two faults, then handled
    assert sum("发生了什么" in s.text for s in api.sent_to(customer.id)) == 1


async def test_a_message_that_keeps_failing_is_set_aside_and_staff_hear_of_it(
    api: BotApiStandIn, start_bot: Any
) -> None:
    """A bug keeps one customer message from being handled: after a few tries it is set aside,
    the staff group hears whose message it was, and the customer's next message is handled."""
    bot = await start_bot()
    customer = api.person(7321, "小钱", "zh")
    customer.send("你好")
    await said(api, customer, "哪一类问题")
    await bot.settled()

    tries = fail_handling(bot, "这条会出错", ValueError("a bug in the desk"))
    mark = len(api.sent)
    customer.send("这条会出错")
    notice = await in_group(api, "出了错", mark, timeout=30)
    assert "小钱" in notice.text and "这条会出错" in notice.text
    assert tries == [3]
    customer.tap("花材质量")  # the chat moves on
    await said(api, customer, "订单号", mark)


async def test_the_staff_group_away_for_minutes_still_gets_every_card_and_relay(
    api: BotApiStandIn, start_bot: Any
) -> None:
    """The staff group answers 502 for longer than the sender used to try (it gave a row up
    after 30 refusals) while two customers complain: once Telegram is back, both cards and the
    customer's later message arrive, each once."""
    bot = await start_bot(rate_group_per_minute="600")  # the refusals come quickly, too
    bot.app.telegram.api.backoff_first = bot.app.telegram.api.backoff_most = 0.01
    bot.app.sender.retry_first = bot.app.sender.retry_most = 0.02  # minutes, made short
    outage = api.inject("sendMessage", 502, count=10**6, chat_id=STAFF_CHAT)
    customers = [api.person(7331 + i, f"顾客{i}", "zh") for i in range(2)]
    for customer in customers:
        mark = len(api.sent)
        await file_complaint(api, customer, photos=(), submit=False)
        customer.tap("✅ 提交")
        await said(api, customer, "投诉单号", mark)
    customers[0].send("还有,花瓶也碎了")
    await bot.handled()
    tried = lambda: sum(  # noqa: E731
        m == "sendMessage" and str(p.get("chat_id")) == str(STAFF_CHAT) for m, p in api.calls
    )
    await api.until(lambda: tried() > 40, timeout=60)  # each call a 502, more than 30
    assert not api.sent_to(STAFF_CHAT)

    outage.lift()
    await bot.settled()
    cards = [s for s in api.sent_to(STAFF_CHAT) if "📋 投诉单" in s.text]
    assert len(cards) == 2
    assert sum("花瓶也碎了" in s.text for s in api.sent_to(STAFF_CHAT)) == 1


async def test_a_staff_reply_that_keeps_failing_is_told_to_its_writer(
    api: BotApiStandIn, start_bot: Any
) -> None:
    """A bug keeps a staff member's reply from being handled: after a few tries the staff
    member hears, in the group, that it went nowhere (not as a customer's message), and the
    customer gets nothing of it."""
    bot = await start_bot()
    customer = api.person(7341, "小孙", "zh")
    card = await file_complaint(api, customer, photos=())
    tries = fail_handling(bot, "这条回复会出错", ValueError("a bug in the desk"))
    staff = api.person(7441, "小王", "zh")
    mark = len(api.sent)
    staff.say_in_group(STAFF_CHAT, "这条回复会出错", reply_to=card.message_id)
    notice = await in_group(api, "没能处理", mark, timeout=30)
    assert "小王" in notice.text and "没有发给客户" in notice.text and tries == [3]
    await bot.settled()
    assert not any("出错" in s.text for s in api.sent_to(customer.id))
    assert not any("顾客 小王" in s.text for s in api.sent_to(STAFF_CHAT))
