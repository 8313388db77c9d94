"""The Bot API stand-in with a webhook set behaves as Telegram does: updates POSTed with the
secret, one chat at a time and in order, retried until a 2xx, getUpdates refused meanwhile."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from telegram import Bot

from bot.standin import BotApiStandIn
from bot.standin.waiting import until
from bot.standin.webhook import SECRET_HEADER
from tests.serving import serving

SECRET = "s3cret_-Token"
ANN, BOB = 1001, 1002


@dataclass
class Receiver:
    """A tiny webhook standing for the bot: notes what Telegram posts, answers as scripted."""

    statuses: dict[int, list[int]] = field(default_factory=dict)  # per update id, then 200
    gates: dict[int, asyncio.Event] = field(default_factory=dict)  # first post waits for it
    gate_all: asyncio.Event | None = None  # every post waits for it
    posts: list[tuple[dict[str, Any], str | None]] = field(default_factory=list)
    in_flight: int = 0
    peak: int = 0
    changed: asyncio.Condition = field(default_factory=asyncio.Condition)
    server: AsyncExitStack = field(default_factory=AsyncExitStack)
    url: str = ""

    async def start(self) -> str:
        app = web.Application()
        app.router.add_post("/telegram/hook", self.hook)
        self.url = await self.server.enter_async_context(serving(app)) + "/telegram/hook"
        return self.url

    async def hook(self, request: web.Request) -> web.Response:
        update = await request.json()
        self.posts.append((update, request.headers.get(SECRET_HEADER)))
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        async with self.changed:
            self.changed.notify_all()
        try:
            gate = self.gates.pop(update["update_id"], None) or self.gate_all
            if gate is not None:
                await gate.wait()
            script = self.statuses.get(update["update_id"])
            status = script.pop(0) if script else 200
        finally:
            self.in_flight -= 1
        return web.Response(status=status, text="ignored")

    async def until(self, condition: Any, timeout: float = 10) -> None:
        await until(self.changed, condition, timeout)

    def texts(self, chat_id: int) -> list[str]:
        return [
            u["message"]["text"] for u, _ in self.posts if u["message"]["chat"]["id"] == chat_id
        ]


@pytest.fixture
async def api() -> AsyncIterator[BotApiStandIn]:
    standin = BotApiStandIn()
    standin.webhook_backoff, standin.webhook_backoff_max = 0.01, 0.05  # quick retries
    await standin.start()
    yield standin
    await standin.stop()


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    webhook = Receiver()
    await webhook.start()
    yield webhook
    if webhook.gate_all is not None:
        webhook.gate_all.set()
    for gate in webhook.gates.values():
        gate.set()
    await webhook.server.aclose()


async def call(
    http: aiohttp.ClientSession, api: BotApiStandIn, method: str, **params: Any
) -> tuple[int, dict[str, Any]]:
    async with http.post(f"{api.base_url}/bot{api.token}/{method}", json=params) as response:
        return response.status, dict(await response.json())


def dead_url() -> str:
    """An address where nothing listens (a port just freed)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/telegram/hook"


async def test_update_is_posted_with_the_secret(
    api: BotApiStandIn, receiver: Receiver, http: aiohttp.ClientSession
) -> None:
    """A person writes: the webhook gets the update's JSON with the secret header, and once it
    answered 200 the update counts as delivered (wait_confirmed too)."""
    status, body = await call(http, api, "setWebhook", url=receiver.url, secret_token=SECRET)
    assert (status, body) == (200, {"ok": True, "result": True})

    message = api.person(ANN, "Ann").send("花都蔫了")
    await api.wait_confirmed()

    assert receiver.posts == [({"update_id": 1, "message": message}, SECRET)]
    assert api.deliveries == [(1, 200)]
    _, info = await call(http, api, "getWebhookInfo")
    assert info["result"] == {
        "url": receiver.url,
        "has_custom_certificate": False,
        "pending_update_count": 0,
        "max_connections": 40,
        "ip_address": "127.0.0.1",
    }


async def test_no_secret_no_header(
    api: BotApiStandIn, receiver: Receiver, http: aiohttp.ClientSession
) -> None:
    """Without a secret token, Telegram sends no secret header."""
    await call(http, api, "setWebhook", url=receiver.url)
    api.person(ANN, "Ann").send("hello")
    await api.wait_delivered()
    assert [secret for _, secret in receiver.posts] == [None]


async def test_wrong_answer_is_retried_until_2xx(
    api: BotApiStandIn, receiver: Receiver, http: aiohttp.ClientSession
) -> None:
    """A webhook answering 502 twice gets the same update again, and then it is delivered;
    getWebhookInfo tells the last error."""
    receiver.statuses[1] = [502, 502]
    await call(http, api, "setWebhook", url=receiver.url, secret_token=SECRET)

    api.person(ANN, "Ann").send("where is my order")
    await api.wait_delivered()

    assert [u["update_id"] for u, _ in receiver.posts] == [1, 1, 1]
    assert api.deliveries == [(1, 502), (1, 502), (1, 200)]
    _, info = await call(http, api, "getWebhookInfo")
    assert info["result"]["pending_update_count"] == 0
    assert (
        info["result"]["last_error_message"] == "Wrong response from the webhook: 502 Bad Gateway"
    )
    assert isinstance(info["result"]["last_error_date"], int)


async def test_unreachable_webhook_keeps_updates_pending(
    api: BotApiStandIn, receiver: Receiver, http: aiohttp.ClientSession
) -> None:
    """While nothing listens at the webhook the update waits (connection refused); set to a
    live address, it arrives."""
    await call(http, api, "setWebhook", url=dead_url())
    api.person(ANN, "Ann").send("anyone there?")
    await api.until(lambda: len(api.deliveries) >= 2)  # tried, and tried again

    _, info = await call(http, api, "getWebhookInfo")
    assert info["result"]["pending_update_count"] == 1
    assert info["result"]["last_error_message"] == "Connection refused"
    assert all(status is None for _, status in api.deliveries)

    await call(http, api, "setWebhook", url=receiver.url)
    await api.wait_delivered()
    assert receiver.texts(ANN) == ["anyone there?"]


async def test_one_chat_in_order_while_another_flows(
    api: BotApiStandIn, receiver: Receiver, http: aiohttp.ClientSession
) -> None:
    """Ann's next update waits until her first is answered 2xx (even through a retry), while
    Bob's updates go through meanwhile; each chat's arrive in the order written."""
    await call(http, api, "setWebhook", url=receiver.url, secret_token=SECRET)
    hold = receiver.gates[1] = asyncio.Event()  # Ann's first hangs...
    receiver.statuses[1] = [502]  # ...and then fails once
    ann, bob = api.person(ANN, "Ann"), api.person(BOB, "Bob")
    for text in ("a1", "a2", "a3"):
        ann.send(text)
    for text in ("b1", "b2"):
        bob.send(text)

    await receiver.until(lambda: receiver.texts(ANN) == ["a1"])
    await api.until(lambda: (4, 200) in api.deliveries and (5, 200) in api.deliveries)
    assert receiver.texts(BOB) == ["b1", "b2"]
    assert receiver.texts(ANN) == ["a1"]  # a2 is not sent while a1 is unanswered

    hold.set()
    await api.wait_delivered()

    assert receiver.texts(ANN) == ["a1", "a1", "a2", "a3"]
    assert [(u, s) for u, s in api.deliveries if u <= 3] == [
        (1, 502),
        (1, 200),
        (2, 200),
        (3, 200),
    ]


async def test_at_most_max_connections_at_once(
    api: BotApiStandIn, receiver: Receiver, http: aiohttp.ClientSession
) -> None:
    """Many chats' updates go out side by side, but never more than max_connections at once."""
    await call(http, api, "setWebhook", url=receiver.url, max_connections=2)
    receiver.gate_all = asyncio.Event()
    for n in range(6):
        api.person(2000 + n, f"P{n}").send(f"hi {n}")

    await receiver.until(lambda: receiver.in_flight == 2)
    receiver.gate_all.set()
    await api.wait_delivered()

    assert receiver.peak == 2
    assert len(receiver.posts) == 6


async def test_get_updates_conflicts_while_a_webhook_is_set(
    api: BotApiStandIn, http: aiohttp.ClientSession
) -> None:
    """getUpdates is 409 while a webhook is set; after deleteWebhook it gets what was not
    delivered."""
    await call(http, api, "setWebhook", url=dead_url())
    api.person(ANN, "Ann").send("queued")

    status, body = await call(http, api, "getUpdates")
    assert status == 409
    assert body["description"] == (
        "Conflict: can't use getUpdates method while webhook is active; "
        "use deleteWebhook to delete the webhook first"
    )

    assert await call(http, api, "deleteWebhook") == (200, {"ok": True, "result": True})
    status, body = await call(http, api, "getUpdates")
    assert status == 200
    assert [u["message"]["text"] for u in body["result"]] == ["queued"]
    _, info = await call(http, api, "getWebhookInfo")
    assert info["result"] == {
        "url": "",
        "has_custom_certificate": False,
        "pending_update_count": 1,
    }


async def test_set_webhook_ends_a_long_poll(
    api: BotApiStandIn, receiver: Receiver, http: aiohttp.ClientSession
) -> None:
    """A long poll under way when the webhook is set ends with 409, as on Telegram."""
    poll = asyncio.create_task(call(http, api, "getUpdates", timeout=30))
    await api.wait_calls("getUpdates", 1)
    await call(http, api, "setWebhook", url=receiver.url)
    status, body = await asyncio.wait_for(poll, 10)
    assert (status, body["description"]) == (409, "Conflict: terminated by setWebhook request")


async def test_drop_pending_updates(api: BotApiStandIn, http: aiohttp.ClientSession) -> None:
    """deleteWebhook with drop_pending_updates forgets what was not delivered."""
    await call(http, api, "setWebhook", url=dead_url())
    api.person(ANN, "Ann").send("lost")
    await call(http, api, "deleteWebhook", drop_pending_updates=True)
    _, body = await call(http, api, "getUpdates")
    assert body["result"] == []


@pytest.mark.parametrize(
    ("params", "description"),
    [
        ({"secret_token": "not ok!"}, "Bad Request: secret token contains unallowed characters"),
        ({"secret_token": "x" * 257}, "Bad Request: secret token is too long"),
        ({"max_connections": 0}, "Bad Request: max_connections must be between 1 and 100"),
        ({"max_connections": 101}, "Bad Request: max_connections must be between 1 and 100"),
        (
            {"url": "http://example.com/hook"},
            "Bad Request: bad webhook: An HTTPS URL must be provided for webhook",
        ),
        (
            {"url": "https://example.com:9000/hook"},
            "Bad Request: bad webhook: Webhook can be set up only on ports 80, 88, 443 or 8443",
        ),
    ],
)
async def test_set_webhook_refuses_what_telegram_refuses(
    api: BotApiStandIn, http: aiohttp.ClientSession, params: dict[str, Any], description: str
) -> None:
    """A bad secret token, max_connections or (off this machine) a non-HTTPS URL gets 400."""
    status, body = await call(
        http, api, "setWebhook", **{"url": "http://127.0.0.1:8080/hook", **params}
    )
    assert (status, body["description"]) == (400, description)
    assert api.webhook is None


async def test_deliver_again_sends_the_same_update(
    api: BotApiStandIn, receiver: Receiver, http: aiohttp.ClientSession
) -> None:
    """deliver_again posts a delivered update once more, as Telegram may (at least once)."""
    await call(http, api, "setWebhook", url=receiver.url, secret_token=SECRET)
    api.person(ANN, "Ann").send("twice")
    await api.wait_delivered()

    assert await api.deliver_again(1) == 200
    assert receiver.texts(ANN) == ["twice", "twice"]
    assert receiver.posts[0] == receiver.posts[1]
    assert api.deliveries == [(1, 200), (1, 200)]


async def test_allowed_updates_filters_what_is_sent(
    api: BotApiStandIn, receiver: Receiver, http: aiohttp.ClientSession
) -> None:
    """Updates of kinds not in allowed_updates are not sent (and not kept pending)."""
    await call(http, api, "setWebhook", url=receiver.url, allowed_updates=["callback_query"])
    message = api.person(ANN, "Ann").send("not wanted")
    api.person(ANN, "Ann").edit(message, "still not wanted")
    await api.wait_delivered()
    assert receiver.posts == []


async def test_python_telegram_bot_reads_it(api: BotApiStandIn, receiver: Receiver) -> None:
    """The desk's library sets, reads and deletes the webhook as it would on Telegram."""
    bot = Bot(api.token, base_url=f"{api.base_url}/bot")
    async with bot:
        assert await bot.set_webhook(
            receiver.url, secret_token=SECRET, max_connections=10, allowed_updates=["message"]
        )
        info = await bot.get_webhook_info()
        assert (info.url, info.max_connections, info.allowed_updates) == (
            receiver.url,
            10,
            ("message",),
        )
        api.person(ANN, "Ann").send("via ptb")
        await api.wait_delivered()
        assert receiver.posts[0][1] == SECRET
        assert await bot.delete_webhook()
    assert api.webhook is None
