"""aiogram FSM storage on the project's own database (aiogram ships Memory, Redis and Mongo)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aiogram.fsm.state import State
from aiogram.fsm.storage.base import BaseStorage, DefaultKeyBuilder, StateType, StorageKey
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from storage.models import FsmRow
from storage.uow import current_session


class SqlStorage(BaseStorage):
    """Dialogue state in the `fsm` table. Inside an update it writes in that update's
    transaction; elsewhere it commits on its own."""

    def __init__(self, factory: async_sessionmaker[AsyncSession]) -> None:
        self._factory = factory
        self._keys = DefaultKeyBuilder(with_destiny=True)

    async def _row(self, session: AsyncSession, key: StorageKey) -> FsmRow:
        built = self._keys.build(key)
        row = await session.get(FsmRow, built)
        if row is None:
            row = FsmRow(key=built, state=None, data={})
            session.add(row)
        return row

    async def _write(self, key: StorageKey, **values: Any) -> None:
        session = current_session.get()
        if session is not None:
            row = await self._row(session, key)
            for name, value in values.items():
                setattr(row, name, value)
            return  # written with the update's transaction
        async with self._factory() as own:
            row = await self._row(own, key)
            for name, value in values.items():
                setattr(row, name, value)
            await own.commit()

    async def _read(self, key: StorageKey) -> FsmRow | None:
        session = current_session.get()
        if session is not None:
            return await session.get(FsmRow, self._keys.build(key))
        async with self._factory() as own:
            return await own.get(FsmRow, self._keys.build(key))

    async def set_state(self, key: StorageKey, state: StateType = None) -> None:
        value = state.state if isinstance(state, State) else state
        await self._write(key, state=value)

    async def get_state(self, key: StorageKey) -> str | None:
        row = await self._read(key)
        return row.state if row else None

    async def set_data(self, key: StorageKey, data: Mapping[str, Any]) -> None:
        await self._write(key, data=dict(data))

    async def get_data(self, key: StorageKey) -> dict[str, Any]:
        row = await self._read(key)
        return dict(row.data) if row and row.data else {}

    async def close(self) -> None:
        return None
