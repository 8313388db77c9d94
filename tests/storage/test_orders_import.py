"""The shop's orders on real databases: written in bulk, as an upsert."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import event, func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from bot.domain.orders import Order
from storage.db import session_factory
from storage.models import OrderRow
from storage.uow import UnitOfWork

NOW = datetime(2026, 11, 23, 4, 0, tzinfo=UTC)


@pytest.fixture
def factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return session_factory(engine)


def writes_to_orders(engine: AsyncEngine) -> list[str]:
    """The statements that write to the orders table from now on, as the database gets them
    (one executemany counts once)."""
    seen: list[str] = []

    @event.listens_for(engine.sync_engine, "before_cursor_execute")
    def _seen(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.lstrip().upper().startswith(("INSERT INTO ORDERS", "UPDATE ORDERS")):
            seen.append(statement)

    return seen


def orders(count: int, product: str) -> list[Order]:
    return [
        Order(f"FS{2026000000 + i}", f"{product} {i}", f"B{i % 7}", "2026-11-23", "静安店")
        for i in range(count)
    ]


async def test_orders_go_in_bulk_and_a_file_sent_again_updates_them(
    engine: AsyncEngine, factory: async_sessionmaker[AsyncSession]
) -> None:
    """5,000 orders are written by a few INSERT ... ON CONFLICT DO UPDATE statements, not one
    or two a row; the same orders again (a file sent again, or an import repeated after a
    restart) update those rows in place, the last row of an order given twice wins, and the
    table holds each order once."""
    statements = writes_to_orders(engine)
    async with UnitOfWork(factory) as uow:
        assert await uow.orders.put(orders(5000, "红玫瑰"), NOW) == 5000
        await uow.commit()
    assert 1 <= len(statements) <= 10
    assert all("ON CONFLICT" in s.upper() for s in statements)

    again = orders(5000, "向日葵")[:3000] + [Order("FS2026000001", "白百合 最后一行")]
    later = NOW + timedelta(hours=1)
    async with UnitOfWork(factory) as uow:
        assert await uow.orders.put(again, later) == 3000
        await uow.commit()
    async with UnitOfWork(factory) as uow:
        count = await uow.session.scalar(select(func.count()).select_from(OrderRow))
        first = await uow.orders.get("fs2026000000")
        twice = await uow.orders.get("FS2026000001")
        untouched = await uow.orders.get("FS2026004999")
        stamped = await uow.session.scalar(
            select(OrderRow.imported_at).where(OrderRow.order_number == "FS2026000000")
        )
    assert count == 5000
    assert first is not None and first.product == "向日葵 0" and first.store == "静安店"
    assert twice is not None and twice.product == "白百合 最后一行" and twice.batch is None
    assert untouched is not None and untouched.product == "红玫瑰 4999"
    assert stamped == later
