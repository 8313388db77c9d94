"""What instances share: short locks (in-process alone, in Redis for several) and the rate
windows in Redis, as two instances of one desk see them (two objects on one Redis)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from bot.channels.telegram.limiter import Limiter, Priority
from bot.shared import LocalShared, Place, Refused

Make = Callable[..., Any]


# -- locks in Redis ---------------------------------------------------------------------------


async def test_a_lock_held_by_one_instance_keeps_the_other_out_until_released(
    redis_shared: Make,
) -> None:
    """While one instance holds a customer's lock the other cannot take it; it gets it as soon
    as the first lets go."""
    one, other = redis_shared(), redis_shared()
    order: list[str] = []
    holding = asyncio.Event()
    let_go = asyncio.Event()

    async def first() -> None:
        async with one.lock("customer:42"):
            order.append("one in")
            holding.set()
            await asyncio.wait_for(let_go.wait(), timeout=10)
            order.append("one out")

    async def second() -> None:
        await asyncio.wait_for(holding.wait(), timeout=10)
        with pytest.raises(TimeoutError):
            async with other.lock("customer:42", wait=0.2):
                order.append("too early")
        let_go.set()
        async with other.lock("customer:42", wait=10):
            order.append("other in")

    await asyncio.gather(first(), second())
    assert order == ["one in", "one out", "other in"]


async def test_a_lock_held_past_its_ttl_is_renewed_while_its_work_goes_on(
    redis_shared: Make, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Work that outlasts the lock's ttl keeps it all along: after each renewal the other
    instance still finds it taken, and takes it once the work is done. The log tells that the
    work outlived the ttl (the others wait for it).

    The test waits on the renewals themselves, never on the clock; the ttl leaves a busy machine
    a whole second to renew in time."""
    from redis.asyncio.lock import Lock

    renewals = 0
    renewed = asyncio.Event()
    extend = Lock.extend

    async def counted(self: Lock, *args: Any, **kwargs: Any) -> bool:
        nonlocal renewals
        done = await extend(self, *args, **kwargs)
        renewals += 1
        renewed.set()
        return done

    monkeypatch.setattr(Lock, "extend", counted)
    one, other = redis_shared(), redis_shared()
    loop = asyncio.get_running_loop()
    async with one.lock("long", ttl=1.5):
        began = loop.time()
        while renewals < 4:  # a renewal every ttl/3: four outlast the ttl
            await asyncio.wait_for(renewed.wait(), timeout=30)
            renewed.clear()
            with pytest.raises(TimeoutError):
                async with other.lock("long", wait=0):
                    pass
        assert loop.time() - began > 1.5
        assert await one.redis.pttl(f"{one.prefix}lock:long") > 0
    assert any("Lock long held for" in r.getMessage() for r in caplog.records)
    async with other.lock("long", wait=0):
        pass


async def test_a_lock_is_released_when_its_work_fails(redis_shared: Make) -> None:
    """An error inside the lock lets it go at once: the other instance takes it without
    waiting for its ttl."""
    one, other = redis_shared(), redis_shared()
    with pytest.raises(RuntimeError):
        async with one.lock("failing", ttl=60):
            raise RuntimeError("the work failed")
    async with other.lock("failing", wait=1.0):
        pass


# -- locks alone ------------------------------------------------------------------------------


async def test_a_local_lock_excludes_and_is_forgotten_once_nobody_uses_it() -> None:
    """One instance: a second holder waits for the first, a timeout says so, and a name nobody
    holds or waits for is not kept."""
    shared = LocalShared()
    order: list[str] = []
    holding = asyncio.Event()
    let_go = asyncio.Event()

    async def first() -> None:
        async with shared.lock("customer:7"):
            order.append("first in")
            holding.set()
            await asyncio.wait_for(let_go.wait(), timeout=10)
            order.append("first out")

    async def second() -> None:
        await asyncio.wait_for(holding.wait(), timeout=10)
        with pytest.raises(TimeoutError):
            async with shared.lock("customer:7", wait=0.05):
                order.append("too early")
        waiting = asyncio.create_task(_enter(shared, "customer:7", order))
        let_go.set()
        await asyncio.wait_for(waiting, timeout=10)

    await asyncio.gather(first(), second())
    assert order == ["first in", "first out", "second in"]
    assert shared.names == 0
    with pytest.raises(RuntimeError):
        async with shared.lock("customer:8"):
            raise RuntimeError("the work failed")
    async with shared.lock("customer:8", wait=0.05):
        pass
    assert shared.names == 0
    await shared.ping()
    await shared.close()


async def _enter(shared: LocalShared, name: str, order: list[str]) -> None:
    async with shared.lock(name):
        order.append("second in")


# -- rate windows in Redis --------------------------------------------------------------------


async def test_a_send_in_flight_at_one_instance_holds_its_place_at_the_other(
    redis_shared: Make,
) -> None:
    """The bot's window counts a send from the moment it is granted: with all its places in
    flight at one instance, the other waits for their answers, then goes."""
    one = Limiter(global_rate=3, windows=redis_shared().windows)
    other = Limiter(global_rate=3, windows=redis_shared().windows)
    for chat in (1, 2, 3):
        await asyncio.wait_for(one.acquire(chat), timeout=10)
    waiting = asyncio.create_task(other.acquire(4))
    refused = await other.windows.try_take([Place("tg:bot", 3, 1.0)])  # type: ignore[union-attr]
    assert refused == Refused(0, None)  # full, and only an answer frees a place
    one.done(1)
    await asyncio.wait_for(waiting, timeout=10)
    other.done(4)
    for chat in (2, 3):
        one.done(chat)
    await one.settle()
    await other.settle()


async def test_a_429_at_one_instance_closes_that_chat_for_the_other(redis_shared: Make) -> None:
    """Telegram's 429 for a chat, seen by one instance, holds the other's messages to that
    chat for `retry_after`, while its messages to other chats go."""
    one = Limiter(windows=redis_shared().windows)
    other = Limiter(windows=redis_shared().windows)
    await asyncio.wait_for(one.acquire(5), timeout=10)
    one.done(5)
    one.penalize(5, 30.0)
    await one.settle()
    blocked = asyncio.create_task(other.acquire(5, Priority.FIRST_REPLY))
    await asyncio.wait_for(other.acquire(6, Priority.REPORT), timeout=10)  # tried after chat 5
    assert not blocked.done()
    places = [Place("tg:bot", 30, 1.0), Place("tg:5", 5, 5.0)]
    got = await other.windows.try_take(places)  # type: ignore[union-attr]
    assert isinstance(got, Refused) and got.place == 1 and got.wait is not None
    assert 25 < got.wait <= 30
    blocked.cancel()
    other.done(6)
    await other.settle()
