"""One scheduler for every deadline: it sleeps until the earliest unfired one (or until poked
by a commit that may have planned an earlier one) and hands what is due to the customer's lane,
in order with their messages. There one unit of work claims the deadline (marks it fired, unless
another instance did), acts on it and commits both together: an action that fails, or a process
killed before the commit, leaves the deadline unfired, and it fires later. A deadline that
passed while the bot was down fires right after start, once.

An action that fails is tried again after a back-off: for as long as it takes when the failure
passes (the database locked or gone a moment), at most `MAX_FAILURES` times otherwise (a reason
that will not pass): then it is logged and set aside until the next start."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from datetime import datetime, timedelta

from bot.domain.clock import DeadlineKind
from bot.durable import passing
from storage.repositories import DueDeadline
from storage.uow import NewUnitOfWork, UnitOfWork

logger = logging.getLogger(__name__)

Act = Callable[[UnitOfWork, int, DeadlineKind], Awaitable[None]]
Submit = Callable[[Hashable, Callable[[], Awaitable[None]]], None]
LaneOf = Callable[[int], Awaitable[Hashable]]
MAX_SLEEP = 30.0  # also notices deadlines written by another instance
BATCH = 100  # deadlines handed on a tick
FIRST_RETRY = timedelta(seconds=5)
LAST_RETRY = timedelta(minutes=5)  # the longest back-off
MAX_FAILURES = 5  # of an action that fails for a reason that will not pass


@dataclass
class _Failing:
    count: int  # failures that will not pass
    retry_at: datetime
    tries: int = 0  # every failure: the pause grows with them


class Scheduler:
    def __init__(
        self,
        new_uow: NewUnitOfWork,
        clock: Callable[[], datetime],
        act: Act,
        lanes: Submit,
        lane_of: LaneOf,
    ) -> None:
        """`act`: what a passed deadline means for its ticket, inside the unit of work that
        claimed it (it queues what must be said; it does not commit)."""
        self.new_uow = new_uow
        self.clock = clock
        self.act = act
        self.lanes = lanes
        self.lane_of = lane_of
        self._poke = asyncio.Event()
        self._stop = asyncio.Event()
        self._in_hand: set[int] = set()  # handed to a lane, not done yet
        self._failing: dict[int, _Failing] = {}
        self._set_aside: set[int] = set()

    def poke(self) -> None:
        self._poke.set()

    def stop(self) -> None:
        self._stop.set()
        self._poke.set()

    async def run(self) -> None:
        while not self._stop.is_set():
            self._poke.clear()  # before the tick: a poke during it is not lost
            try:
                delay = await self.tick()
            except Exception:
                logger.exception("Scheduler tick failed")
                delay = 5.0
            if self._stop.is_set():
                break
            try:
                await asyncio.wait_for(self._poke.wait(), timeout=delay)
            except TimeoutError:
                pass

    async def tick(self) -> float:
        """Hand on what is due; return how long to sleep until the next deadline (or retry)."""
        now = self.clock()
        waiting = {i for i, f in self._failing.items() if f.retry_at > now}
        skip = self._in_hand | self._set_aside | waiting
        async with self.new_uow(read_only=True) as uow:
            due = await uow.deadlines.due(now, limit=BATCH, skip=skip)
            earliest = await uow.deadlines.earliest(after=now)
        for deadline in due:
            await self._hand_on(deadline)
        if len(due) == BATCH:
            return 0.05  # more are due
        handed = {d.id for d in due}
        for gone in [i for i in self._failing if i not in waiting | handed | self._in_hand]:
            del self._failing[gone]  # fired by another instance, or no longer planned
        wake = [f.retry_at for i, f in self._failing.items() if i in waiting]
        if earliest is not None:
            wake.append(earliest)
        if not wake:
            return MAX_SLEEP
        return min(max((min(wake) - self.clock()).total_seconds(), 0.05), MAX_SLEEP)

    async def _hand_on(self, deadline: DueDeadline) -> None:
        """To the customer's lane: in order with their messages."""
        self._in_hand.add(deadline.id)
        try:
            lane = await self.lane_of(deadline.ticket_id)
        except BaseException:
            self._in_hand.discard(deadline.id)
            raise

        async def job() -> None:
            try:
                await self._fire(deadline)
            finally:
                self._in_hand.discard(deadline.id)
                self.poke()  # what fired may have planned the next deadline (follow-up...)

        self.lanes(lane, job)

    async def _fire(self, deadline: DueDeadline) -> None:
        """Claim, act and commit in one transaction; a failure rolls the claim back too."""
        try:
            async with self.new_uow() as uow:
                if await uow.deadlines.claim(deadline.id, self.clock()):
                    await self.act(uow, deadline.ticket_id, deadline.kind)
                    await uow.commit()
        except Exception as exc:
            self._failed(deadline, exc)
            return
        self._failing.pop(deadline.id, None)

    def _failed(self, deadline: DueDeadline, exc: Exception) -> None:
        failing = self._failing.get(deadline.id) or _Failing(0, self.clock())
        failing.tries += 1
        if not passing(exc):  # a fault that passes is waited out, however often
            failing.count += 1
        what = f"The {deadline.kind.value} deadline of ticket {deadline.ticket_id}"
        if not passing(exc) and failing.count >= MAX_FAILURES:
            self._failing.pop(deadline.id, None)
            self._set_aside.add(deadline.id)
            logger.error(
                "%s failed %s times; set aside until the next start",
                what,
                failing.count,
                exc_info=exc,
            )
            return
        back_off = min(FIRST_RETRY * 2 ** (failing.tries - 1), LAST_RETRY)
        failing.retry_at = self.clock() + back_off
        self._failing[deadline.id] = failing
        logger.warning(
            "%s failed (try %s); trying again in %ss",
            what,
            failing.tries,
            int(back_off.total_seconds()),
            exc_info=exc,
        )
