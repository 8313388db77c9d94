"""The dashboard's sign-in from WeCom: who opened the page, from the `code` WeCom's web sign-in
(connect/oauth2/authorize, 91022) put in the page's link.

The app's card links to the page through WeCom's sign-in, which sends the member's browser on to
`PUBLIC_URL/dashboard?via=wecom&code=…&state=dashboard`; the page posts the code, and the desk
asks WeCom whom it names (auth/getuserinfo, 91023, with the app's access token). A code works
once, within 5 minutes: nothing in the link itself is trusted, and a link passed on is
worthless. A member in WECOM_MANAGER_IDS gets in; anyone else is refused."""

from __future__ import annotations

import logging
import re
import time
from collections import deque
from collections.abc import Callable

from bot.channels.wecom.app_client import AppClient, WeComIpNotTrusted
from bot.channels.wecom.client import WeComError, WeComUnavailable
from bot.dashboard import Refused, SignInUnavailable, Visitor

logger = logging.getLogger(__name__)

CODE = re.compile(r"[A-Za-z0-9_-]{1,512}")  # WeCom's codes: a few dozen of these characters
PASSING = {-1, 45009, 45033}  # WeCom busy, or its limits: the code is still good
# codes asked about within a minute, at most: a shop's managers open the page a few times a
# minute at the busiest; anyone can post a code, and each one asked spends the app's calls
# to auth/getuserinfo (WeCom counts them per company), which the real sign-ins need
ASKED_PER_MINUTE = 60


class WeComSignIn:
    def __init__(
        self,
        client: AppClient,
        is_manager: Callable[[str], bool],
        language: str,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """`is_manager`: whether a userid is in WECOM_MANAGER_IDS; `language`: the staff's
        (WeCom says nothing of a member's)."""
        self.client = client
        self.is_manager = is_manager
        self.language = language
        self.clock = clock
        self._asked: deque[float] = deque()  # when codes were last asked about

    def _may_ask(self) -> bool:
        now = self.clock()
        while self._asked and self._asked[0] <= now - 60:
            self._asked.popleft()
        if len(self._asked) >= ASKED_PER_MINUTE:
            return False
        self._asked.append(now)
        return True

    async def __call__(self, code: str) -> Visitor:
        """The manager the code names; Refused `bad_code` (unknown, used or expired),
        `not_manager` (a member who is not a manager, or someone outside the corp);
        SignInUnavailable while WeCom cannot be asked."""
        code = code.strip()
        if not CODE.fullmatch(code):  # not one of WeCom's: not worth asking WeCom about
            raise Refused("bad_code", self.language)
        if not self._may_ask():  # a flood of codes: the next minute's sign-ins still work
            logger.warning("Over %d dashboard sign-ins from WeCom a minute", ASKED_PER_MINUTE)
            raise SignInUnavailable("too many sign-ins this minute")
        try:
            who = await self.client.signed_in(code)
        except WeComIpNotTrusted as exc:
            logger.error("WeCom refused the dashboard's sign-in: %s", exc)
            raise SignInUnavailable(str(exc)) from None
        except WeComError as exc:
            if exc.errcode in PASSING:
                raise SignInUnavailable(f"WeCom {exc.errcode}") from None
            logger.info("WeCom did not take a dashboard sign-in's code: %s", exc.errcode)
            raise Refused("bad_code", self.language) from None
        except WeComUnavailable as exc:
            raise SignInUnavailable(str(exc)) from None
        if who.userid is None or not self.is_manager(who.userid):
            raise Refused("not_manager", self.language)
        return Visitor(who.userid, self.language, "wecom")

    async def still_manager(self, userid: str) -> bool:
        """Whether the manager a session was opened for still is one (asked at each call)."""
        return self.is_manager(userid)
