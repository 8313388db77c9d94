"""Shared fixtures: databases (a real SQLite file; PostgreSQL where it runs), the Bot API
stand-in, and the bot started as a user starts it (`python -m bot`)."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.standin import BotApiStandIn

ROOT = Path(__file__).resolve().parent.parent
STAFF_CHAT = -1001234567890
MANAGER_ID = 4242
PG_HOST, PG_PORT = "127.0.0.1", 5432


def _postgres_running() -> bool:
    try:
        with socket.create_connection((PG_HOST, PG_PORT), timeout=0.5):
            return True
    except OSError:
        return False


POSTGRES_UP = _postgres_running()
needs_postgres = pytest.mark.skipif(
    not POSTGRES_UP, reason=f"PostgreSQL is not running on {PG_HOST}:{PG_PORT}"
)


async def _pg_admin(sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(host=PG_HOST, port=PG_PORT, user="postgres", database="postgres")
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@pytest.fixture(
    params=["sqlite", pytest.param("postgres", marks=[needs_postgres, pytest.mark.postgres])]
)
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A fresh, empty database: a SQLite file, and (where it runs) a PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'desk.db'}"
        return
    name = f"desk_test_{uuid.uuid4().hex[:12]}"
    await _pg_admin(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql+asyncpg://postgres@{PG_HOST}:{PG_PORT}/{name}"
    finally:
        await _pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'desk.db'}"


@pytest.fixture
async def api() -> AsyncIterator[BotApiStandIn]:
    """The Bot API stand-in with the shop's staff group in it."""
    standin = BotApiStandIn()
    await standin.start()
    standin.add_group(STAFF_CHAT, "花店售后群")
    yield standin
    await standin.stop()


class BotProcess:
    """`python -m bot` in a subprocess, configured through its environment like a user does."""

    def __init__(
        self, api: BotApiStandIn, database_url: str, workdir: Path, **settings: str
    ) -> None:
        self.api = api
        self.workdir = workdir
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("BOT_", "SLA_"))},
            "BOT_TOKEN": api.token,
            "STAFF_CHAT_ID": str(STAFF_CHAT),
            "MANAGER_IDS": str(MANAGER_ID),
            "DATABASE_URL": database_url,
            "TELEGRAM_API_URL": api.base_url,
            "ALBUM_WINDOW": "1s",
            # scripted people answer instantly; real ones take seconds: roomier per-chat limits
            # keep the tests quick (the defaults: tests/unit/test_outbox.py, e2e/test_flood.py)
            "RATE_PER_CHAT": "20",
            "RATE_CHAT_BURST": "20",
            "RATE_GROUP_PER_MINUTE": "120",
            "PYTHONPATH": str(ROOT),
            **{k.upper(): v for k, v in settings.items()},
        }
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.log = workdir / "bot.log"

    async def start(self) -> None:
        polls_before = self._polls()
        self.starts += 1
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "bot"],
                cwd=self.workdir,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        for _ in range(400):  # ready once it polls
            if self._polls() > polls_before:
                return
            if self.proc.poll() is not None:
                raise RuntimeError(f"the bot exited: {self.log.read_text()[-3000:]}")
            await asyncio.sleep(0.025)
        raise TimeoutError(f"the bot did not start polling: {self.log.read_text()[-3000:]}")

    def _polls(self) -> int:
        return sum(1 for method, _ in self.api.calls if method == "getUpdates")

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    async def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        for _ in range(400):
            if self.proc.poll() is not None:
                return
            await asyncio.sleep(0.025)
        self.proc.kill()
        self.proc.wait(5)

    def output(self) -> str:
        return self.log.read_text(errors="replace")


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """Keep each phase's report on the test, so fixtures can tell a failed test."""
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


@pytest.fixture
async def start_bot(
    api: BotApiStandIn, database_url: str, tmp_path: Path, request: pytest.FixtureRequest
) -> AsyncIterator[Any]:
    """Start the bot (once or again after a kill) against the stand-in and the database.
    When the test fails, the bot's log is printed with the failure."""
    processes: list[BotProcess] = []

    async def start(**settings: str) -> BotProcess:
        process = BotProcess(api, database_url, tmp_path, **settings)
        await process.start()
        processes.append(process)
        return process

    yield start
    for process in processes:
        await process.stop()
    report = getattr(request.node, "report_call", None)
    if processes and report is not None and report.failed:
        print(f"--- the bot's log ({processes[-1].log}) ---")
        print(processes[-1].output()[-6000:])


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Path]:
    """No desk settings from the surrounding environment; a working folder with no .env."""
    for name in list(os.environ):
        if name.startswith(("BOT_", "STAFF_", "MANAGER_", "DATABASE_", "TELEGRAM_", "SHOP_")):
            monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    yield tmp_path
