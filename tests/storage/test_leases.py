"""Leases on a real database: work claimed by one instance at a time (an outbox lane, a WeCom
account's pull), taken over when its holder stops renewing, handed back on stop."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncEngine

from storage.db import session_factory
from storage.uow import UnitOfWork

NOW = datetime(2026, 11, 30, 16, 0, tzinfo=UTC)


async def test_a_lease_is_held_by_one_until_it_expires_or_is_handed_back(
    engine: AsyncEngine,
) -> None:
    """Two instances claim one lane at once: one wins; the other wins it only once the lease
    has expired, or at once when its holder hands it back; the holder renews its own."""
    factory = session_factory(engine)

    async def claim(holder: str, at: datetime, name: str = "outbox:telegram:1") -> bool:
        async with UnitOfWork(factory) as uow:
            won = await uow.leases.claim(name, holder, at, 15.0)
            await uow.commit()
        return won

    won = await asyncio.gather(*(claim(f"i{n}", NOW) for n in range(8)))
    assert sum(won) == 1
    winner, other = f"i{won.index(True)}", f"i{won.index(False)}"
    assert await claim(winner, NOW + timedelta(seconds=10))  # renewed: until NOW + 25 s
    assert not await claim(other, NOW + timedelta(seconds=20))
    async with UnitOfWork(factory, read_only=True) as uow:
        held = await uow.leases.held_by_others(NOW + timedelta(seconds=20), other, "outbox:")
        assert held == {"outbox:telegram:1"}
        assert not await uow.leases.held_by_others(NOW, winner)
    assert await claim(other, NOW + timedelta(seconds=26))  # expired: taken over

    assert await claim(other, NOW + timedelta(seconds=26), "wecom:sync:kf1")
    async with UnitOfWork(factory) as uow:
        assert await uow.leases.renew_all(other, NOW + timedelta(seconds=30), 15.0, "outbox:")
        await uow.leases.release_all(other, "outbox:")
        await uow.commit()
    assert await claim(winner, NOW + timedelta(seconds=27))  # handed back: free at once
    assert not await claim(winner, NOW + timedelta(seconds=27), "wecom:sync:kf1")
