"""One scheduler for every deadline: it sleeps until the earliest unfired one (or until poked
by a commit that may have planned an earlier one), claims what is due, and hands each to the
domain through `fire`. A deadline that passed while the bot was down fires right after start,
once: claiming marks it fired in the database."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Hashable
from datetime import datetime

from bot.domain.clock import DeadlineKind
from storage.repositories import DueDeadline
from storage.uow import NewUnitOfWork

logger = logging.getLogger(__name__)

Fire = Callable[[int, DeadlineKind], Awaitable[None]]
Submit = Callable[[Hashable, Callable[[], Awaitable[None]]], None]
LaneOf = Callable[[int], Awaitable[Hashable]]
MAX_SLEEP = 30.0  # also notices deadlines written by another instance


class Scheduler:
    def __init__(
        self,
        new_uow: NewUnitOfWork,
        clock: Callable[[], datetime],
        fire: Fire,
        lanes: Submit,
        lane_of: LaneOf,
    ) -> None:
        self.new_uow = new_uow
        self.clock = clock
        self.fire = fire
        self.lanes = lanes
        self.lane_of = lane_of
        self._poke = asyncio.Event()
        self._stop = asyncio.Event()

    def poke(self) -> None:
        self._poke.set()

    def stop(self) -> None:
        self._stop.set()
        self._poke.set()

    async def run(self) -> None:
        while not self._stop.is_set():
            self._poke.clear()  # before the tick: a poke during it is not lost
            try:
                delay = await self._tick()
            except Exception:
                logger.exception("Scheduler tick failed")
                delay = 5.0
            if self._stop.is_set():
                break
            try:
                await asyncio.wait_for(self._poke.wait(), timeout=delay)
            except TimeoutError:
                pass

    async def _tick(self) -> float:
        """Fire what is due; return how long to sleep until the next deadline."""
        now = self.clock()
        async with self.new_uow(read_only=True) as uow:
            due = await uow.deadlines.due(now)
        for deadline in due:
            await self._claim_and_fire(deadline)
        async with self.new_uow(read_only=True) as uow:
            earliest = await uow.deadlines.earliest()
        if earliest is None:
            return MAX_SLEEP
        return min(max((earliest - self.clock()).total_seconds(), 0.05), MAX_SLEEP)

    async def _claim_and_fire(self, deadline: DueDeadline) -> None:
        async with self.new_uow() as uow:
            claimed = await uow.deadlines.claim(deadline.id, self.clock())
            await uow.commit()
        if not claimed:
            return
        lane = await self.lane_of(deadline.ticket_id)
        ticket_id, kind = deadline.ticket_id, deadline.kind

        async def job() -> None:
            try:
                await self.fire(ticket_id, kind)
            finally:
                self.poke()  # what fired may have planned the next deadline (follow-up...)

        self.lanes(lane, job)  # in the customer's lane: in order with their messages
