"""Two instances of one desk, sending at once through Redis's shared windows: Telegram's limits
(the Bot API stand-in enforcing them, answering 429 past them) and WeCom's per-member minute
(the WeCom stand-in dropping the excess) hold for the two together."""

from __future__ import annotations

import asyncio
import contextlib
import time
import weakref
from collections.abc import Callable, Iterator
from typing import Any

from telegram import Bot
from telegram.request import HTTPXRequest

from bot.channels.telegram.limiter import Limiter
from bot.channels.telegram.sender import Api
from bot.channels.wecom.app_client import AppClient
from bot.channels.wecom.pace import MemberPace
from bot.domain.messages import Urgency
from bot.standin import BotApiStandIn, TelegramLimits
from bot.standin.wecom import WeComStandIn

Make = Callable[..., Any]


class SharedMinutes:
    """One clock for the stand-in and both instances' windows, on which a wait passes at once.
    A wait counts from when its waiter last read the clock (when it was told how long), so
    many waiters told at once wake together rather than each adding its wait to the last.

    The clock moves on only while no send is on its way (`sending`: from the request until the
    shared window has its answer): really that takes moments, not the minute a jump makes of
    it, and a send in flight holds its place only for its lease (the client gives up well
    within it). On a busy machine a send could otherwise sit out two jumps, outlive its lease
    and let a later send take its place, and WeCom dropped what came over 30."""

    def __init__(self) -> None:
        self.offset = 0.0
        self._in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._read: weakref.WeakKeyDictionary[asyncio.Task[Any], float] = (
            weakref.WeakKeyDictionary()
        )

    def __call__(self) -> float:
        now = time.time() + self.offset
        task = asyncio.current_task()
        if task is not None:
            self._read[task] = now
        return now

    @contextlib.contextmanager
    def sending(self) -> Iterator[None]:
        self._in_flight += 1
        self._idle.clear()
        try:
            yield
        finally:
            self._in_flight -= 1
            if not self._in_flight:
                self._idle.set()

    async def sleep(self, seconds: float) -> None:
        task = asyncio.current_task()
        since = self._read.get(task) if task is not None else None
        since = self() if since is None else since
        await self._idle.wait()
        self.offset = max(self.offset, since + seconds - time.time())
        await asyncio.sleep(0)


async def telegram_instance(api: BotApiStandIn, make: Make) -> Api:
    """What one instance sends Telegram through: its bot, its limiter on the shared windows."""
    bot = Bot(
        api.token,
        base_url=f"{api.base_url}/bot",
        request=HTTPXRequest(connection_pool_size=16, pool_timeout=60.0),
    )
    await bot.initialize()
    return Api(bot, Limiter(windows=make().windows))


async def test_two_instances_bursting_at_once_get_no_429_and_everyone_is_answered(
    api: BotApiStandIn, redis_shared: Make
) -> None:
    """Two instances each answer 40 customers at once (one customer hears from both): together
    they stay within the bot's 30 a second and each chat's limit, and every message arrives."""
    api.limits = TelegramLimits()
    instances = [await telegram_instance(api, redis_shared) for _ in range(2)]
    customers = [api.person(9000 + i, f"顾客{i}", "zh") for i in range(80)]
    busy = api.person(9999, "常客", "zh")

    async def answer(instance: Api, chat_id: int, text: str) -> None:
        await instance.call(
            chat_id,
            lambda: instance.bot.send_message(chat_id, text),
            Urgency.FIRST_REPLY,
        )

    try:
        await asyncio.wait_for(
            asyncio.gather(
                *(
                    answer(instances[i % 2], customer.id, f"您好 {customer.id}")
                    for i, customer in enumerate(customers)
                ),
                *(answer(instances[i % 2], busy.id, f"第{i}条") for i in range(8)),
            ),
            timeout=60,
        )
    finally:
        for instance in instances:
            assert instance.limiter is not None
            await instance.limiter.settle()
            await instance.bot.shutdown()
    for customer in customers:
        assert [s.text for s in api.sent_to(customer.id)] == [f"您好 {customer.id}"]
    assert sorted(s.text for s in api.sent_to(busy.id)) == sorted(f"第{i}条" for i in range(8))
    assert api.limits.refused == 0


async def test_two_instances_keep_each_members_minute_together(
    wecom: WeComStandIn, redis_shared: Make
) -> None:
    """Two instances each send a staff member 40 messages at once: WeCom drops none (together
    they send at most 30 in any minute), and all 80 arrive; the minutes pass on a shared clock
    that a wait moves on at once."""
    clock = SharedMinutes()
    wecom.clock = clock
    member = wecom.staff("zhangsan", "张三")
    clients = [
        AppClient(wecom.base_url, wecom.corp_id, wecom.agent_id, wecom.app_secret)
        for _ in range(2)
    ]
    paces = [
        MemberPace(clock=clock, sleep=clock.sleep, windows=redis_shared(clock=clock).windows)
        for _ in range(2)
    ]

    async def send(n: int) -> None:
        client, pace = clients[n % 2], paces[n % 2]
        await pace.take(["zhangsan"])
        with clock.sending():  # until the shared window has heard WeCom's answer
            try:
                await client.send(["zhangsan"], {"msgtype": "text", "text": {"content": f"#{n}"}})
            except BaseException:
                pace.unused(["zhangsan"])
                raise
            pace.sent(["zhangsan"])
            await pace.settle()

    try:
        await asyncio.wait_for(asyncio.gather(*(send(n) for n in range(80))), timeout=60)
    finally:
        for pace in paces:
            await pace.settle()
        for client in clients:
            await client.close()
    assert member.dropped == 0
    assert sorted(m.text for m in member.received()) == sorted(f"#{n}" for n in range(80))
    assert clock.offset >= 60  # two minutes' worth went, so a minute passed between
