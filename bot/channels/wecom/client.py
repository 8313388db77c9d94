"""A thin client for WeCom's customer-service (kf) API, as WeCom documents it: the access token
(kept until it expires, fetched again on 40014/42001), kf/sync_msg, kf/send_msg,
kf/send_msg_on_event, media/upload and media/get. wechatpy has had no release since 2021 and has
no kf support, so the few calls are written here on aiohttp."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass
from typing import Any

import aiohttp

from bot.channels.base import Passing
from bot.http_failure import http_failure
from bot.metrics import Metrics

logger = logging.getLogger(__name__)

EXPIRED_TOKEN_CODES = (40014, 42001)  # invalid or expired access_token: fetch a new one


class WeComError(Exception):
    """WeCom answered with an errcode other than 0."""

    def __init__(self, errcode: int, errmsg: str) -> None:
        super().__init__(f"{errcode} {errmsg}")
        self.errcode = errcode
        self.errmsg = errmsg


class WeComUnavailable(Passing):
    """A call that failed in transit, or whose answer was not WeCom's JSON (a passing fault).
    It names the call and the status or kind of error, never the URL: its query holds the
    access token, or the app's secret."""

    def __init__(self, path: str, failure: str) -> None:
        super().__init__(f"WeCom {path}: {failure}")
        self.path = path
        self.failure = failure


@dataclass
class _Answer:
    """What came back over HTTP, read in full."""

    status: int
    content_type: str
    body: bytes

    def json(self, path: str) -> dict[str, Any]:
        try:
            data = json.loads(self.body or b"{}")
        except ValueError:
            raise WeComUnavailable(path, f"HTTP {self.status}, not JSON") from None
        if not isinstance(data, dict):
            raise WeComUnavailable(path, f"HTTP {self.status}, not a JSON object")
        return data


class KfClient:
    def __init__(
        self,
        base_url: str,
        corp_id: str,
        secret: str,
        metrics: Metrics | None = None,
        messenger: str = "wecom",
    ) -> None:
        """`metrics`: where WeCom's error answers are counted, under `messenger` (the customer
        service's "wecom", the staff app's "wecom_app")."""
        self.metrics = metrics or Metrics()
        self.messenger = messenger
        self.base_url = base_url.rstrip("/")
        self.corp_id = corp_id
        self.secret = secret
        self._session: aiohttp.ClientSession | None = None
        self._token: str | None = None
        self._token_until = 0.0
        self._token_lock = asyncio.Lock()

    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def _request(
        self, method: str, path: str, query: dict[str, str], **kwargs: Any
    ) -> _Answer:
        """One HTTP call to `{base}/cgi-bin/{path}`; a failure in transit raises
        WeComUnavailable, which does not repeat the URL (nor aiohttp's text, which does)."""
        url = f"{self.base_url}/cgi-bin/{path}"
        try:
            async with self.session().request(method, url, params=query, **kwargs) as response:
                answer = _Answer(response.status, response.content_type, await response.read())
        except (aiohttp.ClientError, TimeoutError) as exc:
            timeout = isinstance(exc, TimeoutError)
            self.metrics.messenger_error(self.messenger, "timeout" if timeout else "network")
            raise WeComUnavailable(path, http_failure(exc)) from None
        if answer.status >= 400:
            self.metrics.messenger_error(self.messenger, answer.status)
        return answer

    def _json(self, answer: _Answer, path: str) -> dict[str, Any]:
        """WeCom's JSON answer; an errcode other than 0 is counted (the caller acts on it)."""
        data = answer.json(path)
        code = data.get("errcode")
        if code not in (None, 0, "0") and answer.status < 400:  # a 4xx/5xx: counted already
            self.metrics.messenger_error(self.messenger, code)
        return data

    async def token(self, fresh: bool = False) -> str:
        """The access token (7200 s), fetched once and kept until a few minutes before it
        expires, or fetched again when WeCom says it is no longer valid."""
        async with self._token_lock:
            if fresh or self._token is None or time.monotonic() >= self._token_until:
                answer = await self._request(
                    "GET", "gettoken", {"corpid": self.corp_id, "corpsecret": self.secret}
                )
                data = self._json(answer, "gettoken")
                _check(data)
                self._token = str(data["access_token"])
                self._token_until = time.monotonic() + int(data.get("expires_in", 7200)) - 300
            return self._token

    async def call(
        self, path: str, body: dict[str, Any] | None = None, params: dict[str, str] | None = None
    ) -> dict[str, Any]:
        """POST a JSON body (GET without one); a token WeCom no longer takes is renewed once."""
        for attempt in (1, 2):
            token = await self.token(fresh=attempt == 2)
            query = {"access_token": token, **(params or {})}
            if body is None:
                answer = await self._request("GET", path, query)
            else:
                answer = await self._request("POST", path, query, json=body)
            data = self._json(answer, path)
            if data.get("errcode") in EXPIRED_TOKEN_CODES and attempt == 1:
                logger.info("WeCom access token renewed (%s)", data.get("errcode"))
                continue
            _check(data)
            return dict(data)
        raise AssertionError("unreachable")  # pragma: no cover

    async def sync_msg(self, cursor: str | None, token: str, open_kfid: str) -> dict[str, Any]:
        body: dict[str, Any] = {"token": token, "open_kfid": open_kfid, "limit": 1000}
        if cursor:
            body["cursor"] = cursor
        return await self.call("kf/sync_msg", body)

    async def customer_names(self, external_userids: list[str]) -> dict[str, str]:
        """Customers' WeChat nicknames (kf/customer/batchget, up to 100 at a time)."""
        data = await self.call(
            "kf/customer/batchget", {"external_userid_list": external_userids[:100]}
        )
        return {
            str(c.get("external_userid")): str(c.get("nickname") or "")
            for c in data.get("customer_list") or []
            if c.get("nickname")
        }

    async def send_msg(self, body: dict[str, Any]) -> str:
        return str((await self.call("kf/send_msg", body)).get("msgid", ""))

    async def send_msg_on_event(self, body: dict[str, Any]) -> str:
        return str((await self.call("kf/send_msg_on_event", body)).get("msgid", ""))

    async def upload_media(self, kind: str, data: bytes, filename: str) -> str:
        """Upload a file (image, voice, video, file) for 3 days; returns its media_id."""
        for attempt in (1, 2):
            token = await self.token(fresh=attempt == 2)
            form = aiohttp.FormData()
            form.add_field("media", data, filename=filename)
            answer = self._json(
                await self._request(
                    "POST", "media/upload", {"access_token": token, "type": kind}, data=form
                ),
                "media/upload",
            )
            if answer.get("errcode") in EXPIRED_TOKEN_CODES and attempt == 1:
                continue
            _check(answer)
            return str(answer["media_id"])
        raise AssertionError("unreachable")  # pragma: no cover

    async def get_media(self, media_id: str) -> bytes:
        """A file a customer sent (WeCom keeps it 3 days)."""
        for attempt in (1, 2):
            token = await self.token(fresh=attempt == 2)
            answer = await self._request(
                "GET", "media/get", {"access_token": token, "media_id": media_id}
            )
            if answer.content_type in ("application/json", "text/plain"):
                data = self._json(answer, "media/get")
                if data.get("errcode") in EXPIRED_TOKEN_CODES and attempt == 1:
                    continue
                _check(data)
            elif answer.status >= 400:  # a proxy's error page is not the customer's file
                raise WeComUnavailable("media/get", f"HTTP {answer.status}")
            return answer.body
        raise AssertionError("unreachable")  # pragma: no cover


def _check(data: dict[str, Any]) -> None:
    code = int(data.get("errcode", 0) or 0)
    if code != 0:
        raise WeComError(code, str(data.get("errmsg", "")))
