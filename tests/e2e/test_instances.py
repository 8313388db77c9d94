"""Several instances behind one address: two desks on one PostgreSQL database and one Redis,
Telegram posting to a round-robin proxy in front of them (webhook mode), as a shop runs it with
`docker compose up -d --scale bot=2`."""

from __future__ import annotations

import asyncio
import json
import socket
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from bot.standin import BotApiStandIn
from bot.standin.limits import TelegramLimits
from bot.standin.proxy import RoundRobin
from tests.conftest import MANAGER_ID, STAFF_CHAT, BotProcess, needs_redis
from tests.e2e.people import file_complaint, in_group, said

pytestmark = [
    pytest.mark.parametrize("database_url", ["postgres"], indirect=True),
    needs_redis,
]

SECRET = "a-shop-s-webhook-secret_42"


async def unrecorded_greetings(uow: Any) -> set[int]:
    from sqlalchemy import select

    from storage.models import OutboxRow
    from storage.outbox import GREETING

    rows = await uow.session.scalars(
        select(OutboxRow.recipient).where(OutboxRow.kind == GREETING, OutboxRow.outcome.is_(None))
    )
    return {int(r) for r in rows}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Desks:
    """Two in-process instances behind the proxy, and the barriers a test waits on."""

    def __init__(self, api: BotApiStandIn, proxy: RoundRobin, bots: list[Any]) -> None:
        self.api = api
        self.proxy = proxy
        self.bots = bots

    async def settled(self) -> None:
        """Every update posted so far answered and handled, everything to say sent, on both."""
        for _ in range(2):  # what one instance did may give the other work (a relay, a card)
            await self.api.wait_confirmed(timeout=60)
            for bot in self.bots:
                await bot.app.lanes.idle()
            for bot in self.bots:
                await bot.app.sender.idle()


@pytest.fixture
async def two_desks(
    api: BotApiStandIn, start_bot: Callable[..., Awaitable[Any]], redis_url: str
) -> AsyncIterator[Callable[..., Awaitable[Desks]]]:
    proxies: list[RoundRobin] = []

    async def start(mirror: bool = False, **settings: str) -> Desks:
        proxy = RoundRobin([], mirror=mirror)
        proxies.append(proxy)
        url = await proxy.start()
        shared = {
            "WEBHOOK_URL": f"{url}/telegram",
            "WEBHOOK_SECRET": SECRET,
            "REDIS_URL": redis_url,
            **settings,
        }
        bots = [await start_bot(INSTANCE_NAME=f"desk-{n}", **shared) for n in ("a", "b")]
        proxy.set_upstreams([bot.app.http.url for bot in bots])
        return Desks(api, proxy, bots)

    yield start
    for proxy in proxies:
        await proxy.stop()


async def test_a_customer_s_whole_journey_spread_over_two_instances(
    api: BotApiStandIn, two_desks: Callable[..., Awaitable[Desks]]
) -> None:
    """Complaint, the staff's reply, the manager's remedy, the customer's choice: each update
    lands on either instance, and the journey is the one a single desk gives."""
    desks = await two_desks()
    customer = api.person(2101, "小周", "zh")
    staff = api.person(3101, "小王", "zh")
    manager = api.person(MANAGER_ID, "陈店长", "zh")

    card = await file_complaint(api, customer)
    mark = len(api.sent)
    staff.say_in_group(STAFF_CHAT, "您好,非常抱歉!我们马上核实。", reply_to=card.message_id)
    await said(api, customer, "我们马上核实", mark)

    mark = len(api.sent)
    tapped = manager.tap("补偿方案:中等", chat_id=STAFF_CHAT)
    await api.wait_answer(tapped)
    offer = await said(api, customer, "换作是我", mark)
    assert offer.buttons() == ["今天下午重做并送达", "退还一半货款"]
    mark = len(api.sent)
    customer.tap("退还一半货款")
    await in_group(api, "退还一半货款", mark)
    await desks.settled()

    served = desks.proxy.requests
    assert len(served) == 2 and min(served.values()) >= 3, served  # both took part
    to_customer = [s.text for s in api.sent_to(customer.id)]
    assert len(to_customer) == len(set(to_customer)), "nothing said twice"
    cards = [s for s in api.sent_to(STAFF_CHAT) if "投诉单" in s.text and s.reply_markup]
    assert len({s.message_id for s in cards}) == 1  # one card


async def test_the_same_update_delivered_to_both_instances_has_one_effect(
    api: BotApiStandIn, two_desks: Callable[..., Awaitable[Desks]]
) -> None:
    """Each update posted to both instances at once (at-least-once delivery, twice): one
    greeting, one card, each answer once; sent again later, it changes nothing."""
    desks = await two_desks(mirror=True)
    customer = api.person(2102, "小吴", "zh")
    await file_complaint(api, customer, photos=())
    await desks.settled()
    before = list(api.sent)
    counts = Counter(s.text for s in api.sent_to(customer.id))
    assert counts and max(counts.values()) == 1, counts
    assert len([s for s in api.sent_to(STAFF_CHAT) if "投诉单" in s.text]) == 1

    desks.proxy.mirror = False
    for update_id in [d[0] for d in api.deliveries][:5]:  # Telegram did not see the answer
        await api.deliver_again(update_id)
    await desks.settled()
    assert api.sent == before


async def test_a_deadline_fires_once_whichever_instance_is_alive(
    api: BotApiStandIn, two_desks: Callable[..., Awaitable[Desks]]
) -> None:
    """Nobody answers the card in time: the managers are paged once, not once an instance."""
    desks = await two_desks(SLA_FIRST_RESPONSE="2s")
    customer = api.person(2103, "小郑", "zh")
    await file_complaint(api, customer, photos=())
    mark = len(api.sent)
    page = await api.wait_for(
        lambda s: s.chat_id == STAFF_CHAT and "还没有人回复" in s.text, after=mark, timeout=30
    )
    await desks.settled()
    for bot in desks.bots:  # both schedulers have looked at the deadline since
        bot.app.scheduler.poke()
    await desks.settled()
    pages = [s for s in api.sent[mark:] if s.chat_id == STAFF_CHAT and "还没有人回复" in s.text]
    assert pages == [page]


async def test_a_burst_of_customers_gets_no_429_across_both_instances(
    api: BotApiStandIn, two_desks: Callable[..., Awaitable[Desks]]
) -> None:
    """Sixty newcomers at once, spread over both instances, at Telegram's real limits: every one
    answered once, and Telegram never had to say 429 — the limits held for the desk as a
    whole, not for each instance."""
    api.limits = TelegramLimits()  # Telegram's limits, enforced: 429 past them
    desks = await two_desks(RATE_PER_CHAT="1", RATE_CHAT_BURST="5", RATE_GROUP_PER_MINUTE="20")
    people = [api.person(5000 + n, f"顾客{n}", "zh") for n in range(60)]
    for person in people:
        person.send("花送来就蔫了")
    await desks.settled()
    for person in people:
        first = api.sent_to(person.id)
        assert len(first) == 1 and "非常抱歉" in first[0].text, (person.id, first)
    assert api.limits.refused == 0
    assert all(n > 0 for n in desks.proxy.requests.values())


async def test_an_instance_killed_mid_burst_leaves_nobody_unanswered(
    api: BotApiStandIn,
    start_bot: Callable[..., Awaitable[Any]],
    database_url: str,
    redis_url: str,
    tmp_path: Path,
) -> None:
    """Two instances (one of them a real process) share a burst of newcomers; the process is
    killed with -9 in the middle. The other carries on: what the dead one had stored, claimed
    or was sending is taken over, and every customer is answered; at most the sends that were
    in flight at that instant are repeated."""
    api.limits = TelegramLimits()
    proxy = RoundRobin([])
    url = await proxy.start()
    port = free_port()
    settings = {
        "WEBHOOK_URL": f"{url}/telegram",
        "WEBHOOK_SECRET": SECRET,
        "REDIS_URL": redis_url,
        "RATE_PER_CHAT": "1",
        "RATE_CHAT_BURST": "5",
    }
    doomed = BotProcess(api, database_url, tmp_path, HTTP_PORT=str(port), **settings)
    try:
        await doomed.start_serving(f"http://127.0.0.1:{port}")
        survivor = await start_bot(INSTANCE_NAME="survivor", **settings)
        proxy.set_upstreams([f"http://127.0.0.1:{port}", survivor.app.http.url])
        people = [api.person(6000 + n, f"顾客{n}", "zh") for n in range(60)]
        for person in people:
            person.send("你好,我要投诉")
        await api.until(lambda: len({s.chat_id for s in api.sent}) >= 15, timeout=60)
        doomed.kill9()
        # what the dead instance had not recorded as sent at that instant (it may have gone:
        # in flight; only these may be sent again)
        async with survivor.app.new_uow(read_only=True) as uow:
            unrecorded = await unrecorded_greetings(uow)
        for person in people:  # every one answered, in time (the leases and the sweep)
            await said(api, person, "非常抱歉", timeout=90)
        await api.wait_confirmed(timeout=90)
        await survivor.app.lanes.idle()
        await survivor.app.sender.idle()
    finally:
        await doomed.stop()
        await proxy.stop()
    greetings = Counter(s.chat_id for s in api.sent if "非常抱歉" in s.text)
    assert set(greetings) >= {p.id for p in people}
    repeated = {chat for chat, n in greetings.items() if n > 1}
    assert repeated <= unrecorded, (repeated, unrecorded)  # at most what was in flight
    assert api.limits.refused == 0


async def test_a_wechat_customer_s_messages_handled_by_both_instances_in_order(
    api: BotApiStandIn, two_desks: Callable[..., Awaitable[Desks]], wecom: Any
) -> None:
    """WeCom calls whichever instance the proxy picks; whoever pulls a customer's messages,
    they are handled in the order sent: the intake goes question by question, each asked
    once, and one card reaches staff."""
    from tests.e2e.test_wechat import CUSTOMER, menu_id, said_to, words

    desks = await two_desks(**{k.upper(): v for k, v in wecom.customer_service_settings().items()})
    callbacks = RoundRobin([bot.app.http.url for bot in desks.bots])
    await callbacks.start()
    try:
        wecom.set_callback(f"{callbacks.url}/wecom/callback")
        customer = wecom.customer(CUSTOMER, "小李")
        customer.say("你好,我订的生日花束全都蔫了,订单号 FS2026112301")
        first = await said_to(wecom, "非常抱歉")
        mark = len(wecom.sent)
        # two answers at once: each callback may reach the other instance; the second must not
        # be handled before the first
        customer.tap_menu(menu_id(first, "没有照片,跳过"), "没有照片,跳过")
        customer.say("13800138000")
        summary = await said_to(wecom, "请您核对", mark)
        assert "FS2026112301" in words(summary) and "13800138000" in words(summary)
        mark = len(wecom.sent)
        customer.tap_menu(menu_id(summary, "✅ 提交"), "✅ 提交")
        await said_to(wecom, "投诉单号是 T-000001", mark)
        await in_group(api, "投诉单 T-000001", timeout=30)
        await desks.settled()
    finally:
        await callbacks.stop()
    texts = [words(s) for s in wecom.sent if s.touser == CUSTOMER]
    assert len(texts) == len(set(texts)), texts  # nothing said twice
    assert len([s for s in api.sent_to(STAFF_CHAT) if "投诉单 T-000001" in s.text]) == 1
    assert all(n > 0 for n in callbacks.requests.values()) and len(callbacks.requests) == 2


async def test_a_wechat_customer_s_next_message_waits_for_the_one_another_instance_handles(
    api: BotApiStandIn, two_desks: Callable[..., Awaitable[Desks]], wecom: Any
) -> None:
    """One instance pulls a customer's first message and is slow with it; their next message
    reaches the other instance: it is handled after the first, not beside it."""
    from tests.e2e.test_wechat import CUSTOMER, said_to

    desks = await two_desks(**{k.upper(): v for k, v in wecom.customer_service_settings().items()})
    callbacks = RoundRobin([bot.app.http.url for bot in desks.bots])  # the first call: desk a
    await callbacks.start()
    order: list[str] = []
    slow, inside = asyncio.Event(), asyncio.Event()
    second_due = asyncio.Event()  # the second message's instance is at it (or waits its turn)
    for bot in desks.bots:
        real = bot.app.wecom.handle

        async def handle(uow: Any, message: dict[str, Any], real: Any = real) -> None:
            said = str((message.get("text") or {}).get("content") or "")
            if said.startswith("第一句"):
                inside.set()
                await slow.wait()
            else:
                second_due.set()
            await real(uow, message)
            order.append(said)

        bot.app.wecom.handle = handle
        if bot.app.wecom.lock is not None:
            lock = bot.app.wecom.lock

            def waiting(name: str, lock: Any = lock) -> Any:
                if inside.is_set():
                    second_due.set()
                return lock(name)

            bot.app.wecom.lock = waiting
    try:
        wecom.set_callback(f"{callbacks.url}/wecom/callback")
        customer = wecom.customer(CUSTOMER, "小李")
        customer.say("第一句:我订的生日花束全都蔫了")
        await asyncio.wait_for(inside.wait(), timeout=30)  # desk a has it, and is slow
        pulls = sum(1 for path, _ in wecom.calls if path.endswith("sync_msg"))
        customer.say("第二句:订单号 FS2026112301")
        await wecom.until(
            lambda: sum(1 for path, _ in wecom.calls if path.endswith("sync_msg")) > pulls,
            timeout=30,
        )  # the other desk pulled the second
        await asyncio.wait_for(second_due.wait(), timeout=30)
        slow.set()
        await said_to(wecom, "非常抱歉")
        await desks.settled()
    finally:
        slow.set()
        await callbacks.stop()
    assert [said[:3] for said in order] == ["第一句", "第二句"]
    assert callbacks.requests[desks.bots[1].app.http.url] >= 1


async def test_what_a_dead_instance_stored_from_wecom_is_handled_by_another(
    wecom: Any, start_bot: Callable[..., Awaitable[Any]], redis_url: str
) -> None:
    """An instance stored a staff member's message to the WeCom app, and a WeChat customer's
    message, and died before handling them: a living instance of the same desk handles both."""
    from datetime import UTC, datetime, timedelta

    from tests.e2e.test_wechat import CUSTOMER, said_to
    from tests.e2e.test_wecom_staff import MANAGER_IDS, STAFF_IDS, told

    zhang = wecom.staff("zhangsan")
    wecom.staff("lisi"), wecom.staff("boss")
    bot = await start_bot(
        bot_token="",
        staff_chat_id="",
        manager_ids="",
        redis_url=redis_url,
        **{
            **wecom.customer_service_settings(),
            **wecom.app_settings(STAFF_IDS.split(","), MANAGER_IDS.split(",")),
        },
    )
    # the customer writes; WeCom's callback went to the instance that then died (none here)
    wecom.customer(CUSTOMER, "小李").say("你好,我订的花全都蔫了")
    earlier = datetime.now(UTC) - timedelta(seconds=30)
    message = {
        "msgid": "msg-left-by-a-dead-instance",
        "open_kfid": wecom.open_kfid,
        "external_userid": CUSTOMER,
        "send_time": int(earlier.timestamp()),
        "origin": 3,
        "msgtype": "text",
        "text": {"content": "你好,我订的花全都蔫了"},
    }
    fields = {"ToUserName": "corp", "FromUserName": "zhangsan", "MsgType": "text"}
    fields |= {"Content": "/whoami", "MsgId": "app-left-by-a-dead-instance"}
    async with bot.app.new_uow() as uow:  # as the dead instance stored them
        await uow.wecom.put_page(wecom.open_kfid, [message], "", earlier)
        await uow.staff_app.put_callback(fields["MsgId"], "zhangsan", json.dumps(fields), earlier)
        await uow.commit()
    await told(wecom, zhang, "zhangsan")
    await said_to(wecom, "非常抱歉")
