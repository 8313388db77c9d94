"""`GET /healthz` and `GET /metrics` on the instance's HTTP server, as a load balancer and
Prometheus see them, while people use the desk through the stand-ins."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from bot.standin import BotApiStandIn
from bot.standin.wecom import WeComStandIn
from tests.conftest import InProcessBot, _pg_admin
from tests.e2e.people import callback_url, file_complaint, in_group, said, start_wechat_desk

INSTANCE = "desk-a"
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


async def get(bot: Any, path: str) -> tuple[int, str, str]:
    """The status, content type and body of a GET on the desk's server."""
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{bot.app.http.url}{path}") as response:
            return response.status, response.content_type, await response.text()


async def health(bot: Any) -> tuple[int, dict[str, Any]]:
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{bot.app.http.url}/healthz") as response:
            return response.status, await response.json()


async def scrape(bot: Any) -> Samples:
    """Every sample of /metrics, read as Prometheus reads it."""
    status, content_type, text = await get(bot, "/metrics")
    assert status == 200 and content_type == "text/plain"
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, tuple(sorted(labels.items()))))


def named(samples: Samples, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    return {labels: v for (n, labels), v in samples.items() if n == name}


async def test_healthz_says_ok_with_the_instance_when_the_database_answers(
    api: BotApiStandIn, start_bot: Any
) -> None:
    """A running desk answers /healthz 200 with its instance name, the database ok and Redis
    not used (no REDIS_URL)."""
    bot = await start_bot(instance_name=INSTANCE)
    assert await health(bot) == (
        200,
        {"status": "ok", "instance": INSTANCE, "database": "ok", "redis": "not used"},
    )


async def test_healthz_says_unavailable_and_why_when_the_database_is_gone(
    api: BotApiStandIn, database_url: str, tmp_path: Path
) -> None:
    """The database goes away under a running desk (SQLite's folder moved away, PostgreSQL's
    database dropped): /healthz answers 503 naming the database and the driver's reason, and
    never the database's address."""
    sqlite = database_url.startswith("sqlite")
    folder = tmp_path / "data"
    if sqlite:
        folder.mkdir()
        database_url = f"sqlite+aiosqlite:///{folder / 'desk.db'}"
    bot = InProcessBot(api, database_url, instance_name=INSTANCE)
    try:
        await bot.start()
        assert (await health(bot))[0] == 200

        if sqlite:
            folder.rename(tmp_path / "moved-away")
            await bot.app.engine.dispose()  # the open connections go; new ones find no file
        else:
            name = database_url.rsplit("/", 1)[1]
            await _pg_admin(f'DROP DATABASE "{name}" WITH (FORCE)')

        status, body = await health(bot)
        assert status == 503
        assert body["status"] == "unavailable" and body["instance"] == INSTANCE
        reason = body["reason"]
        assert reason.startswith("database: ")
        assert "unable to open database file" in reason or "does not exist" in reason
        assert "://" not in reason and "127.0.0.1" not in reason
    finally:
        await bot.stop()


async def test_healthz_says_stopping_as_soon_as_the_instance_is_told_to_stop(
    api: BotApiStandIn, start_bot: Any
) -> None:
    """Told to stop (SIGTERM calls `App.stop`) while it still holds an update, the instance
    answers /healthz 503 "stopping" at once, and stops once the update is done."""
    bot = await start_bot(instance_name=INSTANCE)
    holding, release = asyncio.Event(), asyncio.Event()

    async def update_in_hand() -> None:
        holding.set()
        await release.wait()

    bot.app.lanes.submit("telegram:held", update_in_hand)
    await asyncio.wait_for(holding.wait(), timeout=10)
    bot.app.stop()
    assert await health(bot) == (503, {"status": "stopping", "instance": INSTANCE})
    release.set()
    await asyncio.wait_for(bot.task, timeout=30)


async def test_metrics_after_a_complaint(api: BotApiStandIn, start_bot: Any) -> None:
    """After a customer files a complaint: every update counted once as handled on Telegram,
    one first answer timed, nothing left waiting in the outbox, the new ticket open, no
    deadline missed, and the instance named."""
    bot = await start_bot(instance_name=INSTANCE)
    customer = api.person(8001, "小明", "zh")
    await file_complaint(api, customer, photos=("photo-a",))
    await bot.settled()

    samples = await scrape(bot)
    assert api.confirmed > 5  # every message and tap of the intake was an update
    assert value(samples, "desk_updates_handled_total", channel="telegram") == api.confirmed
    assert value(samples, "desk_first_answer_seconds_count") == 1
    first = value(samples, "desk_first_answer_seconds_sum")
    assert first is not None and 0 < first < 60
    assert value(samples, "desk_first_answer_seconds_bucket", le="60.0") == 1
    assert value(samples, "desk_outbox_waiting") == 0
    assert named(samples, "desk_open_tickets") == {
        (("status", "intake"),): 0,
        (("status", "open"),): 1,
        (("status", "remedy_offered"),): 0,
        (("status", "remedy_chosen"),): 0,
    }
    assert named(samples, "desk_deadlines_missed_total") == {}
    assert named(samples, "desk_messenger_errors_total") == {}
    assert value(samples, "desk_instance_info", instance=INSTANCE) == 1


async def test_a_missed_first_response_is_counted(api: BotApiStandIn, start_bot: Any) -> None:
    """A complaint nobody answers within SLA_FIRST_RESPONSE: the managers are paged, and
    /metrics counts one missed first-response deadline."""
    bot = await start_bot(sla_first_response="2s")
    customer = api.person(8001, "小明", "zh")
    await file_complaint(api, customer, photos=())
    await in_group(api, "还没有人回复", timeout=20)
    await bot.settled()

    samples = await scrape(bot)
    assert named(samples, "desk_deadlines_missed_total") == {(("kind", "first_response"),): 1}


async def test_telegram_errors_are_counted_by_their_code(
    api: BotApiStandIn, start_bot: Any
) -> None:
    """Telegram answers the first answer with 429 (retry after 1 s), then 502: the customer
    still gets it, and /metrics counts one 429 and one 502 from Telegram."""
    bot = await start_bot()
    api.inject("sendMessage", 429, retry_after=1)
    api.inject("sendMessage", 502)
    customer = api.person(8001, "小明", "zh")
    customer.send("你好")
    await said(api, customer, "哪一类问题")
    await bot.settled()

    samples = await scrape(bot)
    assert named(samples, "desk_messenger_errors_total") == {
        (("code", "429"), ("messenger", "telegram")): 1,
        (("code", "502"), ("messenger", "telegram")): 1,
    }
    assert value(samples, "desk_first_answer_seconds_count") == 1


async def test_wecom_errcodes_are_counted(
    api: BotApiStandIn, wecom: WeComStandIn, start_bot: Any
) -> None:
    """WeCom answers the first answer to a WeChat customer with 45009 (frequency limit): the
    customer still gets it, and /metrics counts one 45009 from WeCom and the message handled
    on the WeCom channel."""
    bot = await start_wechat_desk(start_bot, wecom)
    wecom.set_callback(callback_url(bot))
    bot.app.sender.retry_first = bot.app.sender.retry_most = 0.05  # minutes, made short
    limited = wecom.inject("kf/send_msg", 45009, "api freq out of limit")
    customer = wecom.customer("wmSTANDINcustomer01", "小李")
    customer.say("你好")
    await wecom.wait_sent(lambda s: s.touser == "wmSTANDINcustomer01", timeout=20)
    await bot.settled()
    assert limited.count == 0

    samples = await scrape(bot)
    assert value(samples, "desk_messenger_errors_total", messenger="wecom", code="45009") == 1
    handled = value(samples, "desk_updates_handled_total", channel="wecom")
    assert handled is not None and handled >= 1
    assert value(samples, "desk_first_answer_seconds_count") == 1
