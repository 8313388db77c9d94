"""A WeCom group robot (群机器人): new cards and escalations mirrored into a WeCom staff group,
for shops that also work there. Staff still answer in the Telegram group; the mirror only
tells.

A robot may post 20 messages a minute. The sender hands it every mirrored row waiting in its
lane; one waiting alone goes as it is, several go together as one digest, so a busy minute
never loses one nor waits behind the limit one by one.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp

from bot.channels.base import Delivery, Outcome, Passing, Refresh
from bot.channels.wecom.text import TEXT_BYTES, cut_bytes, plain_text
from bot.domain.messages import Outgoing
from bot.http_failure import http_failure

logger = logging.getLogger(__name__)

PER_MINUTE = 20
ENTRY_BYTES = 600  # one entry of a digest
FREQUENCY_LIMITED = 45009  # WeCom: "api freq out of limit"

Header = Callable[[int], str]  # the digest's first line, for so many entries


class RobotUnavailable(Passing):
    """The webhook did not answer (a passing fault: the sender tries again)."""

    def __init__(self, failure: str) -> None:
        super().__init__(f"WeCom group robot: {failure}")


class GroupRobot:
    """Posts the mirror's rows to a group robot's webhook, 20 a minute at most."""

    name = "wecom_group"

    def __init__(
        self,
        url: str,
        digest_header: Header,
        *,
        per_minute: int = PER_MINUTE,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.url = url
        self.digest_header = digest_header
        self.per_minute = per_minute
        self.clock = clock
        self.sleep = sleep
        self._sent: deque[float] = deque()  # when the robot answered, this last minute
        self._session: aiohttp.ClientSession | None = None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    def _room(self) -> float:
        """Seconds until the robot may post again (0: now)."""
        now = self.clock()
        while self._sent and self._sent[0] <= now - 60:
            self._sent.popleft()
        if len(self._sent) < self.per_minute:
            return 0.0
        return self._sent[0] + 60 - now

    async def deliver(self, rows: list[Outgoing], refresh: Refresh) -> Outcome:
        while (wait := self._room()) > 0:
            await self.sleep(wait)
            rows = await refresh() or rows  # what came meanwhile goes in the same digest
        batch, content = self._compose(rows)
        answer = await self._post({"msgtype": "text", "text": {"content": content}})
        code = int(answer.get("errcode", 0) or 0)
        if code == FREQUENCY_LIMITED:  # the group's robots share the limit: wait a minute
            now = self.clock()
            self._sent.extend([now] * (self.per_minute - len(self._sent)))
            raise RobotUnavailable("frequency limit, waiting")
        self._sent.append(self.clock())
        if code:
            detail = f"wecom robot {code}: {answer.get('errmsg', '')}"
            logger.error("The WeCom group robot refused the mirror: %s", detail)
            return Outcome(Delivery.FAILED, [r.id for r in batch], detail=detail)
        return Outcome(Delivery.SENT, [r.id for r in batch])

    def _compose(self, rows: list[Outgoing]) -> tuple[list[Outgoing], str]:
        """One row as it is; several as a digest of as many as fit in one message."""
        if len(rows) == 1:
            return rows, cut_bytes(plain_text(rows[0].say.text), TEXT_BYTES)
        header = self.digest_header(len(rows))
        size = len(header.encode())
        batch: list[Outgoing] = []
        entries: list[str] = []
        for row in rows:
            entry = cut_bytes(plain_text(row.say.text), ENTRY_BYTES)
            if batch and size + len(entry.encode()) + 2 > TEXT_BYTES:
                break
            batch.append(row)
            entries.append(entry)
            size += len(entry.encode()) + 2
        if len(batch) < len(rows):
            header = self.digest_header(len(batch))
        return batch, cut_bytes("\n\n".join([header, *entries]), TEXT_BYTES)

    async def _post(self, body: dict[str, Any]) -> dict[str, Any]:
        """WeCom's answer; a failure in transit raises RobotUnavailable, which says the status
        or the kind of error and never the webhook's URL (its `key=` is the robot's secret)."""
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=15))
        try:
            async with self._session.post(self.url, json=body) as response:
                response.raise_for_status()
                answer = await response.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise RobotUnavailable(http_failure(exc)) from None
        except ValueError:  # not JSON: a proxy's error page
            raise RobotUnavailable("not JSON") from None
        if not isinstance(answer, dict):
            raise RobotUnavailable("not a JSON object")
        return dict(answer)
