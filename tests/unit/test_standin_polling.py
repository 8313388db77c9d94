"""The Bot API stand-in's barrier for a polling bot: `wait_confirmed` holds until getUpdates has
confirmed (by its offset) every update pushed so far, however many are still queued."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest

from bot.standin import BotApiStandIn

ANN, BOB = 1001, 1002


async def get_updates(http: aiohttp.ClientSession, api: BotApiStandIn, **params: Any) -> list[int]:
    """The update ids a getUpdates call returns (no long poll)."""
    url = f"{api.base_url}/bot{api.token}/getUpdates"
    async with http.post(url, json={"timeout": 0, **params}) as response:
        body = await response.json()
    return [update["update_id"] for update in body["result"]]


async def test_the_barrier_holds_until_the_last_update_is_confirmed(
    api: BotApiStandIn, http: aiohttp.ClientSession
) -> None:
    """Many updates confirmed long ago, one new one queued: the barrier waits for that one's
    confirmation, not for the queue to be shorter than what was confirmed before."""
    for n in range(3):
        api.person(ANN, "Ann").send(f"第{n}条")
    assert await get_updates(http, api) == [1, 2, 3]
    assert await get_updates(http, api, offset=4) == []
    await api.wait_confirmed(timeout=1)  # all three confirmed: passes at once

    api.person(BOB, "Bob").send("花都蔫了")
    barrier = asyncio.ensure_future(api.wait_confirmed(timeout=10))
    assert await get_updates(http, api, offset=4) == [4]  # fetched, not yet confirmed
    assert not barrier.done()  # it ran meanwhile (an HTTP round trip), and still waits
    assert await get_updates(http, api, offset=5) == []  # the next call confirms it
    await barrier


async def test_the_barrier_up_to_an_update_id(
    api: BotApiStandIn, http: aiohttp.ClientSession
) -> None:
    """`up_to`: only the updates up to that id need confirming."""
    for n in range(2):
        api.person(ANN, "Ann").send(f"第{n}条")
    assert await get_updates(http, api, offset=2) == [2]  # confirms update 1
    await api.wait_confirmed(up_to=1, timeout=1)
    with pytest.raises(TimeoutError):
        await api.wait_confirmed(timeout=0.05)
