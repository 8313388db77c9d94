"""The engine and the session factory (migrations: `storage.migrate`).

A unit of work is one transaction on every database. On SQLite that takes the recipe SQLAlchemy
documents for pysqlite and aiosqlite ("Serializable isolation / Savepoints / Transactional DDL"):
the driver's own BEGIN (deferred, emitted only before a write) is turned off, and the engine
emits `BEGIN IMMEDIATE` when a transaction begins, so that a unit of work holds SQLite's one
write lock from its first read to its commit: a read and the write that depends on it cannot
cross another lane's (PostgreSQL gets the same from `SELECT ... FOR UPDATE`, see
`storage.repositories`). A unit of work that only reads says so (`READ_ONLY`) and begins a
deferred transaction instead: a snapshot (WAL) that neither waits for the writer nor holds it up.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, event
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

READ_ONLY = "desk_read_only"  # an execution option: this transaction will not write


def create_engine(url: str, busy_timeout: float = 60.0) -> AsyncEngine:
    """An engine; SQLite gets WAL, a patient busy timeout so concurrent chats wait for the
    writer rather than fail (past it, the work is tried again later: `passing`), and real
    transactions."""
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
            # the driver begins nothing itself (nor commits before DDL): `_begin` does
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout * 1000)}")
            cursor.execute("PRAGMA cache_size=-1024")  # 1 MB a connection (2 MB by default)
            cursor.close()

        @event.listens_for(engine.sync_engine, "begin")
        def _begin(connection: Connection) -> None:
            if connection.get_execution_options().get(READ_ONLY):
                connection.exec_driver_sql("BEGIN")  # deferred: a snapshot, no write lock
            else:
                connection.exec_driver_sql("BEGIN IMMEDIATE")  # the write lock, from the start

        return engine
    # at most 20 connections a process: PostgreSQL serves 100 by default, for every instance
    return create_async_engine(
        url, pool_size=10, max_overflow=10, pool_timeout=120, pool_pre_ping=True
    )


# PostgreSQL's classes of errors that pass: 08 connection, 40 rollback (serialization failure,
# deadlock), 53 insufficient resources, 55P03 lock not available, 57 operator intervention
_PASSING_SQLSTATES = ("08", "40", "53", "55P03", "57")
_PASSING_SQLITE = ("locked", "busy", "disk i/o", "unable to open")


def passing(exc: BaseException) -> bool:
    """Whether a failure is one that passes (the database is locked or busy, a deadlock, the
    connection lost): the work is left as it is and tried again later. Anything else (a bug,
    a constraint) will fail the same way again."""
    if isinstance(exc, OSError | TimeoutError | PoolTimeout):
        return True
    if not isinstance(exc, DBAPIError):
        return False
    if exc.connection_invalidated or isinstance(exc, InterfaceError):
        return True
    code = getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None)
    if code is not None:
        return str(code).startswith(_PASSING_SQLSTATES)
    # SQLite's "database is locked" is an OperationalError; "no such table" is one too
    message = str(exc.orig).lower()
    return isinstance(exc, OperationalError) and any(w in message for w in _PASSING_SQLITE)


async def ping(engine: AsyncEngine) -> None:
    """The database answers `SELECT 1` (or this raises): the health check. A read-only
    transaction, so that on SQLite it waits for no writer."""
    async with engine.connect() as connection:
        await connection.execution_options(**{READ_ONLY: True})
        await connection.exec_driver_sql("SELECT 1")


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)
