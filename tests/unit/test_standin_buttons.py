"""The Bot API stand-in keeps Telegram's rules on whom the bot may write to and on the buttons it
sends: a Mini App button (`web_app`) only in a private chat and only over https (plain http on a
loopback address, for the tests' desk), link buttons with a real address, and no first message
to someone who never started the bot."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from bot.standin import BotApiStandIn

GROUP = -1001234567890


@pytest.fixture
async def api() -> AsyncIterator[BotApiStandIn]:
    standin = BotApiStandIn()
    await standin.start()
    standin.add_group(GROUP, "花店售后群")
    yield standin
    await standin.stop()


async def send(api: BotApiStandIn, chat_id: int, *buttons: dict[str, Any]) -> dict[str, Any]:
    """sendMessage with one row of inline buttons, as the bot posts it (JSON)."""
    body = {"chat_id": chat_id, "text": "投诉看板", "reply_markup": {"inline_keyboard": [buttons]}}
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{api.base_url}/bot{api.token}/sendMessage", json=body) as answer,
    ):
        result: dict[str, Any] = await answer.json()
        assert (answer.status == 200) == result["ok"]
        return result


def web_app(url: str) -> dict[str, Any]:
    return {"text": "📊 打开投诉看板", "web_app": {"url": url}}


async def test_a_mini_app_button_goes_only_to_a_private_chat(api: BotApiStandIn) -> None:
    """In a private chat the web_app button is sent and recorded with its address; in a group
    Telegram's 400 BUTTON_TYPE_INVALID comes back and nothing is sent."""
    boss = api.person(4242, "陈店长")
    sent = await send(api, boss.id, web_app("https://desk.example.com/dashboard"))
    assert sent["ok"]
    [recorded] = api.sent_to(boss.id)
    assert recorded.reply_markup == {
        "inline_keyboard": [[web_app("https://desk.example.com/dashboard")]]
    }
    assert recorded.buttons() == ["📊 打开投诉看板"]

    refused = await send(api, GROUP, web_app("https://desk.example.com/dashboard"))
    assert refused["error_code"] == 400
    assert refused["description"] == "Bad Request: BUTTON_TYPE_INVALID"
    assert api.sent_to(GROUP) == []


async def test_a_mini_app_needs_https_except_on_loopback(api: BotApiStandIn) -> None:
    """A web_app address over plain http is refused, unless it is a loopback address (the
    stand-in's allowance for the tests' desk)."""
    boss = api.person(4242, "陈店长")
    refused = await send(api, boss.id, web_app("http://desk.example.com/dashboard"))
    assert refused["error_code"] == 400
    assert "Only HTTPS links are allowed" in refused["description"]
    assert (await send(api, boss.id, web_app("http://127.0.0.1:8080/dashboard")))["ok"]
    assert len(api.sent_to(boss.id)) == 1


async def test_link_buttons_need_an_address(api: BotApiStandIn) -> None:
    """A url button with no scheme is refused; a t.me link is taken, in a group too."""
    refused = await send(api, GROUP, {"text": "私聊", "url": "t.me/desk_bot?start=dashboard"})
    assert refused["error_code"] == 400 and "is invalid" in refused["description"]
    link = {"text": "私聊", "url": "https://t.me/desk_bot?start=dashboard"}
    assert (await send(api, GROUP, link))["ok"]
    assert api.sent_to(GROUP)[0].reply_markup == {"inline_keyboard": [[link]]}


async def test_the_bot_cannot_write_first_to_someone_who_never_started_it(
    api: BotApiStandIn,
) -> None:
    """Someone who never opened a chat with the bot cannot be written to (403), a message in
    the group does not change that, and once they write to the bot privately it can answer."""
    boss = api.person(4242, "陈店长", started=False)
    refused = await send(api, boss.id, web_app("https://desk.example.com/dashboard"))
    assert refused["error_code"] == 403
    assert refused["description"] == "Forbidden: bot can't initiate conversation with a user"
    boss.say_in_group(GROUP, "/dashboard")
    assert (await send(api, boss.id, web_app("https://desk.example.com/dashboard")))[
        "error_code"
    ] == 403
    boss.send("/start dashboard")
    assert (await send(api, boss.id, web_app("https://desk.example.com/dashboard")))["ok"]
    assert len(api.sent_to(boss.id)) == 1
