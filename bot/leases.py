"""Work shared by several instances on one database, one at a time: each lane of the outbox is
sent by one instance, each WeCom account's cursor is pulled by one. An instance claims the work
for a while (a lease: `storage.repositories.LeaseRepository`) and renews it as long as it works
on it; one that dies stops renewing, and another takes the work over once the lease expires.
One that stops hands its leases back, and the work passes on at once.

One instance alone (SQLite, no Redis) claims nothing: `claims` is None, and nothing is written.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from storage.uow import UnitOfWork

logger = logging.getLogger(__name__)

TTL = 15.0  # seconds a lease lasts unless renewed (renewed every third of it): a dead
# instance's work is taken over within 2 TTL (its last renewal, then the others' next look)
LOOK_EVERY = 5.0  # how often an instance looks again at work others hold


def wall_clock() -> datetime:
    """Leases go by the real time, whatever the desk's clock says: they are about processes
    that live and die."""
    return datetime.now(UTC)


@dataclass(frozen=True)
class Claims:
    """Who claims (this instance: `Settings.instance`) and for how long."""

    holder: str
    ttl: float = TTL
    look_every: float = LOOK_EVERY

    @property
    def renew_every(self) -> float:
        return self.ttl / 3


async def claim(new_uow: Callable[[], UnitOfWork], claims: Claims, name: str) -> bool:
    """Claim (or renew) `name` in a transaction of its own."""
    async with new_uow() as uow:
        won = await uow.leases.claim(name, claims.holder, wall_clock(), claims.ttl)
        await uow.commit()
    return won


async def release(new_uow: Callable[[], UnitOfWork], claims: Claims, name: str) -> None:
    async with new_uow() as uow:
        await uow.leases.release(name, claims.holder)
        await uow.commit()


@contextlib.asynccontextmanager
async def holding(
    new_uow: Callable[[], UnitOfWork],
    claims: Claims,
    name: str,
) -> AsyncIterator[bool]:
    """Claim `name`, and keep it (renewed every third of its time) until the block ends, then
    hand it back. Yields whether it was won: when another holds it, the block runs with
    False and nothing is renewed or handed back."""
    if not await claim(new_uow, claims, name):
        yield False
        return

    async def renew() -> None:
        while True:
            await asyncio.sleep(claims.renew_every)
            try:
                if not await claim(new_uow, claims, name):
                    logger.warning("Lease %s was taken over", name)
                    return
            except Exception as exc:
                logger.warning("Lease %s not renewed: %s", name, exc)

    renewing = asyncio.create_task(renew())
    try:
        yield True
    finally:
        renewing.cancel()
        await asyncio.gather(renewing, return_exceptions=True)
        try:
            await release(new_uow, claims, name)
        except Exception as exc:  # it expires by itself
            logger.warning("Lease %s not handed back: %s", name, exc)
