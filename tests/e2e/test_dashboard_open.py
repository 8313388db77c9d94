"""Opening the manager's dashboard from Telegram: `/dashboard` from a manager brings a private
message with a Mini App button at PUBLIC_URL/dashboard (from the staff group too, or, where the
manager never started the bot, a link in the group that starts it and then brings the button);
anyone else is told politely that it is the managers', and no complaint starts; with no
PUBLIC_URL the manager is told the dashboard needs it."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from bot.standin import BotApiStandIn, Sent
from tests.conftest import MANAGER_ID, STAFF_CHAT
from tests.e2e.people import in_group, said

PUBLIC = "https://desk.example.com"


def buttons_of(sent: Sent) -> list[dict[str, Any]]:
    """The inline buttons under a message, as Telegram got them."""
    markup = sent.reply_markup or {}
    return [button for row in markup.get("inline_keyboard", []) for button in row]


def no_complaint(api: BotApiStandIn, user_id: int) -> None:
    """Nothing the desk said to this person asks about a complaint."""
    texts = [s.text for s in api.sent_to(user_id)]
    assert not any("哪一类问题" in t or "What kind of problem" in t for t in texts), texts


async def test_a_manager_gets_the_button_in_private_and_others_are_told_politely(
    api: BotApiStandIn, start_bot: Any
) -> None:
    """A manager's /dashboard in private brings the Mini App button at PUBLIC_URL/dashboard, in
    their language; a customer's and a staff member's /dashboard are answered that it is the
    managers', and start no complaint."""
    bot = await start_bot(public_url=PUBLIC, manager_ids=f"{MANAGER_ID},4343")
    boss = api.person(MANAGER_ID, "陈店长", "zh")
    mark = len(api.sent)
    boss.send("/dashboard")
    answer = await said(api, boss, "投诉看板", mark)
    [button] = buttons_of(answer)
    assert button == {"text": "📊 打开投诉看板", "web_app": {"url": f"{PUBLIC}/dashboard"}}

    deputy = api.person(4343, "Anna", "en")
    mark = len(api.sent)
    deputy.send("/dashboard@desk_bot")
    answer = await said(api, deputy, "complaints dashboard", mark)
    assert buttons_of(answer)[0]["web_app"] == {"url": f"{PUBLIC}/dashboard"}
    assert buttons_of(answer)[0]["text"] == "📊 Open the dashboard"

    customer = api.person(2101, "小明", "zh")
    mark = len(api.sent)
    customer.send("/dashboard")
    refusal = await said(api, customer, "投诉看板是店长看数据用的", mark)
    assert "MANAGER_IDS" not in refusal.text and not buttons_of(refusal)
    clerk = api.person(3102, "小李", "zh")
    clerk.say_in_group(STAFF_CHAT, "在吗")  # staff, in the group
    mark = len(api.sent)
    clerk.send("/start dashboard")  # a start link passed on to someone else
    await said(api, clerk, "投诉看板是店长看数据用的", mark)
    await bot.settled()
    for person in (boss, deputy, customer, clerk):
        no_complaint(api, person.id)
    assert len(api.sent_to(customer.id)) == 1 and len(api.sent_to(clerk.id)) == 1


async def test_from_the_group_a_manager_who_never_started_the_bot_gets_a_start_link(
    api: BotApiStandIn, start_bot: Any
) -> None:
    """/dashboard in the staff group from a manager who never started the bot: the private
    message is refused by Telegram, so the group gets a link that starts the bot; /start
    dashboard then brings the button. Once the chat exists, /dashboard in the group sends the
    button privately and the group hears that it went."""
    bot = await start_bot(public_url=PUBLIC)
    boss = api.person(MANAGER_ID, "陈店长", "zh", started=False)
    mark = len(api.sent)
    boss.say_in_group(STAFF_CHAT, "/dashboard")
    link = await in_group(api, "私聊", mark)
    assert buttons_of(link) == [
        {"text": "💬 私聊机器人,打开看板", "url": "https://t.me/desk_bot?start=dashboard"}
    ]
    assert "陈店长" in link.text and "您还没私聊过我" in link.text  # why: Telegram said 403
    tried = [p for m, p in api.calls if m == "sendMessage" and str(p["chat_id"]) == str(boss.id)]
    assert len(tried) == 1 and api.sent_to(boss.id) == []  # Telegram refused it (403)

    mark = len(api.sent)
    boss.send("/start dashboard")  # the link opens the private chat; the manager taps Start
    answer = await said(api, boss, "投诉看板", mark)
    assert buttons_of(answer)[0]["web_app"] == {"url": f"{PUBLIC}/dashboard"}

    mark = len(api.sent)
    boss.say_in_group(STAFF_CHAT, "/dashboard@desk_bot")
    note = await in_group(api, "私信发给您", mark)
    assert not buttons_of(note)
    again = await said(api, boss, "投诉看板", mark)
    assert buttons_of(again)[0]["web_app"] == {"url": f"{PUBLIC}/dashboard"}
    await bot.settled()
    no_complaint(api, boss.id)
    group = [s for s in api.sent_to(STAFF_CHAT) if s.message_id > link.message_id]
    assert [s.text for s in group] == [note.text]  # no button ever went to the group


async def test_a_staff_member_is_told_in_the_group_that_it_is_the_managers(
    api: BotApiStandIn, start_bot: Any
) -> None:
    """/dashboard in the group from someone who is not a manager: a polite word in the group,
    nothing in private."""
    bot = await start_bot(public_url=PUBLIC)
    clerk = api.person(3102, "小李", "zh")
    mark = len(api.sent)
    clerk.say_in_group(STAFF_CHAT, "/dashboard")
    refusal = await in_group(api, "只有店长可以用", mark)
    assert "小李" in refusal.text and not buttons_of(refusal)
    await bot.settled()
    assert api.sent_to(clerk.id) == []


async def test_without_public_url_the_manager_is_told_what_it_needs(
    api: BotApiStandIn, start_bot: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """With neither PUBLIC_URL nor WEBHOOK_URL, /dashboard (in private and in the group) tells
    the manager the dashboard needs PUBLIC_URL, with no button; the log said so once, at the
    start."""
    caplog.set_level(logging.WARNING, logger="bot.app")
    bot = await start_bot()
    boss = api.person(MANAGER_ID, "陈店长", "zh")
    mark = len(api.sent)
    boss.send("/dashboard")
    answer = await said(api, boss, "PUBLIC_URL", mark)
    assert "需要先设置" in answer.text and not buttons_of(answer)
    mark = len(api.sent)
    boss.say_in_group(STAFF_CHAT, "/dashboard")
    in_room = await in_group(api, "PUBLIC_URL", mark)
    assert "需要先设置" in in_room.text and not buttons_of(in_room)
    await bot.settled()
    no_complaint(api, boss.id)
    lines = [r.getMessage() for r in caplog.records if "PUBLIC_URL is not set" in r.getMessage()]
    assert len(lines) == 1
