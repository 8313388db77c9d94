"""A thin client for the shop's self-built WeCom app (自建应用), where staff and managers work:
message/send (90236) to members, message/update_template_card (94888), media/upload and
media/get, and auth/getuserinfo (91023: who signed in to one of the app's links). The access
token, its renewal on 40014/42001, the HTTP calls and their errors are the customer-service
client's: only the secret differs, so a KfClient built with the app's secret does that part
(its kf/* calls are never used here).

WeCom answers the app's calls from an address that is not among the app's trusted IPs
(企业可信IP) with 60020; that is raised as WeComIpNotTrusted, whose message names the address
WeCom saw, so the one log line that reports it says what to add."""

from __future__ import annotations

import re
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from bot.channels.wecom.client import KfClient, WeComError
from bot.metrics import Metrics

T = TypeVar("T")

IP_NOT_TRUSTED = 60020
FROM_IP = re.compile(r"from ip:\s*([0-9A-Fa-f.:]+[0-9A-Fa-f])")


class WeComIpNotTrusted(WeComError):
    """WeCom refused the app's call: this server's address is not among the app's trusted IPs
    (60020). `ip` is the address WeCom saw, when its errmsg says it."""

    def __init__(self, errcode: int, errmsg: str) -> None:
        super().__init__(errcode, errmsg)
        found = FROM_IP.search(errmsg)
        self.ip = found.group(1) if found else None
        where = self.ip or "this server's outgoing address (WeCom did not say which)"
        self.args = (
            f"{errcode} WeCom takes the app's calls only from its trusted IPs: add {where} to "
            "the app's 企业可信IP (WeCom admin console, 应用管理, the app, 企业可信IP)",
        )


@dataclass(frozen=True)
class SendResult:
    """message/send's answer: the msgid, a button card's response_code (None for other
    messages) and the recipients WeCom could not reach (lower-cased, as WeCom gives them)."""

    msgid: str
    response_code: str | None = None
    invalid_users: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class SignedIn:
    """Whom WeCom's web sign-in vouched for: a member of the corp (`userid`), or someone
    outside it (`openid` only)."""

    userid: str | None
    openid: str | None = None


class AppClient:
    def __init__(
        self,
        api_url: str,
        corp_id: str,
        agent_id: int,
        app_secret: str,
        metrics: Metrics | None = None,
    ) -> None:
        self.agent_id = agent_id
        self._api = KfClient(api_url, corp_id, app_secret, metrics, messenger="wecom_app")
        self._names: dict[str, str] = {}  # userid -> name, as user/get gave it

    async def close(self) -> None:
        await self._api.close()

    async def send(self, touser: list[str], body: dict[str, Any]) -> SendResult:
        """Send one message (`body`: its msgtype and that type's object, e.g.
        {"msgtype": "text", "text": {"content": ...}}) to members by userid. WeCom answers
        errcode 0 for messages it then drops (over 30 a minute or 1000 an hour per member) and
        cuts text past 2048 bytes: keep within both."""
        data = await self._call(
            self._api.call(
                "message/send", {**body, "touser": "|".join(touser), "agentid": self.agent_id}
            )
        )
        return SendResult(
            msgid=str(data.get("msgid") or ""),
            response_code=str(data["response_code"]) if data.get("response_code") else None,
            invalid_users=_userids(data.get("invaliduser")),
        )

    async def update_card(
        self,
        response_code: str,
        userids: list[str] | None = None,
        *,
        atall: bool = False,
        replace_name: str | None = None,
        card: dict[str, Any] | None = None,
    ) -> list[str]:
        """Update a button card with a response_code (message/send's, or a tap's; once, within
        72 hours): grey its buttons out showing `replace_name`, or put the whole new `card`,
        for `userids` or for everyone it was sent to (`atall`). The userids WeCom could not
        update."""
        if (replace_name is None) == (card is None):
            raise ValueError("either replace_name or card")
        if not atall and not userids:
            raise ValueError("userids, or atall")
        body: dict[str, Any] = {"agentid": self.agent_id, "response_code": response_code}
        if atall:
            body["atall"] = 1
        else:
            body["userids"] = list(userids or [])
        if card is not None:
            body["template_card"] = card
        else:
            body["button"] = {"replace_name": replace_name}
        data = await self._call(self._api.call("message/update_template_card", body))
        return _userids(data.get("invaliduser"))

    async def user_name(self, userid: str) -> str | None:
        """A member's name (user/get, 90196), asked once and kept; None when WeCom does not
        say (the caller falls back to the userid, and asks again next time)."""
        if userid in self._names:
            return self._names[userid]
        data = await self._call(self._api.call("user/get", params={"userid": userid}))
        name = str(data.get("name") or "").strip()
        if not name:
            return None
        self._names[userid] = name
        return name

    async def signed_in(self, code: str) -> SignedIn:
        """Who opened a link of the app's through WeCom's web sign-in (connect/oauth2), from
        the `code` it put in the link (auth/getuserinfo, 91023): a member's userid, or a
        non-member's openid. A code works once, within 5 minutes; an unknown, used or expired
        one is WeComError 40029."""
        data = await self._call(self._api.call("auth/getuserinfo", params={"code": code}))
        return SignedIn(
            str(data.get("userid") or "") or None, str(data.get("openid") or "") or None
        )

    def known_name(self, userid: str) -> str | None:
        """A member's name if it was learnt already (no call to WeCom)."""
        return self._names.get(userid)

    async def upload_media(self, kind: str, data: bytes, name: str) -> str:
        """Upload a file ("image", "voice", "video", "file") for 3 days; its media_id."""
        return await self._call(self._api.upload_media(kind, data, name))

    async def get_media(self, media_id: str) -> bytes:
        """A file WeCom keeps (a photo a member sent: 3 days)."""
        return await self._call(self._api.get_media(media_id))

    async def _call(self, call: Awaitable[T]) -> T:
        try:
            return await call
        except WeComError as exc:
            if exc.errcode == IP_NOT_TRUSTED:
                raise WeComIpNotTrusted(exc.errcode, exc.errmsg) from None
            raise


def _userids(value: object) -> list[str]:
    """message/send gives "a|b", update_template_card a list."""
    if isinstance(value, list):
        return [str(u) for u in value if u]
    return [u for u in str(value or "").split("|") if u]
