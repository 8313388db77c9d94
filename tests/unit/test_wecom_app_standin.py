"""The WeCom stand-in keeps the self-built app's rules: its own token, message/send's limits (text
cut at 2048 bytes, button cards, 30 a minute per member dropped silently), response codes once
within 72 hours, the trusted-IP refusal, and staff callbacks signed, encrypted and retried."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Any
from xml.etree.ElementTree import Element

import aiohttp
import pytest
from aiohttp import web

from bot.channels.wecom.crypto import CryptoError, WeComCrypto, encrypted_of, parse_xml
from bot.standin.wecom import WeComStandIn
from tests.serving import serving


@pytest.fixture
def standin(wecom: WeComStandIn) -> WeComStandIn:
    return wecom


async def token_for(http: aiohttp.ClientSession, standin: WeComStandIn, secret: str) -> str:
    async with http.get(
        f"{standin.base_url}/cgi-bin/gettoken",
        params={"corpid": standin.corp_id, "corpsecret": secret},
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


async def send(
    http: aiohttp.ClientSession, standin: WeComStandIn, body: dict[str, Any], token: str
) -> dict[str, Any]:
    return await call(http, standin, "message/send", body, token)


def text(standin: WeComStandIn, touser: str, content: str) -> dict[str, Any]:
    return {
        "touser": touser,
        "msgtype": "text",
        "agentid": standin.agent_id,
        "text": {"content": content},
    }


def card(standin: WeComStandIn, touser: str, task_id: str, buttons: int = 3) -> dict[str, Any]:
    return {
        "touser": touser,
        "msgtype": "template_card",
        "agentid": standin.agent_id,
        "template_card": {
            "card_type": "button_interaction",
            "main_title": {"title": "新投诉 #T-000123", "desc": "花没送到"},
            "task_id": task_id,
            "button_list": [
                {"text": label, "style": 1, "key": f"{task_id}:{n}"}
                for n, label in enumerate(["认领", "回复", "升级", "转交", "关闭", "备注", "其他"])
            ][:buttons],
        },
    }


async def upload(
    http: aiohttp.ClientSession, standin: WeComStandIn, token: str, data: bytes
) -> dict[str, Any]:
    form = aiohttp.FormData()
    form.add_field("media", data, filename="photo.jpg")
    async with http.post(
        f"{standin.base_url}/cgi-bin/media/upload",
        params={"access_token": token, "type": "image"},
        data=form,
    ) as response:
        return dict(await response.json())


@dataclass
class Desk:
    """A tiny app callback server standing for the desk: it checks posts as the desk does
    (signature, then timestamp, then the XML) with the app's Token and EncodingAESKey."""

    crypto: WeComCrypto
    slow_first: bool = False  # the first POST is answered only once WeCom has posted again
    retried: asyncio.Event = field(default_factory=asyncio.Event)
    posts: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    messages: list[Element] = field(default_factory=list)
    server: AsyncExitStack = field(default_factory=AsyncExitStack)
    url: str = ""

    async def start(self) -> str:
        app = web.Application()
        app.router.add_get("/wecom/app", self.verify)
        app.router.add_post("/wecom/app", self.callback)
        self.url = await self.server.enter_async_context(serving(app)) + "/wecom/app"
        return self.url

    async def stop(self) -> None:
        await self.server.aclose()

    async def verify(self, request: web.Request) -> web.Response:
        q = request.query
        try:
            plain = self.crypto.answer_url_check(
                q["msg_signature"], q["timestamp"], q["nonce"], q["echostr"], time.time()
            )
        except CryptoError:
            return web.Response(status=403, text="forbidden")
        return web.Response(text=plain)

    async def callback(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.posts.append((dict(request.query), body))
        if len(self.posts) > 1:
            self.retried.set()
        if self.slow_first and len(self.posts) == 1:
            await self.retried.wait()  # too late for WeCom, which has given up and retried
        q = request.query
        try:
            message = self.crypto.open_callback(
                q["msg_signature"], q["timestamp"], q["nonce"], body, time.time()
            )
        except CryptoError:
            return web.Response(status=403, text="forbidden")
        self.messages.append(message)
        return web.Response(text="success")


@pytest.fixture
async def desk(standin: WeComStandIn) -> AsyncIterator[Desk]:
    receiver = Desk(WeComCrypto(standin.app_token, standin.app_aes_key, standin.corp_id))
    standin.set_app_callback(await receiver.start())
    yield receiver
    await standin.settle()
    await receiver.stop()


async def test_the_kf_and_app_tokens_are_not_interchangeable(
    standin: WeComStandIn, http: aiohttp.ClientSession
) -> None:
    """Each secret has its own token: the kf token is 40014 on message/send, the app's is 40014
    on kf/sync_msg, both upload media, and the app's token expires after two hours (42001)."""
    standin.staff("zhangsan")
    standin.require_token = False
    kf = await token_for(http, standin, standin.secret)
    app = await token_for(http, standin, standin.app_secret)
    assert kf != app
    sync = {"open_kfid": standin.open_kfid, "token": ""}
    assert (await send(http, standin, text(standin, "zhangsan", "x"), kf))["errcode"] == 40014
    assert (await call(http, standin, "kf/sync_msg", sync, app))["errcode"] == 40014
    assert (await call(http, standin, "kf/sync_msg", sync, kf))["errcode"] == 0
    sent = await send(http, standin, text(standin, "zhangsan", "你好"), app)
    assert sent["errcode"] == 0 and sent["msgid"]
    assert (await upload(http, standin, kf, b"\xff\xd8\xff kf photo"))["errcode"] == 0
    assert (await upload(http, standin, app, b"\xff\xd8\xff app photo"))["errcode"] == 0
    assert (standin.token_fetches, standin.app_token_fetches) == (1, 1)
    standin.travel(7201)
    late = await send(http, standin, text(standin, "zhangsan", "晚了"), app)
    assert late["errcode"] == 42001
    fresh = await token_for(http, standin, standin.app_secret)
    assert fresh != app
    again = await send(http, standin, text(standin, "zhangsan", "晚了"), fresh)
    assert again["errcode"] == 0
    wrong = dict(text(standin, "zhangsan", "x"), agentid=standin.agent_id + 1)
    assert (await send(http, standin, wrong, fresh))["errcode"] == 40056


async def test_a_text_past_2048_bytes_is_cut_without_an_error_and_counted(
    standin: WeComStandIn, http: aiohttp.ClientSession
) -> None:
    """A text over 2048 bytes is answered errcode 0 and delivered cut at 2048 bytes (whole
    characters), recorded as cut; one that fits arrives whole."""
    zhangsan = standin.staff("zhangsan")
    token = await token_for(http, standin, standin.app_secret)
    fits = "字" * 682 + "ab"  # 2048 bytes
    too_long = "字" * 683 + "尾巴"  # 2055 bytes
    for content in (fits, too_long):
        answer = await send(http, standin, text(standin, "zhangsan", content), token)
        assert answer["errcode"] == 0 and answer["msgid"], answer
    whole, cut = zhangsan.received()
    assert (whole.text, whole.cut) == (fits, False)
    assert cut.cut and cut.text == "字" * 682 and len(cut.text.encode()) <= 2048
    assert standin.app_cut == [cut]


@pytest.mark.parametrize(
    ("change", "errcode"),
    [
        pytest.param(lambda c: None, 0, id="a good card"),
        pytest.param(
            lambda c: c["button_list"].extend(dict(b) for b in c["button_list"][:1]),
            42018,
            id="a key twice",
        ),
        pytest.param(lambda c: c.update(task_id="T 123"), 42014, id="a space in the task_id"),
        pytest.param(lambda c: c.update(task_id="T#123"), 42014, id="a # in the task_id"),
        pytest.param(lambda c: c.update(task_id="T" * 129), 42014, id="task_id over 128"),
        pytest.param(lambda c: c.pop("task_id"), 42014, id="no task_id"),
        pytest.param(
            lambda c: c["button_list"][0].update(key="k" * 1025), 42018, id="a key over 1024"
        ),
        pytest.param(lambda c: c.pop("main_title"), 40058, id="no main_title"),
        pytest.param(lambda c: c["button_list"][0].pop("key"), 42019, id="a button with no key"),
    ],
)
async def test_a_card_is_checked_as_wecom_does(
    standin: WeComStandIn, http: aiohttp.ClientSession, change: Any, errcode: int
) -> None:
    """A button card needs a task_id of [0-9A-Za-z_-@] within 128 bytes, a main title and keys
    of at most 1024 bytes unique within the card, or it is refused and nobody gets it."""
    standin.staff("zhangsan")
    token = await token_for(http, standin, standin.app_secret)
    body = card(standin, "zhangsan", "T-000123_claim@desk")
    change(body["template_card"])
    answer = await send(http, standin, body, token)
    assert answer["errcode"] == errcode, answer
    assert len(standin.app_sent) == (1 if errcode == 0 else 0)
    if errcode == 0:
        assert answer["response_code"]


async def test_seven_buttons_and_a_task_id_used_before_are_refused(
    standin: WeComStandIn, http: aiohttp.ClientSession
) -> None:
    """Six buttons are taken, seven are 40058, and a task_id the app has used before is 42014
    even for another member."""
    standin.staff("zhangsan")
    standin.staff("lisi", "李四")
    token = await token_for(http, standin, standin.app_secret)
    six = await send(http, standin, card(standin, "zhangsan", "T1", 6), token)
    assert six["errcode"] == 0
    assert standin.member_card("zhangsan", "T1").buttons() == [
        "认领",
        "回复",
        "升级",
        "转交",
        "关闭",
        "备注",
    ]
    seven = await send(http, standin, card(standin, "zhangsan", "T2", 7), token)
    assert seven["errcode"] == 40058
    again = await send(http, standin, card(standin, "lisi", "T1"), token)
    assert again["errcode"] == 42014
    assert [m.task_id for m in standin.app_sent] == ["T1"]


async def test_the_31st_message_in_a_minute_is_dropped_silently_and_counted(
    standin: WeComStandIn, http: aiohttp.ClientSession
) -> None:
    """Thirty messages a minute reach a member; the 31st is answered errcode 0 but never
    delivered and is counted, other members are not affected, and a minute later it flows."""
    zhangsan = standin.staff("zhangsan")
    lisi = standin.staff("lisi", "李四")
    token = await token_for(http, standin, standin.app_secret)
    for n in range(31):
        answer = await send(http, standin, text(standin, "zhangsan", f"{n}"), token)
        assert answer["errcode"] == 0 and answer["msgid"]
    both = await send(http, standin, text(standin, "zhangsan|lisi", "32"), token)
    assert both["errcode"] == 0
    assert [m.text for m in zhangsan.received()] == [str(n) for n in range(30)]
    assert [m.text for m in lisi.received()] == ["32"]
    assert (zhangsan.dropped, lisi.dropped) == (2, 0)
    assert standin.app_dropped == {"zhangsan": 2}
    standin.travel(61)
    later = await send(http, standin, text(standin, "zhangsan", "later"), token)
    assert later["errcode"] == 0
    assert zhangsan.received()[-1].text == "later" and zhangsan.dropped == 2


async def test_unknown_members_are_named_and_none_known_is_81013(
    standin: WeComStandIn, http: aiohttp.ClientSession
) -> None:
    """Unknown userids come back lower-cased in invaliduser while the others get the message;
    when no recipient is known the send is 81013."""
    standin.staff("ZhangSan")
    token = await token_for(http, standin, standin.app_secret)
    some = await send(http, standin, text(standin, "zhangsan|Ghost", "x"), token)
    assert (some["errcode"], some["invaliduser"]) == (0, "ghost")
    assert [m.touser for m in standin.app_sent] == ["ZhangSan"]
    none = await send(http, standin, text(standin, "ghost|nobody", "x"), token)
    assert (none["errcode"], none["invaliduser"]) == (81013, "ghost|nobody")


async def test_images_and_files_need_media_wecom_keeps(
    standin: WeComStandIn, http: aiohttp.ClientSession
) -> None:
    """An image or a file with an unknown media_id is 40007; one uploaded with the app's token
    is delivered with its media_id."""
    zhangsan = standin.staff("zhangsan")
    token = await token_for(http, standin, standin.app_secret)
    body = {"touser": "zhangsan", "msgtype": "image", "agentid": standin.agent_id}
    unknown = await send(http, standin, {**body, "image": {"media_id": "x"}}, token)
    assert unknown["errcode"] == 40007
    media_id = (await upload(http, standin, token, b"\xff\xd8\xff receipt"))["media_id"]
    photo = await call(
        http, standin, "message/send", {**body, "image": {"media_id": media_id}}, token
    )
    file = {**body, "msgtype": "file", "file": {"media_id": media_id}}
    assert photo["errcode"] == 0
    assert (await send(http, standin, file, token))["errcode"] == 0
    assert [(m.msgtype, m.media_id) for m in zhangsan.received()] == [
        ("image", media_id),
        ("file", media_id),
    ]


async def test_a_response_code_works_once_and_not_after_72_hours(
    standin: WeComStandIn, http: aiohttp.ClientSession
) -> None:
    """The send's response_code greys out every recipient's buttons once; used again it is
    60140, and a fresh one is 60140 once 72 hours have passed."""
    zhangsan = standin.staff("zhangsan")
    lisi = standin.staff("lisi", "李四")
    token = await token_for(http, standin, standin.app_secret)
    sent = await send(http, standin, card(standin, "zhangsan|lisi", "T7"), token)
    update = {
        "agentid": standin.agent_id,
        "response_code": sent["response_code"],
        "atall": 1,
        "button": {"replace_name": "张三已认领"},
    }
    assert (await call(http, standin, "message/update_template_card", update, token)) == {
        "errcode": 0,
        "errmsg": "ok",
        "invaliduser": [],
    }
    for member in (zhangsan, lisi):
        shown = member.card("T7")
        assert not shown.clickable and shown.buttons() == ["张三已认领"] * 3
        assert shown.updates == 1
    used = await call(http, standin, "message/update_template_card", update, token)
    assert used["errcode"] == 60140
    later = await send(http, standin, card(standin, "zhangsan", "T8"), token)
    standin.travel(72 * 3600 + 1)
    token = await token_for(http, standin, standin.app_secret)  # the old one lived 2 hours
    update["response_code"] = later["response_code"]
    expired = await call(http, standin, "message/update_template_card", update, token)
    assert expired["errcode"] == 60140
    assert zhangsan.card("T8").clickable


async def test_the_apps_calls_from_an_untrusted_ip_answer_60020(
    standin: WeComStandIn, http: aiohttp.ClientSession
) -> None:
    """With trusted IPs on, the app's calls answer 60020 naming the address they came from,
    while gettoken and the kf calls go on."""
    standin.staff("zhangsan")
    standin.require_token = False
    standin.trusted_ips = True
    app = await token_for(http, standin, standin.app_secret)
    kf = await token_for(http, standin, standin.secret)
    refused = await send(http, standin, text(standin, "zhangsan", "x"), app)
    assert refused["errcode"] == 60020
    assert "not allow to access from your ip" in refused["errmsg"]
    assert f"from ip: {standin.outgoing_ip}" in refused["errmsg"]
    assert (await upload(http, standin, app, b"\xff\xd8\xff photo"))["errcode"] == 60020
    sync = {"open_kfid": standin.open_kfid, "token": ""}
    assert (await call(http, standin, "kf/sync_msg", sync, kf))["errcode"] == 0
    assert standin.app_sent == []


async def test_staff_callbacks_are_signed_and_decrypt_with_the_apps_key(
    standin: WeComStandIn, desk: Desk, http: aiohttp.ClientSession
) -> None:
    """A staff text, photo and card tap reach the app's callback URL encrypted with the app's
    key and signed with its Token, in WeCom's XML; the tap's ResponseCode updates that card;
    a forged or an old callback is refused, and the URL check passes."""
    zhangsan = standin.staff("zhangsan")
    lisi = standin.staff("lisi", "李四")
    token = await token_for(http, standin, standin.app_secret)
    await send(http, standin, card(standin, "zhangsan|lisi", "T9"), token)
    said = zhangsan.say("#T-000123 已联系客户")
    photo = zhangsan.send_image(b"\xff\xd8\xff staff photo")
    tapped = zhangsan.tap("T9", "T9:0")
    await standin.wait_app_callbacks(3)
    assert [a.status for a in standin.app_callbacks] == [200, 200, 200]
    query, body = desk.posts[0]
    envelope = parse_xml(body)
    assert envelope.findtext("ToUserName") == standin.corp_id
    assert envelope.findtext("AgentID") == str(standin.agent_id)
    assert set(query) == {"msg_signature", "timestamp", "nonce"}
    plain = standin.app_crypto.decrypt(encrypted_of(body))
    assert "<Content><![CDATA[#T-000123 已联系客户]]></Content>" in plain
    text_msg, image_msg, event = desk.messages
    assert {child.tag: child.text for child in text_msg} == said
    assert said["MsgType"] == "text" and said["ToUserName"] == standin.corp_id
    assert said["MsgId"].isdigit() and said["AgentID"] == str(standin.agent_id)
    assert image_msg.findtext("MediaId") == photo["MediaId"]
    async with http.get(image_msg.findtext("PicUrl") or "") as response:
        assert await response.read() == b"\xff\xd8\xff staff photo"
    async with http.get(
        f"{standin.base_url}/cgi-bin/media/get",
        params={"access_token": token, "media_id": photo["MediaId"]},
    ) as response:
        assert await response.read() == b"\xff\xd8\xff staff photo"
    assert event.findtext("MsgType") == "event"
    assert event.findtext("Event") == "template_card_event"
    assert (event.findtext("EventKey"), event.findtext("TaskId")) == ("T9:0", "T9")
    assert event.findtext("CardType") == "button_interaction"
    assert event.findtext("ResponseCode") == tapped["ResponseCode"]
    assert event.findtext("FromUserName") == "zhangsan"
    assert standin.app_callbacks[2].msg_id is None
    new_card = card(standin, "zhangsan", "T9")["template_card"]
    new_card["main_title"] = {"title": "#T-000123 张三处理中"}
    update = {
        "agentid": standin.agent_id,
        "response_code": tapped["ResponseCode"],
        "userids": ["zhangsan"],
        "template_card": new_card,
    }
    answer = await call(http, standin, "message/update_template_card", update, token)
    assert answer["errcode"] == 0, answer
    assert zhangsan.card("T9").title == "#T-000123 张三处理中"
    assert lisi.card("T9").title == "新投诉 #T-000123"
    with pytest.raises(LookupError):
        zhangsan.tap("T9", "no-such-key")
    assert await standin.post_forged_app_callback() == 403
    assert await standin.post_old_app_callback(seconds=600) == 403
    assert (await standin.verify_app_url()) == (200, standin.last_echo)
    assert len(desk.messages) == 3


async def test_a_slow_desk_gets_the_same_message_again(standin: WeComStandIn, desk: Desk) -> None:
    """When the desk does not answer in time, WeCom posts the very same callback (the same
    MsgId) again, and the retry is counted."""
    standin.callback_timeout = 0.3
    desk.slow_first = True
    said = standin.staff("zhangsan").say("在吗")
    await standin.wait_app_callbacks(2)
    first, second = standin.app_callbacks
    assert first.status is None and first.error and first.seconds >= 0.25
    assert second.status == 200 and (second.callback, second.attempt) == (first.callback, 2)
    assert first.msg_id == second.msg_id == said["MsgId"]
    assert desk.posts[0] == desk.posts[1]
    assert standin.app_callback_retries == 1
    await standin.settle()
    assert [m.findtext("MsgId") for m in desk.messages] == [said["MsgId"]] * 2
