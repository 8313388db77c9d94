"""Opening the manager's dashboard from the WeCom app, on a desk with no Telegram at all: the
manager's /dashboard brings a card whose link goes through WeCom's web sign-in; followed on the
member's phone it comes back with a code, which the page posts to get a session. The code names
whoever followed the link: a member who is not a manager, someone outside the corp, a code used
twice or too late are refused."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import aiohttp

from bot.standin.wecom import AppMessage, Staff, WeComStandIn
from tests.e2e.test_wecom_staff import complaint_filed, start_all_wecom, told


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def card_for(wecom: WeComStandIn, member: Staff, after: int) -> AppMessage:
    return await wecom.wait_app_sent(
        lambda m: m.touser == member.userid and m.msgtype == "textcard", timeout=20, after=after
    )


async def code_from(http: aiohttp.ClientSession, link: str, page: str) -> str:
    """Follow the card's link on the phone: WeCom redirects to the page with a code."""
    async with http.get(link, allow_redirects=False) as answer:
        assert answer.status == 302, await answer.text()
        location = answer.headers["Location"]
    assert location.startswith(f"{page}?via=wecom&code=") and location.endswith("&state=dashboard")
    query = parse_qs(urlsplit(location).query)
    assert query["via"] == ["wecom"] and query["state"] == ["dashboard"]
    return query["code"][0]


async def session(
    http: aiohttp.ClientSession, base: str, code: str, via: str = "wecom"
) -> tuple[int, Any]:
    async with http.post(f"{base}/dashboard/api/session?via={via}", data=code.encode()) as answer:
        return answer.status, await answer.json()


async def test_a_wecom_manager_signs_in_through_the_card_and_no_one_else_does(
    wecom: WeComStandIn, start_bot: Any
) -> None:
    """The manager's /dashboard brings a text card linking to WeCom's sign-in for
    PUBLIC_URL/dashboard?via=wecom; followed as the manager, its code gets a session (in the
    staff's language) and the backlog lists the ticket. The same code again, a code older than
    five minutes, a staff member's and an outsider's are refused with the reason; a staff
    member's /dashboard is answered that it is the managers'."""
    zhang, boss = wecom.staff("zhangsan", "张三"), wecom.staff("boss", "陈店长")
    wecom.staff("lisi", "李四")
    port = free_port()
    public = f"http://127.0.0.1:{port}"
    page = f"{public}/dashboard"
    await start_all_wecom(start_bot, wecom, http_port=str(port), public_url=public)
    await complaint_filed(wecom)

    mark = len(wecom.app_sent)
    boss.say("/dashboard")
    card = await card_for(wecom, boss, mark)
    assert card.title == "📊 打开投诉看板" and "投诉看板" in card.text
    assert card.link_button == "打开看板"  # the card's link, as the manager sees it
    assert card.link == (
        f"{wecom.base_url}/connect/oauth2/authorize?appid={wecom.corp_id}"
        f"&redirect_uri={quote(page + '?via=wecom', safe='')}&response_type=code"
        f"&scope=snsapi_base&state=dashboard&agentid={wecom.agent_id}#wechat_redirect"
    )
    mark = len(wecom.app_sent)
    zhang.say("/dashboard")
    await told(wecom, zhang, "只有店长可以用", mark)
    assert not [m for m in zhang.received() if m.msgtype == "textcard"]

    async with aiohttp.ClientSession() as http:
        wecom.sign_in_as("boss")
        code = await code_from(http, card.link, page)
        status, opened = await session(http, public, code)
        assert status == 200 and opened["language"] == "zh"
        headers = {"Authorization": f"Bearer {opened['token']}"}
        async with http.get(f"{public}/dashboard/api/backlog", headers=headers) as answer:
            assert answer.status == 200
            backlog = await answer.json()
        assert [t["reference"] for t in backlog["tickets"]] == ["T-000001"]

        status, refused = await session(http, public, code)  # a code works once
        assert status == 403 and refused["error"] == "bad_code"
        assert "已失效" in refused["message"]

        late = await code_from(http, card.link, page)
        wecom.travel(301)  # past WeCom's five minutes
        status, refused = await session(http, public, late)
        assert status == 403 and refused["error"] == "bad_code"

        wecom.sign_in_as("zhangsan")  # the link passed on to a member who is no manager
        status, refused = await session(http, public, await code_from(http, card.link, page))
        assert status == 403 and refused["error"] == "not_manager"
        assert "仅供店长使用" in refused["message"]

        wecom.sign_in_outsider()  # ...or to someone outside the corp
        status, refused = await session(http, public, await code_from(http, card.link, page))
        assert status == 403 and refused["error"] == "not_manager"

        wecom.sign_in_as("boss")  # a desk with no Telegram has no Mini App sign-in
        status, refused = await session(
            http, public, await code_from(http, card.link, page), via="telegram"
        )
        assert status == 403 and refused["error"] == "bad_via"

        code = await code_from(http, card.link, page)
        wecom.inject_http("auth/getuserinfo", 502, count=10)  # WeCom down for a while
        status, busy = await session(http, public, code)
        assert status == 503 and busy["error"] == "unavailable"
        assert "稍后再打开" in busy["message"]
        wecom.inject("auth/getuserinfo", -1, "system busy")  # then busy once
        status, busy = await session(http, public, code)
        assert status == 503 and busy["error"] == "unavailable"
        wecom.faults.clear()
        status, opened = await session(http, public, code)  # the code was not spent meanwhile
        assert status == 200 and opened["token"]


async def test_without_public_url_the_wecom_manager_is_told_what_it_needs(
    wecom: WeComStandIn, start_bot: Any
) -> None:
    """With no PUBLIC_URL the manager's /dashboard in the app says the dashboard needs it, and
    no card is sent."""
    boss = wecom.staff("boss", "陈店长")
    wecom.staff("zhangsan")
    bot = await start_all_wecom(start_bot, wecom)
    mark = len(wecom.app_sent)
    boss.say("/dashboard")
    said = await told(wecom, boss, "PUBLIC_URL", mark)
    assert "需要先设置" in said.text
    await bot.settled()
    assert not [m for m in boss.received() if m.msgtype == "textcard"]


async def test_the_desk_serves_wecoms_domain_proof_at_its_root(
    wecom: WeComStandIn, start_bot: Any, tmp_path: Path
) -> None:
    """WECOM_VERIFY_FILE, the WW_verify_….txt WeCom gave for the app's trusted domain, is
    served at the server's root as it was downloaded, for WeCom's check; no other name is."""
    proof = tmp_path / "WW_verify_Qm3vX9aZ0pLk2JdE.txt"
    proof.write_bytes(b"Qm3vX9aZ0pLk2JdE")
    bot = await start_all_wecom(start_bot, wecom, wecom_verify_file=str(proof))
    base = f"http://127.0.0.1:{bot.app.callback_port()}"
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{base}/WW_verify_Qm3vX9aZ0pLk2JdE.txt") as answer:
            assert answer.status == 200 and answer.content_type == "text/plain"
            assert await answer.read() == b"Qm3vX9aZ0pLk2JdE"
        async with http.get(f"{base}/WW_verify_other.txt") as answer:
            assert answer.status == 404
