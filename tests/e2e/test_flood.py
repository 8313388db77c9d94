"""A shop's bad day: many customers at once, with the stand-in enforcing Telegram's limits."""

from __future__ import annotations

import asyncio

from bot.standin import BotApiStandIn, TelegramLimits
from tests.e2e.people import said

# Telegram's limits as the bot assumes them by default (the other tests widen them)
TELEGRAM_DEFAULTS = {"rate_per_chat": "1", "rate_chat_burst": "5", "rate_group_per_minute": "20"}


async def test_fifty_customers_at_once_all_get_a_first_reply(
    api: BotApiStandIn, start_bot
) -> None:
    """Fifty customers write in the same second: each gets the bot's first reply exactly once,
    and the bot stays inside Telegram's limits (no 429)."""
    api.limits = TelegramLimits()
    await start_bot(**TELEGRAM_DEFAULTS)
    customers = [api.person(8000 + i, f"顾客{i}", "zh") for i in range(50)]
    for customer in customers:
        customer.send("你好,我的花出问题了")
    replies = await asyncio.gather(
        *(said(api, customer, "哪一类问题", timeout=30) for customer in customers)
    )
    assert all("非常抱歉" in reply.text for reply in replies)
    for customer in customers:  # answered once: nothing lost, nothing doubled
        assert len(api.sent_to(customer.id)) == 1
    assert api.limits.refused == 0


async def test_a_429_under_the_limits_is_retried_not_lost(api: BotApiStandIn, start_bot) -> None:
    """Telegram answers 429 to one customer's first reply: the bot waits and sends the same
    reply again; everyone else is answered meanwhile."""
    api.limits = TelegramLimits()
    await start_bot(**TELEGRAM_DEFAULTS)
    unlucky = api.person(8100, "小运", "zh")
    others = [api.person(8101 + i, f"顾客{i}", "zh") for i in range(10)]
    api.inject("sendMessage", 429, retry_after=2, chat_id=unlucky.id)
    for customer in [unlucky, *others]:
        customer.send("你好")
    await asyncio.gather(*(said(api, c, "哪一类问题", timeout=30) for c in others))
    reply = await said(api, unlucky, "哪一类问题", timeout=30)
    assert "非常抱歉" in reply.text
    assert len(api.sent_to(unlucky.id)) == 1
    refused = [p for m, p in api.calls if m == "sendMessage" and p.get("chat_id") == unlucky.id]
    assert len(refused) == 2  # the 429, then the same reply again
    assert api.limits.refused == 0  # the bot caused no 429 of its own
