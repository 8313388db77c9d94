"""The WeCom stand-in plays WeCom's web sign-in for the app's links as WeCom documents it:
connect/oauth2/authorize checks its parameters and redirects, as the member's phone, with a
code; auth/getuserinfo (with the app's token) names the member once, within five minutes. And
message/send takes a textcard."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import aiohttp
import pytest

from bot.standin.wecom import WeComStandIn
from tests.unit.test_wecom_app_standin import send, token_for

PAGE = "http://127.0.0.1:8080/dashboard?via=wecom"


@pytest.fixture
def standin(wecom: WeComStandIn) -> WeComStandIn:
    wecom.staff("boss", "陈店长")
    return wecom


def authorize_url(standin: WeComStandIn, **changes: str | None) -> str:
    params: dict[str, str | None] = {
        "appid": standin.corp_id,
        "redirect_uri": PAGE,
        "response_type": "code",
        "scope": "snsapi_base",
        "state": "dashboard",
        "agentid": str(standin.agent_id),
        **changes,
    }
    query = urlencode({k: v for k, v in params.items() if v is not None})
    return f"{standin.base_url}/connect/oauth2/authorize?{query}#wechat_redirect"


async def follow(http: aiohttp.ClientSession, url: str) -> tuple[int, str]:
    """The phone opens the link: the status, and where it is sent (or the page's text)."""
    async with http.get(url, allow_redirects=False) as answer:
        return answer.status, answer.headers.get("Location") or await answer.text()


async def who(http: aiohttp.ClientSession, standin: WeComStandIn, code: str, token: str) -> Any:
    async with http.get(
        f"{standin.base_url}/cgi-bin/auth/getuserinfo",
        params={"access_token": token, "code": code},
    ) as answer:
        return await answer.json()


async def test_authorize_redirects_with_a_code_that_names_the_member_once(
    standin: WeComStandIn, http: aiohttp.ClientSession
) -> None:
    """Signed in as a member, the link redirects to redirect_uri with code and state added to
    its query; the app's token learns the userid from the code, once; an outsider's code gives
    an openid."""
    standin.sign_in_as("boss")
    status, location = await follow(http, authorize_url(standin))
    assert status == 302 and location.startswith(PAGE + "&code=")
    query = parse_qs(urlsplit(location).query)
    assert query["via"] == ["wecom"] and query["state"] == ["dashboard"]
    code = query["code"][0]
    app_token = await token_for(http, standin, standin.app_secret)
    kf_token = await token_for(http, standin, standin.secret)
    assert (await who(http, standin, code, kf_token))["errcode"] == 40014  # the app's call
    assert await who(http, standin, code, app_token) == {
        "errcode": 0,
        "errmsg": "ok",
        "userid": "boss",
    }
    assert (await who(http, standin, code, app_token))["errcode"] == 40029  # used

    standin.sign_in_outsider("oOUTSIDER")
    _, location = await follow(http, authorize_url(standin))
    answer = await who(http, standin, parse_qs(urlsplit(location).query)["code"][0], app_token)
    assert answer["errcode"] == 0 and answer["openid"] == "oOUTSIDER" and "userid" not in answer
    assert (await who(http, standin, "made-up", app_token))["errcode"] == 40029


async def test_a_code_expires_after_five_minutes(
    standin: WeComStandIn, http: aiohttp.ClientSession
) -> None:
    """A code unused for five minutes is 40029, as WeCom says."""
    standin.sign_in_as("boss")
    _, location = await follow(http, authorize_url(standin))
    code = parse_qs(urlsplit(location).query)["code"][0]
    app_token = await token_for(http, standin, standin.app_secret)
    standin.travel(301)
    assert (await who(http, standin, code, app_token))["errcode"] == 40029


@pytest.mark.parametrize(
    ("changes", "errcode"),
    [
        ({"appid": "wwsomeoneelse"}, "40013"),
        ({"response_type": "token"}, "40058"),
        ({"scope": "snsapi_userinfo"}, "40058"),
        ({"agentid": "1000999"}, "40056"),
        ({"scope": "snsapi_privateinfo", "agentid": None}, "41011"),
        ({"state": "dash-board!"}, "40058"),
        ({"redirect_uri": "https://elsewhere.example.com/dashboard"}, "50001"),
        ({"redirect_uri": "dashboard"}, "40058"),
    ],
)
async def test_a_link_wecom_would_refuse_gets_its_error_page(
    standin: WeComStandIn, http: aiohttp.ClientSession, changes: dict[str, str], errcode: str
) -> None:
    """A wrong corp id, response_type, scope, agentid or state, or a redirect outside the app's
    trusted domain: WeCom's error page, no redirect, no code."""
    standin.sign_in_as("boss")
    status, page = await follow(http, authorize_url(standin, **changes))
    assert status == 400 and errcode in page
    assert standin.oauth_codes == {}


async def test_outside_wecom_the_link_asks_to_be_opened_in_wecom(
    standin: WeComStandIn, http: aiohttp.ClientSession
) -> None:
    """With nobody signed in (a browser outside the WeCom app) there is no code."""
    status, page = await follow(http, authorize_url(standin))
    assert status == 403 and "请在企业微信客户端打开链接" in page
    assert standin.oauth_codes == {}


async def test_a_textcard_is_delivered_with_its_link(
    standin: WeComStandIn, http: aiohttp.ClientSession
) -> None:
    """message/send takes a textcard with title, description and an http(s) url (the
    description cut past 512 bytes, its button's text past 4 characters); one without a url is
    refused."""
    token = await token_for(http, standin, standin.app_secret)
    body = {
        "touser": "boss",
        "msgtype": "textcard",
        "agentid": standin.agent_id,
        "textcard": {"title": "📊 打开投诉看板", "description": "热" * 200, "url": PAGE},
    }
    assert (await send(http, standin, body, token))["errcode"] == 0
    [card] = standin.app_received("boss")
    assert card.title == "📊 打开投诉看板" and card.link == PAGE
    assert card.text == "热" * 170  # 512 bytes hold 170 of these three-byte characters
    assert card.link_button == "详情"  # no btntxt: WeCom's own word
    body["textcard"] = {**body["textcard"], "btntxt": "打开投诉看板"}
    assert (await send(http, standin, body, token))["errcode"] == 0
    assert standin.app_received("boss")[-1].link_button == "打开投诉"  # cut past 4 characters
    body["textcard"] = {"title": "📊", "description": "x", "url": "dashboard"}
    assert (await send(http, standin, body, token))["errcode"] == 40058
