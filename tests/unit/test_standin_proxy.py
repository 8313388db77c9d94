"""The round-robin proxy of the tests puts several instances behind one address, as a load
balancer does: in turn, skipping one that refuses connections, or to all at once (mirror)."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack

import aiohttp
import pytest
from aiohttp import web

from bot.standin import BotApiStandIn
from bot.standin.proxy import RoundRobin
from bot.standin.webhook import SECRET_HEADER
from tests.serving import serving


def instance(name: str, status: int = 200, seen: list[str] | None = None) -> web.Application:
    """An upstream that answers with its name, what it got, and `status`."""

    async def handle(request: web.Request) -> web.Response:
        body = await request.text()
        if seen is not None:
            seen.append(body)
        return web.json_response(
            {
                "name": name,
                "method": request.method,
                "path": request.path_qs,
                "secret": request.headers.get(SECRET_HEADER),
                "body": body,
            },
            status=status,
            headers={"X-Instance": name},
        )

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    return app


def dead_upstream() -> str:
    """An address where nothing listens (a port just freed)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


@pytest.fixture
async def servers() -> AsyncIterator[AsyncExitStack]:
    async with AsyncExitStack() as stack:
        yield stack


async def post(http: aiohttp.ClientSession, url: str) -> tuple[int, dict[str, str]]:
    async with http.post(
        url, data=b'{"update_id": 7}', headers={SECRET_HEADER: "sekrit"}
    ) as response:
        return response.status, dict(await response.json())


async def test_requests_alternate_and_pass_through(
    servers: AsyncExitStack, http: aiohttp.ClientSession
) -> None:
    """Requests go to each upstream in turn, with method, path, query, secret and body as sent,
    and the upstream's status, body and headers come back."""
    a = await servers.enter_async_context(serving(instance("a")))
    b = await servers.enter_async_context(serving(instance("b", status=201)))
    proxy = await servers.enter_async_context(RoundRobin([a, b]))

    answers = [await post(http, f"{proxy.url}/telegram/hook?x=1") for _ in range(4)]

    assert [(status, body["name"]) for status, body in answers] == [
        (200, "a"),
        (201, "b"),
        (200, "a"),
        (201, "b"),
    ]
    assert answers[0][1] == {
        "name": "a",
        "method": "POST",
        "path": "/telegram/hook?x=1",
        "secret": "sekrit",
        "body": '{"update_id": 7}',
    }
    async with http.get(f"{proxy.url}/healthz") as response:
        assert response.headers["X-Instance"] == "a"
    assert proxy.requests == {a: 3, b: 2}


async def test_an_upstream_that_refuses_is_skipped(
    servers: AsyncExitStack, http: aiohttp.ClientSession
) -> None:
    """An upstream that refuses connections is passed over for the next; with none left, 502."""
    dead = dead_upstream()
    alive = await servers.enter_async_context(serving(instance("alive")))
    proxy = await servers.enter_async_context(RoundRobin([dead, alive]))

    answers = [await post(http, f"{proxy.url}/hook") for _ in range(3)]
    assert [(status, body["name"]) for status, body in answers] == [(200, "alive")] * 3
    assert proxy.requests == {alive: 3}
    assert proxy.refused[dead] >= 1

    proxy.set_upstreams([dead])
    async with http.post(f"{proxy.url}/hook", data=b"{}") as response:
        assert response.status == 502


async def test_set_upstreams_changes_who_answers(
    servers: AsyncExitStack, http: aiohttp.ClientSession
) -> None:
    """After set_upstreams, requests go to the new upstreams only."""
    a = await servers.enter_async_context(serving(instance("a")))
    b = await servers.enter_async_context(serving(instance("b")))
    proxy = await servers.enter_async_context(RoundRobin([a]))
    assert (await post(http, proxy.url))[1]["name"] == "a"
    proxy.set_upstreams([b])
    assert (await post(http, proxy.url))[1]["name"] == "b"


async def test_mirror_sends_to_every_upstream(
    servers: AsyncExitStack, http: aiohttp.ClientSession
) -> None:
    """With mirror, each request reaches every upstream, and the answer is the first 2xx."""
    seen_a: list[str] = []
    seen_b: list[str] = []
    a = await servers.enter_async_context(serving(instance("a", status=500, seen=seen_a)))
    b = await servers.enter_async_context(serving(instance("b", seen=seen_b)))
    proxy = await servers.enter_async_context(RoundRobin([a, dead_upstream(), b], mirror=True))

    status, body = await post(http, f"{proxy.url}/hook")

    assert (status, body["name"]) == (200, "b")
    assert seen_a == seen_b == ['{"update_id": 7}']


async def test_the_webhook_through_the_proxy_reaches_both_instances(
    servers: AsyncExitStack,
) -> None:
    """The stand-in's webhook behind the proxy: updates spread over both instances, the secret
    with each, and every update delivered once."""
    seen_a: list[str] = []
    seen_b: list[str] = []
    a = await servers.enter_async_context(serving(instance("a", seen=seen_a)))
    b = await servers.enter_async_context(serving(instance("b", seen=seen_b)))
    proxy = await servers.enter_async_context(RoundRobin([a, b]))
    api = BotApiStandIn()
    await api.start()
    servers.push_async_callback(api.stop)
    async with aiohttp.ClientSession() as http:
        async with http.post(
            f"{api.base_url}/bot{api.token}/setWebhook",
            json={"url": f"{proxy.url}/telegram/hook", "secret_token": "sekrit"},
        ) as response:
            assert response.status == 200

    for n in range(4):
        api.person(3000 + n, f"P{n}").send(f"hello {n}")
    await api.wait_delivered()

    assert len(seen_a) == len(seen_b) == 2
    assert sorted(update_id for update_id, _ in api.deliveries) == [1, 2, 3, 4]
