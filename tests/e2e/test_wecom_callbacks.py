"""WeCom's callbacks at the desk's callback server: believed only when WeCom signed them, and
signed them now; the XML is parsed only after the signature is checked, and never expanded."""

from __future__ import annotations

import logging
import time
import xml.etree.ElementTree
from typing import Any

import aiohttp
import defusedxml.ElementTree
import pytest

from bot.channels.wecom.crypto import signature
from bot.standin.wecom import WeComStandIn
from tests.e2e.people import callback_url, start_wechat_desk

CUSTOMER = "wmSTANDINcustomer07"
BOMB_DTD = (  # a million characters once expanded: little enough that expat would expand it
    '<!DOCTYPE xml [<!ENTITY a "aaaaaaaaaa">'
    '<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;"><!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">'
    '<!ENTITY d "&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;"><!ENTITY e "&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;">'
    '<!ENTITY f "&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;">]>'
)


async def start_desk(start_bot: Any, wecom: WeComStandIn) -> tuple[Any, str]:
    """The desk with WeChat on; the stand-in does not call it back until told to."""
    bot = await start_wechat_desk(start_bot, wecom)
    return bot, callback_url(bot)


def event(wecom: WeComStandIn) -> str:
    """WeCom's "there is something to pull" event."""
    return (
        f"<xml><ToUserName><![CDATA[{wecom.corp_id}]]></ToUserName>"
        "<MsgType><![CDATA[event]]></MsgType><Event><![CDATA[kf_msg_or_event]]></Event>"
        f"<Token><![CDATA[ENCanything]]></Token><OpenKfId><![CDATA[{wecom.open_kfid}]]>"
        "</OpenKfId></xml>"
    )


async def post(
    url: str,
    wecom: WeComStandIn,
    *,
    age: float = 0,
    token: str | None = None,
    dtd: str = "",
    extra: str = "",
) -> int:
    """Post a callback carrying the event, signed `age` seconds ago (with `token`: forged);
    the status the desk answers."""
    encrypted = wecom.crypto.encrypt(event(wecom))
    timestamp, nonce = str(int(time.time() - age)), "20261124"
    query = {
        "msg_signature": signature(token or wecom.token, timestamp, nonce, encrypted),
        "timestamp": timestamp,
        "nonce": nonce,
    }
    body = (
        f"{dtd}<xml><ToUserName><![CDATA[{wecom.corp_id}]]></ToUserName>{extra}"
        f"<Encrypt><![CDATA[{encrypted}]]></Encrypt><AgentID><![CDATA[]]></AgentID></xml>"
    )
    async with aiohttp.ClientSession() as http:
        async with http.post(url, params=query, data=body.encode()) as response:
            return response.status


async def check_url(url: str, wecom: WeComStandIn, age: float) -> tuple[int, str]:
    """WeCom's URL check (GET), signed `age` seconds ago: (status, body)."""
    encrypted = wecom.crypto.encrypt("1288432023552776189")
    timestamp, nonce = str(int(time.time() - age)), "47744683"
    query = {
        "msg_signature": signature(wecom.token, timestamp, nonce, encrypted),
        "timestamp": timestamp,
        "nonce": nonce,
        "echostr": encrypted,
    }
    async with aiohttp.ClientSession() as http:
        async with http.get(url, params=query) as response:
            return response.status, await response.text()


def pulls(wecom: WeComStandIn) -> int:
    return sum(1 for path, _ in wecom.calls if path == "kf/sync_msg")


async def stored(bot: Any) -> int:
    async with bot.app.new_uow() as uow:
        return int(await uow.wecom.count())


async def test_an_old_correctly_signed_callback_is_refused_and_stores_nothing(
    wecom: WeComStandIn, start_bot: Any
) -> None:
    """A callback (or URL check) signed by WeCom ten minutes ago, or ten minutes ahead, gets 403
    and nothing is pulled or stored; one signed now is answered, and the customer with it."""
    bot, url = await start_desk(start_bot, wecom)
    wecom.require_token = False  # any callback's token would open sync_msg: only the desk checks
    wecom.customer(CUSTOMER, "小周").say("你好,花蔫了")  # waiting in WeCom, not called back yet

    assert await post(url, wecom, age=600) == 403
    assert await post(url, wecom, age=-600) == 403
    assert (await check_url(url, wecom, age=600))[0] == 403
    await bot.settled()
    assert pulls(wecom) == 0 and await stored(bot) == 0

    assert await check_url(url, wecom, age=0) == (200, "1288432023552776189")
    assert await post(url, wecom, age=30) == 200  # a little late: WeCom's retries are too
    await wecom.wait_calls("kf/sync_msg", 1)
    await wecom.wait_sent(lambda s: s.touser == CUSTOMER, timeout=20)
    assert await stored(bot) == 1


async def test_a_forged_callback_is_not_parsed_and_a_signed_xml_bomb_is_not_expanded(
    wecom: WeComStandIn,
    start_bot: Any,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An XML bomb with a bad signature gets 403 before any XML parser runs; wrapped around a
    real, correctly signed Encrypt it gets 403 from defusedxml (entities forbidden), nothing
    expanded, pulled or stored."""
    caplog.set_level(logging.WARNING)
    bot, url = await start_desk(start_bot, wecom)
    wecom.require_token = False
    parsed: list[object] = []
    for module in (xml.etree.ElementTree, defusedxml.ElementTree):
        for name in ("fromstring", "XML", "parse"):
            original = getattr(module, name)
            monkeypatch.setattr(
                module, name, lambda *a, _f=original, **k: parsed.append(a) or _f(*a, **k)
            )

    forged = await post(url, wecom, token="not-the-token", dtd=BOMB_DTD, extra="<X>&f;</X>")
    assert forged == 403 and parsed == []
    assert "bad signature" in caplog.text

    assert await post(url, wecom, dtd=BOMB_DTD, extra="<X>&f;</X>") == 403
    assert parsed  # this one was parsed, by defusedxml, which refused it
    assert "EntitiesForbidden" in caplog.text
    await bot.settled()
    assert pulls(wecom) == 0 and await stored(bot) == 0
