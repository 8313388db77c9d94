"""WeCom's limits on what the shop's app sends to one member: 30 messages a minute and 1000 an
hour (90236). WeCom answers errcode 0 for the excess and drops it without a word, so the desk
counts for itself, member by member, and never sends past them.

A send takes a place in the window of each member it goes to before it is made; the place is
dated by WeCom's answer (later than WeCom's own count, so on the safe side) and freed again if
nothing was sent. A place can be taken only while more than `reserve` are free: cards keep a
few for the digest that announces them and for what staff must hear at once.

Several instances (`windows`: the shared windows of `bot.shared`, in Redis): a send takes its
places in the members' shared windows, all at once, and those decide when it may go, so the
limits hold for the desk as a whole; the count kept here still answers `free` for this
instance."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from typing import Any

from bot.channels.base import Passing
from bot.shared import Place, Updates, Windows

logger = logging.getLogger(__name__)

PER_MINUTE = 30
PER_HOUR = 1000
MINUTE, HOUR = 60.0, 3600.0


class MemberPace:
    """Each member's sliding windows of messages sent: a minute's and an hour's."""

    def __init__(
        self,
        per_minute: int = PER_MINUTE,
        per_hour: int = PER_HOUR,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        windows: Windows | None = None,
    ) -> None:
        self.windows = windows
        self._tokens: dict[tuple[str, ...], deque[str]] = {}  # shared places, by who they were for
        self.per_minute = per_minute
        self.per_hour = per_hour
        self.clock = clock
        self.sleep = sleep
        self._sent: dict[str, deque[float]] = {}  # when WeCom answered, this last hour
        self._in_flight: dict[str, int] = {}  # places taken by sends not yet answered
        self._answered = asyncio.Event()  # set (and replaced) whenever a send is answered
        self._updates = Updates("Shared member window")  # answers on their way to Redis

    def _window(self, userid: str) -> deque[float]:
        times = self._sent.setdefault(userid, deque())
        now = self.clock()
        while times and times[0] <= now - HOUR:
            times.popleft()
        return times

    def free(self, userid: str) -> int:
        """How many more messages may go to this member now."""
        times = self._window(userid)
        now = self.clock()
        minute = sum(1 for t in times if t > now - MINUTE)
        busy = self._in_flight.get(userid, 0)
        return max(0, min(self.per_minute - minute, self.per_hour - len(times)) - busy)

    def _wait(self, userid: str, reserve: int) -> float | None:
        """Seconds until a place is free for this member (0: now; None: once a send in flight
        is answered)."""
        if self.free(userid) > reserve:
            return 0.0
        times = self._window(userid)
        now = self.clock()
        minute = [t for t in times if t > now - MINUTE]
        waits: list[float] = []
        need = reserve + 1 + self._in_flight.get(userid, 0)
        if len(minute) + need > self.per_minute:
            over = len(minute) + need - self.per_minute
            if over <= len(minute):
                waits.append(minute[over - 1] + MINUTE - now)
        if len(times) + need > self.per_hour:
            over = len(times) + need - self.per_hour
            if over <= len(times):
                waits.append(times[over - 1] + HOUR - now)
        if not waits:
            return None
        return max(max(waits), 0.001)

    async def take(self, userids: Iterable[str], reserve: int = 0) -> None:
        """Wait until each member has more than `reserve` places free, then take one each."""
        people = list(dict.fromkeys(userids))
        if self.windows is not None:
            try:
                token = await self.windows.take(self._places(people), reserve, self.sleep)
            except Exception as exc:  # Redis away: the send waits, like any passing fault
                raise Passing(f"the shared windows do not answer: {type(exc).__name__}") from exc
            self._tokens.setdefault(tuple(people), deque()).append(token)
            for userid in people:
                self._in_flight[userid] = self._in_flight.get(userid, 0) + 1
            return
        while True:
            waits = [self._wait(u, reserve) for u in people]
            if all(w == 0.0 for w in waits):
                break
            known = [w for w in waits if w]
            if known and len(known) == len([w for w in waits if w != 0.0]):
                await self.sleep(max(known))
            else:
                answered = self._answered
                await answered.wait()
        for userid in people:
            self._in_flight[userid] = self._in_flight.get(userid, 0) + 1

    def sent(self, userids: Iterable[str]) -> None:
        """WeCom answered the send that took these places: they count from now."""
        now = self.clock()
        people = list(dict.fromkeys(userids))
        for userid in people:
            self._give_back(userid)
            self._window(userid).append(now)
        if self.windows is not None:
            self._update(self.windows.done(self._token(people), self._places(people)))
        self._wake()

    def unused(self, userids: Iterable[str]) -> None:
        """The send failed: its places are free again."""
        people = list(dict.fromkeys(userids))
        for userid in people:
            self._give_back(userid)
        if self.windows is not None:
            self._update(self.windows.release(self._token(people), self._places(people)))
        self._wake()

    # -- the shared windows (several instances) ---------------------------------------------

    def _places(self, people: list[str]) -> list[Place]:
        """Each member's minute and hour, across instances (WeCom's userids ignore case)."""
        return [
            place
            for userid in people
            for place in (
                Place(f"wecom:{userid.lower()}:m", self.per_minute, MINUTE),
                Place(f"wecom:{userid.lower()}:h", self.per_hour, HOUR),
            )
        ]

    def _token(self, people: list[str]) -> str:
        tokens = self._tokens[tuple(people)]
        token = tokens.popleft()
        if not tokens:
            del self._tokens[tuple(people)]
        return token

    def _update(self, update: Coroutine[Any, Any, None]) -> None:
        self._updates.tell(update)

    async def settle(self) -> None:
        """Wait until the shared windows have heard of every answer given here."""
        await self._updates.settle()

    def _give_back(self, userid: str) -> None:
        left = self._in_flight.get(userid, 0) - 1
        if left > 0:
            self._in_flight[userid] = left
        else:
            self._in_flight.pop(userid, None)

    def _wake(self) -> None:
        self._answered.set()
        self._answered = asyncio.Event()
