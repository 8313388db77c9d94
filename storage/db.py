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


def create_engine(url: str, busy_timeout: float = 60.0) -> AsyncEngine:
    """An engine; SQLite gets WAL and a patient busy timeout so concurrent chats do not fail
    (past it, the work is tried again later: `passing`)."""
    if url.startswith("sqlite"):
        engine = create_async_engine(
            url,
            connect_args={"timeout": busy_timeout},
            pool_size=4,
            max_overflow=4,
            pool_timeout=120,
        )

        @event.listens_for(engine.sync_engine, "connect")
        def _pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout * 1000)}")
            cursor.execute("PRAGMA cache_size=-1024")  # 1 MB a connection (2 MB by default)
            cursor.close()

        return engine
    # at most 20 connections a process: PostgreSQL serves 100 by default, for every instance
    return create_async_engine(
        url, pool_size=10, max_overflow=10, pool_timeout=120, pool_pre_ping=True
    )


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


# SQLSTATEs that pass: serialization failure, deadlock, lock not available, the server shutting
# down or restarting, a connection lost or refused, too many connections
_PASSING_SQLSTATES = {"40001", "40P01", "55P03", "57P01", "57P02", "57P03", "08000", "08001"}
_PASSING_SQLITE = ("locked", "busy", "disk i/o", "unable to open")


def passing(exc: BaseException) -> bool:
    """Whether a database error will pass (SQLite locked or busy, a PostgreSQL deadlock or
    serialization failure, a lost connection, a timeout): the work is left where it is and tried
    again later. Anything else is a real refusal (a bug, a constraint), never worth a retry."""
    from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
    from sqlalchemy.exc import TimeoutError as PoolTimeout

    if isinstance(exc, TimeoutError | ConnectionError | PoolTimeout):
        return True
    if not isinstance(exc, DBAPIError):
        return False
    if exc.connection_invalidated or isinstance(exc, InterfaceError):
        return True
    sqlstate = getattr(exc.orig, "pgcode", None) or getattr(exc.orig, "sqlstate", None)
    if sqlstate is not None:
        return str(sqlstate) in _PASSING_SQLSTATES or str(sqlstate).startswith("08")
    message = str(exc.orig).lower()
    return isinstance(exc, OperationalError) and any(w in message for w in _PASSING_SQLITE)
