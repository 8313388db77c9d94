"""Secrets in URLs (a group robot's webhook key, the access token and the app secret of WeCom's
API, a password or key in the shop's order endpoint) never reach a log line or a failure's
text: a failure says the status or the kind of error."""

from __future__ import annotations

import logging
import traceback
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from aiohttp import web

from bot.channels.wecom.client import KfClient
from bot.channels.wecom.robot import GroupRobot
from bot.domain.messages import Outgoing, Say, Urgency
from bot.orders import fetch_order
from bot.standin.wecom import WeComStandIn
from tests.serving import serving

ROBOT_KEY = "robot-key-5f3a9c"
ENDPOINT_KEY = "endpoint-key-77e1"
ENDPOINT_PASSWORD = "endpoint-password-0b2d"
APP_SECRET = "app-secret-c4d2e8"
ACCESS_TOKEN = "access-token-91ab3f"
SECRETS = (ROBOT_KEY, ENDPOINT_KEY, ENDPOINT_PASSWORD, APP_SECRET, ACCESS_TOKEN)
NOW = datetime(2026, 11, 23, 4, 0, tzinfo=UTC)


def told(caplog: pytest.LogCaptureFixture, failure: BaseException | None = None) -> str:
    """Everything the logs (messages and tracebacks) and the failure's text and traceback say."""
    said = [r.getMessage() for r in caplog.records]
    said += [r.exc_text or "" for r in caplog.records]
    said += [
        "".join(traceback.format_exception(*r.exc_info)) for r in caplog.records if r.exc_info
    ]
    if failure is not None:
        said += [str(failure), repr(failure), "".join(traceback.format_exception(failure))]
    return "\n".join(said)


def no_secret_in(text: str) -> bool:
    return not any(secret in text for secret in SECRETS)


async def serve(app: web.Application) -> AsyncIterator[str]:
    """Serve `app` on a free local port; yields its base URL."""
    async with serving(app) as url:
        yield url


@pytest.fixture
async def broken() -> AsyncIterator[str]:
    """A server that answers 500 under /fail and sends every request under /loop round and
    round (too many redirects), its query string and all."""

    async def fail(request: web.Request) -> web.Response:
        return web.Response(status=500, text="<html>Internal Server Error</html>")

    async def loop(request: web.Request) -> web.Response:
        raise web.HTTPFound(str(request.rel_url))

    app = web.Application()
    app.router.add_route("*", "/fail/{tail:.*}", fail)
    app.router.add_route("*", "/loop/{tail:.*}", loop)
    async for url in serve(app):
        yield url


async def _none() -> list[Outgoing]:
    return []


async def test_a_failing_group_robot_says_its_status_not_its_key(
    wecom: WeComStandIn, caplog: pytest.LogCaptureFixture
) -> None:
    """The robot's webhook answers HTTP 500: the failure (which the sender logs and stores in
    the outbox row) says so, and never holds the webhook's key."""
    caplog.set_level(logging.DEBUG)
    wecom.inject_http("webhook/send", 500)
    robot = GroupRobot(f"{wecom.base_url}/cgi-bin/webhook/send?key={ROBOT_KEY}", str)
    row = Outgoing(
        1, "mirror", "mirror", "mirror", 1, "mirrored", Urgency.REPORT,
        {"say": Say("⚠️ T-000001").to_json()}, NOW, None, None,
    )  # fmt: skip
    with pytest.raises(Exception) as failed:
        await robot.deliver([row], _none)
    await robot.close()
    assert "500" in str(failed.value)
    assert no_secret_in(told(caplog, failed.value))


@pytest.mark.parametrize("where", ["fail", "loop"])
async def test_a_failing_order_endpoint_logs_its_status_not_its_secrets(
    broken: str, where: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The shop's endpoint answers 500 or redirects for ever: the card goes without the order,
    and the warning names the status, never the endpoint's key or password."""
    caplog.set_level(logging.DEBUG)
    userinfo = f"desk:{ENDPOINT_PASSWORD}@"
    endpoint = (
        f"{broken.replace('//', '//' + userinfo)}/{where}/{{order_number}}?key={ENDPOINT_KEY}"
    )
    assert await fetch_order(endpoint, "FS2026112301") is None
    warning = [r.getMessage() for r in caplog.records if r.name == "bot.orders"]
    assert warning and ("HTTP 500" in warning[0] if where == "fail" else "redirect" in warning[0])
    assert "FS2026112301" in warning[0]
    assert no_secret_in(told(caplog))


async def test_a_failing_order_endpoint_that_refuses_connections_logs_no_secret(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Nothing listens at the endpoint's port: the warning says so, without its secrets."""
    caplog.set_level(logging.DEBUG)
    endpoint = f"http://desk:{ENDPOINT_PASSWORD}@127.0.0.1:9/{{order_number}}?key={ENDPOINT_KEY}"
    assert await fetch_order(endpoint, "FS1") is None
    assert any(r.name == "bot.orders" for r in caplog.records)
    assert no_secret_in(told(caplog))


@pytest.fixture
async def wecom_api() -> AsyncIterator[str]:
    """WeCom's API behind a broken proxy: gettoken works only for the right secret (else it
    redirects for ever, the secret in the query); every other call redirects for ever with the
    access token in its query, or answers a 502 page."""

    async def gettoken(request: web.Request) -> web.Response:
        if request.query.get("corpsecret") == APP_SECRET:
            return web.json_response({"errcode": 0, "access_token": ACCESS_TOKEN})
        raise web.HTTPFound(str(request.rel_url))

    async def other(request: web.Request) -> web.Response:
        if request.match_info["tail"].startswith("kf/"):
            raise web.HTTPFound(str(request.rel_url))
        return web.Response(status=502, text="<html>502 Bad Gateway</html>")

    app = web.Application()
    app.router.add_get("/cgi-bin/gettoken", gettoken)
    app.router.add_route("*", "/cgi-bin/{tail:.*}", other)
    async for url in serve(app):
        yield url


async def test_wecom_api_failures_never_show_the_access_token_or_the_secret(
    wecom_api: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A call that fails in transit (redirected for ever, a 502 page) says which call and how,
    never the access token or the app secret in its query."""
    caplog.set_level(logging.DEBUG)
    client = KfClient(wecom_api, "wwcorp", APP_SECRET)
    failures: list[BaseException] = []
    for call in (
        client.sync_msg(None, "ENCtoken", "wk1"),
        client.get_media("media-1"),
        client.upload_media("image", b"\xff\xd8", "photo.jpg"),
    ):
        with pytest.raises(Exception) as failed:
            await call
        failures.append(failed.value)
    wrong = KfClient(wecom_api, "wwcorp", APP_SECRET + "-old")
    with pytest.raises(Exception) as refused:
        await wrong.token()
    failures.append(refused.value)
    await client.close()
    await wrong.close()
    for failure in failures:
        assert no_secret_in(told(caplog, failure)), failure
    assert "kf/sync_msg" in str(failures[0]) and "gettoken" in str(failures[-1])
    assert "502" in str(failures[1]) and "502" in str(failures[2])
