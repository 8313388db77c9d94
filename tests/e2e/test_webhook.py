"""Webhook mode on one instance: Telegram posts each update to the desk's server, with the
secret it was given; what is answered 200 is stored, what cannot be stored is sent again."""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bot.standin import BotApiStandIn
from bot.standin.proxy import RoundRobin
from tests.e2e.people import file_complaint, said

SECRET = "webhook-secret-of-the-shop"


@pytest.fixture
async def webhook_desk(
    api: BotApiStandIn, start_bot: Callable[..., Awaitable[Any]]
) -> AsyncIterator[Callable[..., Awaitable[Any]]]:
    """A desk in webhook mode behind a proxy (its public address, known before it starts)."""
    proxy = RoundRobin([])
    url = await proxy.start()

    async def start(**settings: str) -> Any:
        bot = await start_bot(WEBHOOK_URL=f"{url}/telegram", WEBHOOK_SECRET=SECRET, **settings)
        proxy.set_upstreams([bot.app.http.url])
        return bot

    yield start
    await proxy.stop()


async def inbox_size(bot: Any) -> int:
    from sqlalchemy import func, select

    from storage.models import InboxRow

    async with bot.app.new_uow(read_only=True) as uow:
        return int(await uow.session.scalar(select(func.count()).select_from(InboxRow)) or 0)


async def test_a_complaint_arrives_by_webhook_and_the_desk_never_deletes_it(
    api: BotApiStandIn, webhook_desk: Callable[..., Awaitable[Any]], caplog: Any
) -> None:
    """The desk tells Telegram its address and secret at start, takes the whole complaint by
    webhook, never polls, and leaves the webhook in place when it stops (other instances may
    be behind it). Without Redis it says it must be the only one."""
    caplog.set_level(logging.WARNING)
    bot = await webhook_desk()
    (_, params), *_ = [c for c in api.calls if c[0] == "setWebhook"]
    assert params["url"].endswith("/telegram") and params["secret_token"] == SECRET
    customer = api.person(2201, "小林", "zh")
    await file_complaint(api, customer)
    await bot.stop()
    methods = {method for method, _ in api.calls}
    assert "getUpdates" not in methods and "deleteWebhook" not in methods
    assert "must be the only one" in caplog.text and "REDIS_URL is not set" in caplog.text


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_a_post_without_the_secret_is_refused_and_nothing_is_stored(
    api: BotApiStandIn, webhook_desk: Callable[..., Awaitable[Any]]
) -> None:
    """Someone who found the address posts an update: no secret 401, a wrong one 403, nothing
    stored, nobody answered. Telegram's own post (the right secret) works as ever."""
    bot = await webhook_desk()
    forged = {
        "update_id": 990001,
        "message": {
            "message_id": 1,
            "date": 1700000000,
            "chat": {"id": 2202, "type": "private", "first_name": "假"},
            "from": {"id": 2202, "is_bot": False, "first_name": "假"},
            "text": "<b>退款</b>",
        },
    }
    url = f"{bot.app.http.url}/telegram"
    async with aiohttp.ClientSession() as http:
        async with http.post(url, json=forged) as answer:
            assert answer.status == 401
        headers = {"X-Telegram-Bot-Api-Secret-Token": "guess"}
        async with http.post(url, json=forged, headers=headers) as answer:
            assert answer.status == 403
        headers = {"X-Telegram-Bot-Api-Secret-Token": SECRET}
        async with http.post(url, data=b"{not json", headers=headers) as answer:
            assert answer.status == 400
    await bot.settled()
    assert await inbox_size(bot) == 0 and not api.sent_to(2202)

    customer = api.person(2203, "小陈", "zh")
    customer.send("你好")
    await said(api, customer, "哪一类问题")


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # a lock from outside
async def test_an_update_that_cannot_be_stored_is_answered_5xx_and_comes_again(
    api: BotApiStandIn, webhook_desk: Callable[..., Awaitable[Any]], tmp_path: Path
) -> None:
    """The database is locked from outside past the busy timeout: the post gets 503 and nothing
    is answered; Telegram posts it again, and once the lock is gone the customer is answered
    once."""
    await webhook_desk(database_busy_timeout="1s")
    lock = sqlite3.connect(tmp_path / "desk.db", isolation_level=None, timeout=30)
    lock.execute("BEGIN IMMEDIATE")
    customer = api.person(2204, "小何", "zh")
    try:
        customer.send("你好")
        await api.until(  # refused twice: Telegram keeps it and posts it again
            lambda: sum(1 for _, status in api.deliveries if status == 503) >= 2, timeout=60
        )
        assert not api.sent_to(customer.id)
    finally:
        lock.execute("ROLLBACK")
        lock.close()
    await said(api, customer, "哪一类问题", timeout=60)
    await api.wait_confirmed(timeout=60)
    assert sum("哪一类问题" in s.text for s in api.sent_to(customer.id)) == 1
