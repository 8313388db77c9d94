"""Who the managers are, as the Telegram adapter tells the desk: learnt from Telegram outside
any unit of work, answered at once."""

from __future__ import annotations

from telegram import Bot

from bot.channels.telegram.routes import Managers
from bot.domain.tickets import Actor
from bot.standin import BotApiStandIn
from tests.conftest import MANAGER_ID, STAFF_CHAT


async def test_the_managers_are_answered_from_what_was_learnt_without_asking_telegram(
    api: BotApiStandIn,
) -> None:
    """`people()` asks Telegram nothing (a unit of work may call it while it holds the
    database); `refresh()` learns the names and the group's administrators beforehand."""
    api.person(MANAGER_ID, "陈店长", "zh")
    api.person(3999, "赵组长", "zh")
    api.groups[STAFF_CHAT].admins.add(3999)
    bot = Bot(api.token, base_url=f"{api.base_url}/bot")
    await bot.initialize()
    try:
        managers = Managers(bot, (MANAGER_ID,), STAFF_CHAT, include_admins=True)
        calls = len(api.calls)
        assert managers.people() == [Actor(str(MANAGER_ID), "", "manager")]  # no name yet
        assert len(api.calls) == calls

        await managers.refresh()
        calls = len(api.calls)
        assert managers.people() == [
            Actor("3999", "赵组长", "manager"),
            Actor(str(MANAGER_ID), "陈店长", "manager"),
        ]
        assert await managers.is_manager(3999) and not await managers.is_manager(3001)
        assert len(api.calls) == calls  # all of it from what `refresh` learnt
    finally:
        await bot.shutdown()
