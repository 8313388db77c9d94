"""The engine and the session factory (migrations: `storage.migrate`)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)


def create_engine(url: str) -> AsyncEngine:
    """An engine; SQLite gets WAL and a patient busy timeout so concurrent chats do not fail."""
    if url.startswith("sqlite"):
        engine = create_async_engine(
            url, connect_args={"timeout": 60}, pool_size=4, max_overflow=4, pool_timeout=120
        )

        @event.listens_for(engine.sync_engine, "connect")
        def _pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=60000")
            cursor.execute("PRAGMA cache_size=-1024")  # 1 MB a connection (2 MB by default)
            cursor.close()

        return engine
    # at most 20 connections a process: PostgreSQL serves 100 by default, for every instance
    return create_async_engine(
        url, pool_size=10, max_overflow=10, pool_timeout=120, pool_pre_ping=True
    )


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)
