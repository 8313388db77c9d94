"""The app client speaks the self-built app's API as the stand-in keeps it: sends, card updates,
media, a token renewed when WeCom no longer takes it, and 60020 said with the address to trust."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest

from bot.channels.wecom.app_client import AppClient, SendResult, WeComIpNotTrusted
from bot.channels.wecom.client import WeComError
from bot.standin.wecom import Staff, WeComStandIn


@pytest.fixture
def standin(wecom: WeComStandIn) -> WeComStandIn:
    return wecom


@pytest.fixture
async def client(standin: WeComStandIn) -> AsyncIterator[AppClient]:
    app = AppClient(standin.base_url, standin.corp_id, standin.agent_id, standin.app_secret)
    yield app
    await app.close()


@pytest.fixture
def zhangsan(standin: WeComStandIn) -> Staff:
    return standin.staff("zhangsan", "张三")


def claim_card(task_id: str) -> dict[str, Any]:
    return {
        "msgtype": "template_card",
        "template_card": {
            "card_type": "button_interaction",
            "main_title": {"title": "新投诉 #T-000123"},
            "task_id": task_id,
            "button_list": [
                {"text": "认领", "style": 1, "key": f"claim:{task_id}"},
                {"text": "升级", "style": 2, "key": f"escalate:{task_id}"},
            ],
        },
    }


async def test_a_text_reaches_the_member_and_unknown_ones_are_named(
    standin: WeComStandIn, client: AppClient, zhangsan: Staff
) -> None:
    """send() delivers a text to the known member and names the unknown one."""
    result = await client.send(
        ["zhangsan", "Ghost"], {"msgtype": "text", "text": {"content": "早"}}
    )
    assert result == SendResult(result.msgid, None, ["ghost"]) and result.msgid
    sent = await standin.wait_app_sent(lambda m: m.touser == "zhangsan")
    assert (sent.msgtype, sent.text, sent.msgid) == ("text", "早", result.msgid)
    assert sent.body["agentid"] == standin.agent_id


async def test_a_card_is_sent_and_greyed_out_with_its_response_code(
    standin: WeComStandIn, client: AppClient, zhangsan: Staff
) -> None:
    """A button card's send gives a response_code that greys out everyone's buttons once, and a
    member's tap gives a code that replaces that member's card."""
    lisi = standin.staff("lisi", "李四")
    result = await client.send(["zhangsan", "lisi"], claim_card("T-000123"))
    assert result.response_code
    await standin.wait_app_sent(lambda m: m.touser == "lisi")
    tapped = zhangsan.tap("T-000123", "claim:T-000123")
    new_card = claim_card("T-000123")["template_card"]
    new_card["main_title"] = {"title": "#T-000123 张三处理中"}
    assert await client.update_card(tapped["ResponseCode"], ["zhangsan"], card=new_card) == []
    assert zhangsan.card("T-000123").title == "#T-000123 张三处理中"
    assert await client.update_card(result.response_code, atall=True, replace_name="已认领") == []
    assert lisi.card("T-000123").buttons() == ["已认领", "已认领"]
    assert not zhangsan.card("T-000123").clickable
    with pytest.raises(WeComError) as used:
        await client.update_card(result.response_code, atall=True, replace_name="再来")
    assert used.value.errcode == 60140


async def test_an_image_is_uploaded_sent_and_a_staff_photo_fetched(
    standin: WeComStandIn, client: AppClient, zhangsan: Staff
) -> None:
    """upload_media() gives a media_id that sends as an image, and get_media() returns a photo a
    member sent."""
    media_id = await client.upload_media("image", b"\xff\xd8\xff receipt", "receipt.jpg")
    result = await client.send(["zhangsan"], {"msgtype": "image", "image": {"media_id": media_id}})
    assert result.invalid_users == []
    sent = await standin.wait_app_sent(lambda m: m.msgtype == "image")
    assert sent.media_id == media_id
    photo = zhangsan.send_image(b"\xff\xd8\xff broken vase")
    assert await client.get_media(photo["MediaId"]) == b"\xff\xd8\xff broken vase"
    with pytest.raises(WeComError) as unknown:
        await client.get_media("nothing")
    assert unknown.value.errcode == 40007


async def test_an_expired_token_is_fetched_again(
    standin: WeComStandIn, client: AppClient, zhangsan: Staff
) -> None:
    """When WeCom says the token expired (42001) the client fetches a new one and the send goes
    through once."""
    await client.send(["zhangsan"], {"msgtype": "text", "text": {"content": "一"}})
    standin.travel(7201)
    await client.send(["zhangsan"], {"msgtype": "text", "text": {"content": "二"}})
    assert standin.app_token_fetches == 2
    assert [m.text for m in zhangsan.received()] == ["一", "二"]
    assert sum(1 for path, _ in standin.calls if path == "message/send") == 3


async def test_an_untrusted_ip_is_named_and_no_secret_is_logged(
    standin: WeComStandIn,
    client: AppClient,
    zhangsan: Staff,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """60020 is raised as WeComIpNotTrusted whose message names the address to trust, and
    neither the secret nor the access token is in it or in the log."""
    caplog.set_level(logging.DEBUG)
    standin.trusted_ips = True
    with pytest.raises(WeComIpNotTrusted) as refused:
        await client.send(["zhangsan"], {"msgtype": "text", "text": {"content": "x"}})
    assert refused.value.errcode == 60020 and refused.value.ip == standin.outgoing_ip
    assert f"add {standin.outgoing_ip} to the app's 企业可信IP" in str(refused.value)
    with pytest.raises(WeComIpNotTrusted):
        await client.upload_media("image", b"\xff\xd8\xff photo", "photo.jpg")
    tokens = list(standin._app_tokens)  # every token WeCom gave: this one and the next
    standin.expire_token("app")
    with pytest.raises(WeComIpNotTrusted):
        await client.update_card("code", atall=True, replace_name="x")
    said = "\n".join([r.getMessage() for r in caplog.records] + [str(refused.value)])
    tokens += list(standin._app_tokens)
    assert len(tokens) == 2 and standin.app_token_fetches == 2
    assert standin.app_secret not in said and not any(token in said for token in tokens)
    assert zhangsan.received() == []
