"""The WeCom customer-service stand-in keeps WeCom's rules: the access token, sync_msg's paging,
the send window, media, signed and retried callbacks, and the group robot's rate limit."""

from __future__ import annotations

import asyncio
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from bot.channels.wecom.crypto import CryptoError, WeComCrypto
from bot.standin import WeComStandIn
from tests.serving import serving


@pytest.fixture
def standin(wecom: WeComStandIn) -> WeComStandIn:
    return wecom


async def get_token(http: aiohttp.ClientSession, standin: WeComStandIn) -> str:
    async with http.get(
        f"{standin.base_url}/cgi-bin/gettoken",
        params={"corpid": standin.corp_id, "corpsecret": standin.secret},
    ) as response:
        data = await response.json()
    assert data["errcode"] == 0, data
    return str(data["access_token"])


async def call(
    http: aiohttp.ClientSession, standin: WeComStandIn, path: str, body: dict[str, Any], token: str
) -> dict[str, Any]:
    async with http.post(
        f"{standin.base_url}/cgi-bin/{path}", params={"access_token": token}, json=body
    ) as response:
        return dict(await response.json())


def text(standin: WeComStandIn, touser: str, content: str, **extra: Any) -> dict[str, Any]:
    return {
        "touser": touser,
        "open_kfid": standin.open_kfid,
        "msgtype": "text",
        "text": {"content": content},
        **extra,
    }


@dataclass
class Bot:
    """A tiny callback server standing for the bot: checks and decrypts what WeCom posts."""

    crypto: WeComCrypto
    slow_first: bool = False  # the first POST is answered only once WeCom has posted again
    retried: asyncio.Event = field(default_factory=asyncio.Event)
    posts: list[tuple[dict[str, str], str]] = field(default_factory=list)
    events: list[ET.Element] = field(default_factory=list)
    server: AsyncExitStack = field(default_factory=AsyncExitStack)
    url: str = ""

    async def start(self) -> str:
        app = web.Application()
        app.router.add_get("/wecom", self.verify)
        app.router.add_post("/wecom", self.callback)
        self.url = await self.server.enter_async_context(serving(app)) + "/wecom"
        return self.url

    async def stop(self) -> None:
        await self.server.aclose()

    async def verify(self, request: web.Request) -> web.Response:
        q = request.query
        try:
            plain = self.crypto.verify_url(
                q["msg_signature"], q["timestamp"], q["nonce"], q["echostr"]
            )
        except CryptoError:
            return web.Response(status=403, text="forbidden")
        return web.Response(text=plain)

    async def callback(self, request: web.Request) -> web.Response:
        body = await request.text()
        self.posts.append((dict(request.query), body))
        if len(self.posts) > 1:
            self.retried.set()
        if self.slow_first and len(self.posts) == 1:
            await self.retried.wait()  # too late for WeCom, which has given up and retried
        q = request.query
        encrypted = ET.fromstring(body).findtext("Encrypt") or ""
        try:
            plain = self.crypto.open(q["msg_signature"], q["timestamp"], q["nonce"], encrypted)
        except CryptoError:
            return web.Response(status=403, text="forbidden")
        self.events.append(ET.fromstring(plain))
        return web.Response(text="success")


@pytest.fixture
async def bot(standin: WeComStandIn) -> AsyncIterator[Bot]:
    receiver = Bot(WeComCrypto(standin.token, standin.aes_key, standin.corp_id))
    standin.set_callback(await receiver.start())
    yield receiver
    await standin.settle()
    await receiver.stop()


async def test_the_token_is_given_for_the_secret_and_refused_once_expired(
    standin: WeComStandIn, http: aiohttp.ClientSession
) -> None:
    """gettoken answers a token for the right secret, 40001 for a wrong one, and an expired
    token is refused with 40014 until a new one is fetched."""
    async with http.get(
        f"{standin.base_url}/cgi-bin/gettoken",
        params={"corpid": standin.corp_id, "corpsecret": "wrong"},
    ) as response:
        assert (await response.json())["errcode"] == 40001
    token = await get_token(http, standin)
    standin.require_token = False
    body = {"open_kfid": standin.open_kfid, "token": ""}
    assert (await call(http, standin, "kf/sync_msg", body, token))["errcode"] == 0
    standin.expire_token()
    refused = await call(http, standin, "kf/sync_msg", body, token)
    assert (refused["errcode"], refused["errmsg"]) == (40014, "invalid access_token")
    fresh = await get_token(http, standin)
    assert fresh != token
    assert (await call(http, standin, "kf/sync_msg", body, fresh))["errcode"] == 0


async def test_sync_msg_pages_with_has_more_and_the_cursor(
    standin: WeComStandIn, http: aiohttp.ClientSession
) -> None:
    """With small pages sync_msg says has_more until the log is read, and a cursor resumes where
    the last page ended."""
    standin.require_token = False
    standin.page_size = 2
    li = standin.customer("wmCUSTOMER01")
    li.enter_session(scene="shop")
    li.say("我的快递丢了")
    li.tap_menu("101", "查询进度")
    li.send_image(standin.add_media(b"\xff\xd8\xff photo bytes", "image"))
    li.send_location()
    token = await get_token(http, standin)
    seen: list[dict[str, Any]] = []
    cursor: str | None = None
    has_more = [1]
    while has_more[-1]:
        body: dict[str, Any] = {"open_kfid": standin.open_kfid, "token": ""}
        if cursor:
            body["cursor"] = cursor
        page = await call(http, standin, "kf/sync_msg", body, token)
        assert page["errcode"] == 0, page
        seen.extend(page["msg_list"])
        has_more.append(page["has_more"])
        cursor = page["next_cursor"]
    assert has_more[1:] == [1, 1, 0]
    event, said, tapped, photo, place = seen
    assert event["origin"] == 4 and event["event"]["event_type"] == "enter_session"
    assert event["event"]["welcome_code"] and event["event"]["scene"] == "shop"
    assert said["origin"] == 3 and said["text"] == {"content": "我的快递丢了"}
    assert said["external_userid"] == "wmCUSTOMER01" and isinstance(said["send_time"], int)
    assert tapped["text"] == {"content": "查询进度", "menu_id": "101"}
    assert photo["msgtype"] == "image" and photo["image"]["media_id"] in standin.media
    assert set(place["location"]) == {"latitude", "longitude", "name", "address"}
    assert len({m["msgid"] for m in seen}) == 5
    li.say("还在吗")
    page = await call(
        http, standin, "kf/sync_msg", {"open_kfid": standin.open_kfid, "cursor": cursor}, token
    )
    assert [m["text"]["content"] for m in page["msg_list"]] == ["还在吗"]
    assert page["has_more"] == 0


async def test_send_msg_keeps_the_window_the_length_and_the_sender_msgid(
    standin: WeComStandIn, http: aiohttp.ClientSession
) -> None:
    """Five answers per customer message then 95001, 95002 past 48 hours or with no message,
    45002 past 2048 bytes, 95013 once ended, and a repeated msgid is not sent twice."""
    token = await get_token(http, standin)
    li = standin.customer("wmCUSTOMER02")
    never = await call(http, standin, "kf/send_msg", text(standin, "wmNOBODY", "你好"), token)
    assert never["errcode"] == 95002
    li.say("退款呢")
    for n in range(5):
        answer = await call(
            http, standin, "kf/send_msg", text(standin, li.external_userid, f"答复{n}"), token
        )
        assert answer["errcode"] == 0 and answer["msgid"]
    sixth = await call(http, standin, "kf/send_msg", text(standin, li.external_userid, "6"), token)
    assert sixth["errcode"] == 95001
    li.say("再问一下")
    too_long = text(standin, li.external_userid, "字" * 683)  # 2049 bytes
    assert (await call(http, standin, "kf/send_msg", too_long, token))["errcode"] == 45002
    just_fits = text(standin, li.external_userid, "字" * 682 + "ab", msgid="desk7p0")
    first = await call(http, standin, "kf/send_msg", just_fits, token)
    again = await call(http, standin, "kf/send_msg", just_fits, token)
    assert first == again == {"errcode": 0, "errmsg": "ok", "msgid": "desk7p0"}
    assert [s.msgid for s in standin.sent].count("desk7p0") == 1
    assert len(standin.sent_to(li.external_userid)) == 6
    standin.travel(48 * 3600 + 1)
    late = await call(
        http, standin, "kf/send_msg", text(standin, li.external_userid, "晚了"), token
    )
    assert late["errcode"] in (40014, 42001)  # the access token lived 2 hours
    token = await get_token(http, standin)
    late = await call(
        http, standin, "kf/send_msg", text(standin, li.external_userid, "晚了"), token
    )
    assert late["errcode"] == 95002
    li.say("人呢")
    standin.end_session(li)
    ended = await call(http, standin, "kf/send_msg", text(standin, li.external_userid, "x"), token)
    assert ended["errcode"] == 95013
    li.say("又来了")
    standin.hand_to_servicer(li)
    human = await call(http, standin, "kf/send_msg", text(standin, li.external_userid, "x"), token)
    assert human["errcode"] == 95013


async def test_a_welcome_code_answers_once_within_20_seconds(
    standin: WeComStandIn, http: aiohttp.ClientSession
) -> None:
    """send_msg_on_event takes an enter_session's welcome code once, within 20 seconds."""
    token = await get_token(http, standin)
    li = standin.customer("wmCUSTOMER03")
    code = li.enter_session()["event"]["welcome_code"]
    body = {"code": code, "msgtype": "text", "text": {"content": "您好，请讲"}}
    assert (await call(http, standin, "kf/send_msg_on_event", body, token))["errcode"] == 0
    assert (await call(http, standin, "kf/send_msg_on_event", body, token))["errcode"] == 95016
    late = li.enter_session(welcome=True)["event"]["welcome_code"]
    standin.travel(21)
    body["code"] = late
    assert (await call(http, standin, "kf/send_msg_on_event", body, token))["errcode"] == 95016
    assert [s.via for s in standin.sent_to(li.external_userid)] == ["send_msg_on_event"]


async def test_media_is_uploaded_and_fetched_back(
    standin: WeComStandIn, http: aiohttp.ClientSession
) -> None:
    """media/upload keeps the bytes and media/get returns them as an image; an unknown id is
    40007."""
    token = await get_token(http, standin)
    form = aiohttp.FormData()
    form.add_field("media", b"\xff\xd8\xff receipt photo", filename="receipt.jpg")
    async with http.post(
        f"{standin.base_url}/cgi-bin/media/upload",
        params={"access_token": token, "type": "image"},
        data=form,
    ) as response:
        uploaded = await response.json()
    assert uploaded["errcode"] == 0 and uploaded["type"] == "image"
    assert uploaded["created_at"].isdigit()
    async with http.get(
        f"{standin.base_url}/cgi-bin/media/get",
        params={"access_token": token, "media_id": uploaded["media_id"]},
    ) as response:
        assert response.content_type == "image/jpeg"
        assert await response.read() == b"\xff\xd8\xff receipt photo"
    async with http.get(
        f"{standin.base_url}/cgi-bin/media/get",
        params={"access_token": token, "media_id": "nothing"},
    ) as response:
        assert (await response.json())["errcode"] == 40007


async def test_the_callback_is_signed_and_its_token_opens_sync_msg(
    standin: WeComStandIn, bot: Bot, http: aiohttp.ClientSession
) -> None:
    """A customer's message is called back encrypted and signed as WeCom does, and the token
    inside opens sync_msg while a made-up one is 95007."""
    standin.customer("wmCUSTOMER04").say("在吗")
    await standin.wait_callbacks(1)
    assert standin.callbacks[0].status == 200 and standin.callbacks[0].body == "success"
    (event,) = bot.events
    assert event.findtext("ToUserName") == standin.corp_id
    assert event.findtext("Event") == "kf_msg_or_event"
    assert event.findtext("OpenKfId") == standin.open_kfid
    msg_token = event.findtext("Token") or ""
    assert msg_token == standin.callbacks[0].token
    token = await get_token(http, standin)
    body = {"open_kfid": standin.open_kfid, "token": msg_token}
    page = await call(http, standin, "kf/sync_msg", body, token)
    assert [m["text"]["content"] for m in page["msg_list"]] == ["在吗"]
    body["token"] = "ENCmadeup"
    assert (await call(http, standin, "kf/sync_msg", body, token))["errcode"] == 95007
    status, echoed = await standin.verify_url()
    assert (status, echoed) == (200, standin.last_echo)
    assert await standin.post_forged_callback() == 403


async def test_a_callback_the_bot_answers_late_is_posted_again(
    standin: WeComStandIn, bot: Bot
) -> None:
    """When the bot does not answer in time, the same callback is posted again."""
    standin.callback_timeout = 0.3
    bot.slow_first = True
    standin.customer("wmCUSTOMER05").say("退货")
    await standin.wait_callbacks(2)
    first, second = standin.callbacks
    assert first.status is None and first.error and first.seconds >= 0.25
    assert second.status == 200 and (second.callback, second.attempt) == (first.callback, 2)
    assert bot.posts[0] == bot.posts[1]  # the same query and body


async def test_the_group_robot_takes_20_messages_a_minute(
    standin: WeComStandIn, http: aiohttp.ClientSession
) -> None:
    """The webhook answers 45009 past 20 messages a minute for a key, and takes more a minute
    later."""
    url = f"{standin.base_url}/cgi-bin/webhook/send"
    body = {"msgtype": "markdown", "markdown": {"content": "**新投诉** #12"}}
    codes = []
    for _ in range(21):
        async with http.post(url, params={"key": "robot-1"}, json=body) as response:
            codes.append((await response.json())["errcode"])
    assert codes == [0] * 20 + [45009]
    async with http.post(url, params={"key": "robot-2"}, json=body) as response:
        assert (await response.json())["errcode"] == 0
    standin.travel(61)
    async with http.post(url, params={"key": "robot-1"}, json=body) as response:
        assert (await response.json())["errcode"] == 0
    assert len(standin.webhook_sent) == 22
    assert standin.webhook_sent[0].content == "**新投诉** #12"
