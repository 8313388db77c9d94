"""The clock through the Bot API stand-in, with second-scale settings."""

from __future__ import annotations

import asyncio
import time as time_module
from collections.abc import Callable
from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import pytest
from sqlalchemy import select, update

from bot.standin import BotApiStandIn
from storage.db import create_engine
from storage.models import DeadlineRow, TicketRow
from tests.conftest import MANAGER_ID, STAFF_CHAT, needs_postgres
from tests.e2e.people import file_complaint, in_group, said

MANAGER_LINK = f"tg://user?id={MANAGER_ID}"
FIRST_RESPONSE = "first_response"
TUESDAY_EVENING = datetime(2026, 11, 24, 20, 22, tzinfo=ZoneInfo("Asia/Shanghai"))
FIRST_TEN = timedelta(minutes=10)  # SLA_FIRST_RESPONSE's default


def running_from(start: datetime) -> Callable[[], datetime]:
    """A clock that says `start` when made and runs on at the real pace (aware UTC)."""
    began = time_module.monotonic()

    def clock() -> datetime:
        return start.astimezone(UTC) + timedelta(seconds=time_module.monotonic() - began)

    return clock


async def first_response_deadlines(database_url: str) -> list[Any]:
    """The first-response deadlines as the desk stored them (fired or not)."""
    engine = create_engine(database_url)
    try:
        async with engine.connect() as db:
            query = select(DeadlineRow).where(DeadlineRow.kind == FIRST_RESPONSE)
            return list((await db.execute(query)).all())
    finally:
        await engine.dispose()


async def test_a_missed_first_response_pages_the_manager_and_calms_the_customer(
    api: BotApiStandIn, start_bot, database_url: str
) -> None:
    """No human answer within SLA_FIRST_RESPONSE: the managers are mentioned under the card,
    the customer hears a person is on it; a ticket answered in time never escalates."""
    api.person(MANAGER_ID, "陈店长", "zh")
    bot = await start_bot(sla_first_response="4s")
    customer = api.person(8001, "小明", "zh")
    answered = api.person(8002, "小红", "zh")
    staff = api.person(8101, "小王", "zh")
    card = await file_complaint(api, customer, photos=())
    other_card = await file_complaint(api, answered, photos=())
    staff.say_in_group(STAFF_CHAT, "您好,我马上处理", reply_to=other_card.message_id)
    await said(api, answered, "我马上处理")

    page = await in_group(api, "还没有人回复", timeout=20)
    assert "T-000001" in page.text and MANAGER_LINK in page.links
    assert page.reply_to == card.message_id
    await said(api, customer, "马上会有同事在这里回复您")
    # nothing is left that could page: the late ticket's deadline has fired (once), and the
    # answered ticket's was dropped when the answer reached the customer
    await bot.settled()
    deadlines = await first_response_deadlines(database_url)
    assert [(d.ticket_id, d.fired_at is not None) for d in deadlines] == [(1, True)]
    pages = [s for s in api.sent_to(STAFF_CHAT) if "还没有人回复" in s.text]
    assert len(pages) == 1  # once, and not for the ticket answered in time
    assert not any("马上会有同事" in s.text for s in api.sent_to(answered.id))


async def test_a_deadline_that_passed_while_the_bot_was_down_fires_once_after_restart(
    api: BotApiStandIn, start_bot_process, database_url: str
) -> None:
    """Killed before the deadline, started after it: the page comes once, right after start.
    (The deadline is moved into the past while the bot is down, as if the time had passed.)"""
    bot = await start_bot_process(sla_first_response="1h")
    customer = api.person(8003, "小刚", "zh")
    await file_complaint(api, customer, photos=())
    bot.kill9()
    engine = create_engine(database_url)
    async with engine.begin() as db:
        past = datetime.now(UTC) - timedelta(minutes=1)
        await db.execute(
            update(DeadlineRow).where(DeadlineRow.kind == FIRST_RESPONSE).values(due_at=past)
        )
    await engine.dispose()
    assert not any("还没有人回复" in s.text for s in api.sent)
    again = await start_bot_process(sla_first_response="1h")
    await in_group(api, "还没有人回复", timeout=15)
    await again.stop()
    [deadline] = await first_response_deadlines(database_url)
    assert deadline.fired_at is not None  # claimed once: no start will fire it again
    third = await start_bot_process(sla_first_response="1h")
    mark = len(api.sent)
    api.person(8005, "小芳", "zh").send("你好")  # a sentinel: the bot is up and working
    await api.wait_for(lambda s: s.chat_id == 8005, after=mark)
    await third.stop()  # what it had to say is said before it stops
    assert len([s for s in api.sent if "还没有人回复" in s.text]) == 1


async def test_the_follow_up_question_and_a_low_score_reopen_the_ticket(
    api: BotApiStandIn, start_bot
) -> None:
    """After the fix the customer is asked 1-5; a 2 goes back to the group with the managers
    mentioned, and the ticket is open again; the comment reaches staff."""
    api.person(MANAGER_ID, "陈店长", "zh")
    await start_bot(follow_up_after="2s", auto_close_after="1h")
    customer = api.person(8004, "小丽", "zh")
    manager = api.person(MANAGER_ID, "陈店长", "zh")
    card = await file_complaint(api, customer, photos=())
    mark = len(api.sent)
    manager.tap("✅ 直接结案(不补偿)", chat_id=STAFF_CHAT)
    question = await said(api, customer, "满意吗", mark, timeout=20)
    assert question.buttons() == ["1 很不满意", "2 不满意", "3 一般", "4 满意", "5 非常满意"]
    mark = len(api.sent)
    customer.tap("2 不满意")
    low = await in_group(api, "打了 2 分", mark)
    assert MANAGER_LINK in low.links
    await said(api, customer, "重新打开", mark)
    await api.wait_for(lambda s: s.message_id == card.message_id and "待处理" in s.text)
    mark = len(api.sent)
    customer.send("花还是不新鲜,而且没人联系我")
    comment = await in_group(api, "评价留言", mark)
    assert "没人联系我" in comment.text


async def test_no_answer_to_the_follow_up_closes_the_ticket_as_accepted(
    api: BotApiStandIn, start_bot
) -> None:
    """AUTO_CLOSE_AFTER without an answer: closed, and the group sees it."""
    await start_bot(follow_up_after="1s", auto_close_after="2s")
    customer = api.person(8005, "小美", "zh")
    manager = api.person(MANAGER_ID, "陈店长", "zh")
    card = await file_complaint(api, customer, photos=())
    mark = len(api.sent)
    manager.tap("✅ 直接结案(不补偿)", chat_id=STAFF_CHAT)
    await said(api, customer, "满意吗", mark, timeout=20)
    closed = await in_group(api, "已结案", mark, timeout=20)
    assert "视为接受" in closed.text
    await api.wait_for(lambda s: s.message_id == card.message_id and "📁 已结案" in s.text)


async def test_a_safety_word_pages_the_managers_before_the_intake_ends(
    api: BotApiStandIn, start_bot
) -> None:
    """The very first message mentions an allergy: the group is alerted within seconds, the
    ticket is critical, and the card says why when it comes."""
    api.person(MANAGER_ID, "陈店长", "zh")
    await start_bot()
    customer = api.person(8006, "张女士", "zh")
    customer.send("你好,孩子碰了你们的花以后过敏了,现在在医院")
    alert = await in_group(api, "重大投诉预警", timeout=10)
    assert "过敏" in alert.text and "医院" in alert.text and MANAGER_LINK in alert.links
    await said(api, customer, "非常抱歉")
    staff = api.person(8106, "小王", "zh")
    mark = len(api.sent)
    staff.say_in_group(STAFF_CHAT, "张女士您好,店长马上联系您", reply_to=alert.message_id)
    await said(api, customer, "店长马上联系您", mark)
    mark = len(api.sent)
    customer.tap("花材质量")
    await said(api, customer, "订单号", mark)
    mark = len(api.sent)
    customer.tap("我没有订单号")
    await said(api, customer, "照片", mark)
    mark = len(api.sent)
    customer.tap("没有照片,跳过")
    await said(api, customer, "怎么联系您", mark)
    mark = len(api.sent)
    customer.send("13800138000")
    await said(api, customer, "请您核对", mark)
    mark = len(api.sent)
    customer.tap("✅ 提交")
    card = await in_group(api, "投诉单", mark)
    assert "重大投诉" in card.text and "建议等级:重大" in card.text


async def test_a_banned_phrase_is_held_back_and_the_clean_reply_goes_through(
    api: BotApiStandIn, start_bot
) -> None:
    """Staff are told at once which phrase and why, with a better wording; the customer never
    receives it."""
    await start_bot()
    customer = api.person(8007, "小吴", "zh")
    staff = api.person(8107, "小王", "zh")
    card = await file_complaint(api, customer, photos=())
    mark = len(api.sent)
    staff.say_in_group(STAFF_CHAT, "亲,一分钱一分货哦", reply_to=card.message_id)
    held = await in_group(api, "没有发给客户", mark)
    assert "一分钱一分货" in held.text and "可以这样说" in held.text
    staff.say_in_group(STAFF_CHAT, "非常抱歉,我们马上给您重做", reply_to=card.message_id)
    await said(api, customer, "马上给您重做", mark)
    assert not any("一分钱" in s.text for s in api.sent_to(customer.id))


async def test_an_unfinished_intake_is_submitted_as_it_stands(
    api: BotApiStandIn, start_bot
) -> None:
    """The customer stops answering: after INTAKE_TIMEOUT staff get what they gave."""
    await start_bot(intake_timeout="3s")
    customer = api.person(8008, "小郑", "zh")
    customer.send("订单 FS2026112301 的花送错了,完全不是我订的")
    await said(api, customer, "照片")
    card = await in_group(api, "投诉单", timeout=20)
    assert "超时自动提交" in card.text and "FS2026112301" in card.text
    await said(api, customer, "交给了店里的同事")
    mark = len(api.sent)
    customer.send("补充一下,是给妈妈的生日花")
    await in_group(api, "给妈妈的生日花", mark)


async def test_a_repeat_complaint_within_thirty_days_is_flagged(
    api: BotApiStandIn, start_bot
) -> None:
    """The same customer's second ticket shows the first on its card."""
    await start_bot()
    customer = api.person(8009, "小冯", "zh")
    manager = api.person(MANAGER_ID, "陈店长", "zh")
    await file_complaint(api, customer, photos=())
    manager.tap("✅ 直接结案(不补偿)", chat_id=STAFF_CHAT)
    await said(api, customer, "已经处理完毕")
    second = await file_complaint(api, customer, photos=(), order="FS2026112399")
    assert "90 天内投诉过 1 次" in second.text and "T-000001" in second.text


async def test_progress_reminds_who_took_it_and_resolution_pages_the_managers(
    api: BotApiStandIn, start_bot
) -> None:
    """Answered in time but no progress: the taker is reminded and the customer updated;
    still unsolved at SLA_RESOLUTION: the managers are paged."""
    api.person(MANAGER_ID, "陈店长", "zh")
    await start_bot(sla_progress="3s", sla_resolution="6s")
    customer = api.person(8010, "小秦", "zh")
    staff = api.person(8110, "小王", "zh")
    card = await file_complaint(api, customer, photos=())
    staff.say_in_group(STAFF_CHAT, "您好,我来处理", reply_to=card.message_id)
    await said(api, customer, "我来处理")
    reminder = await in_group(api, "需要给客户一个进展", timeout=15)
    assert f"tg://user?id={staff.id}" in reminder.links
    await said(api, customer, "跟您同步一下进度")
    page = await in_group(api, "已超过解决时限", timeout=15)
    assert MANAGER_LINK in page.links


async def test_a_content_customer_is_thanked_and_the_ticket_closed(
    api: BotApiStandIn, start_bot
) -> None:
    """A score of 5: thanks, the group sees the score, the card shows it closed."""
    await start_bot(follow_up_after="1s")
    customer = api.person(8011, "小韩", "zh")
    manager = api.person(MANAGER_ID, "陈店长", "zh")
    card = await file_complaint(api, customer, photos=())
    mark = len(api.sent)
    manager.tap("✅ 直接结案(不补偿)", chat_id=STAFF_CHAT)
    await said(api, customer, "满意吗", mark, timeout=15)
    mark = len(api.sent)
    customer.tap("5 非常满意")
    thanks = await said(api, customer, "谢谢您的评价", mark)
    assert thanks.buttons() == ["不用了,谢谢"]
    await in_group(api, "评分:5 分", mark)
    await api.wait_for(lambda s: s.message_id == card.message_id and "⭐ 回访评分:5 分" in s.text)


@pytest.mark.parametrize(("opens", "closes"), [("21:00", "00:00"), ("22:00", "02:00")])
async def test_outside_working_hours_the_customer_hears_when_people_are_back(
    api: BotApiStandIn, start_bot, tmp_path, opens: str, closes: str
) -> None:
    """The empathy answer comes at once; on submit the customer is told when staff are back,
    and the first-response clock starts then: at 20:22 with hours that end at midnight or run
    past it, staff are back the same evening. (The desk's clock says Tuesday 20:22 in
    Shanghai whenever the test runs.)"""
    from bot.config import BUNDLED_POLICY

    policy = tmp_path / "hours.yaml"
    policy.write_text(
        BUNDLED_POLICY.read_text(encoding="utf-8").replace(
            "# working_hours:", f'working_hours: {{opens: "{opens}", closes: "{closes}"}}\n#'
        ),
        encoding="utf-8",
    )
    await start_bot(clock=running_from(TUESDAY_EVENING), shop_policy=str(policy))
    customer = api.person(8012, "小夜", "zh")
    card = await file_complaint(api, customer, photos=())
    submitted = next(s for s in api.sent_to(customer.id) if "投诉单号" in s.text)
    assert f"11月24日 {opens} 上班后" in submitted.text
    due = datetime.combine(TUESDAY_EVENING.date(), time.fromisoformat(opens)) + FIRST_TEN
    assert f"首次回复 {due:%m-%d %H:%M} 前" in card.text


async def intake_timeouts(database_url: str) -> dict[str, tuple[Any, str]]:
    """Each customer's intake-timeout deadline (fired or not) and where their ticket stands."""
    engine = create_engine(database_url)
    try:
        async with engine.connect() as db:
            query = (
                select(TicketRow.customer_id, DeadlineRow.fired_at, TicketRow.status)
                .join(DeadlineRow, DeadlineRow.ticket_id == TicketRow.id)
                .where(DeadlineRow.kind == "intake_timeout")
            )
            return {row[0]: (row[1], row[2]) for row in (await db.execute(query)).all()}
    finally:
        await engine.dispose()


async def test_a_start_and_nothing_more_is_dropped_without_a_word(
    api: BotApiStandIn, start_bot, database_url: str
) -> None:
    """A customer presses Start and says nothing: when the intake times out, staff get no card
    and the customer nothing beyond the greeting. One who answered one question still becomes
    an incomplete card."""
    bot = await start_bot(intake_timeout="2s")
    silent = api.person(8013, "小静", "zh")
    answering = api.person(8014, "小答", "zh")
    silent.send("/start")
    await said(api, silent, "哪一类问题")
    answering.send("/start")
    await said(api, answering, "哪一类问题")
    mark = len(api.sent)
    answering.tap("花材质量")
    await said(api, answering, "订单号", mark)

    card = await in_group(api, "投诉单", timeout=20)
    assert "超时自动提交" in card.text and "小答" in card.text
    await said(api, answering, "交给了店里的同事")
    # the silent intake timed out first (it began first): its work is done by now
    await bot.settled()
    timeouts = await intake_timeouts(database_url)
    assert timeouts[str(silent.id)][0] is not None  # fired: the barrier held
    assert timeouts[str(silent.id)][1] == "cancelled"
    assert not any("小静" in s.text for s in api.sent_to(STAFF_CHAT))
    assert len([s for s in api.sent_to(STAFF_CHAT) if "投诉单" in s.text]) == 1
    assert len(api.sent_to(silent.id)) == 1  # the greeting, nothing more


@pytest.mark.parametrize(
    "database_url",  # on SQLite the action waits for the write lock before it claims anything
    [pytest.param("postgres", marks=[needs_postgres, pytest.mark.postgres])],
    indirect=True,
)
async def test_a_kill_9_between_the_claim_and_the_commit_leaves_the_deadline_to_fire(
    api: BotApiStandIn, start_bot_process, database_url: str
) -> None:
    """The bot is killed while the first-response page is being written (its transaction has
    claimed the deadline and waits for the ticket's row, which the test holds): nothing was
    committed, so the deadline is still unfired, and after the restart the page comes, once."""
    dsn = database_url.replace("postgresql+asyncpg", "postgresql")
    bot = await start_bot_process(sla_first_response="1h")
    customer = api.person(8015, "小林", "zh")
    await file_complaint(api, customer, photos=())
    holder = await asyncpg.connect(dsn)
    try:  # the ticket's row is held until the holder goes
        await holder.execute("BEGIN; SELECT id FROM tickets WHERE id = 1 FOR UPDATE")
        mover = await asyncpg.connect(dsn)  # the deadline is due now
        try:
            await mover.execute(
                "UPDATE deadlines SET due_at = now() - interval '1 minute' "
                "WHERE kind = 'first_response'"
            )
        finally:
            await mover.close()
        api.person(8016, "小哨", "zh").send("你好")  # a commit: the scheduler looks now
        await until_waiting_for_a_lock(dsn)
        bot.kill9()
        [deadline] = await first_response_deadlines(database_url)
        assert deadline.fired_at is None  # the claim died with the transaction
    finally:
        await holder.close()  # the row is free again

    again = await start_bot_process(sla_first_response="1h")
    await in_group(api, "还没有人回复", timeout=20)
    await again.stop()
    [deadline] = await first_response_deadlines(database_url)
    assert deadline.fired_at is not None
    assert len([s for s in api.sent if "还没有人回复" in s.text]) == 1


async def until_waiting_for_a_lock(dsn: str, timeout: float = 30.0) -> None:
    """Until the bot's action waits to read the ticket the test holds (SELECT ... FOR UPDATE):
    the database's own state, looked at again and again (from a connection of its own: inside
    a transaction the view would not change)."""
    db = await asyncpg.connect(dsn)
    try:
        deadline = asyncio.get_running_loop().time() + timeout
        query = (
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND wait_event_type = 'Lock' AND state = 'active' "
            "AND query LIKE 'SELECT tickets.id, %'"  # (the text is cut after 1,024 bytes)
        )
        while not await db.fetchval(query):
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError(f"nothing waited for the ticket's row within {timeout}s")
            await asyncio.sleep(0.05)
    finally:
        await db.close()
