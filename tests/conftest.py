"""Shared fixtures: databases (a real SQLite file; PostgreSQL where it runs), the Bot API
stand-in, and the bot: in-process, or as a user starts it (`python -m bot`)."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from bot.standin import BotApiStandIn

ROOT = Path(__file__).resolve().parent.parent
STAFF_CHAT = -1001234567890
MANAGER_ID = 4242
PG_HOST, PG_PORT = "127.0.0.1", 5432


def _listening(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379
REDIS_UP = _listening(REDIS_HOST, REDIS_PORT)
needs_redis = pytest.mark.skipif(
    not REDIS_UP, reason=f"Redis is not running on {REDIS_HOST}:{REDIS_PORT}"
)
POSTGRES_UP = _listening(PG_HOST, PG_PORT)
needs_postgres = pytest.mark.skipif(
    not POSTGRES_UP, reason=f"PostgreSQL is not running on {PG_HOST}:{PG_PORT}"
)


@pytest.fixture
async def redis_shared() -> AsyncIterator[Callable[..., Any]]:
    """Makes `RedisShared` objects, as the instances of one desk would have (one Redis, one
    key prefix of this test's own); the keys are removed afterwards."""
    if not REDIS_UP:
        pytest.skip(f"Redis is not running on {REDIS_HOST}:{REDIS_PORT}")
    from bot.shared import RedisShared

    url = f"redis://{REDIS_HOST}:{REDIS_PORT}/0"
    prefix = f"desk-test-{uuid.uuid4().hex[:12]}:"
    made: list[RedisShared] = []

    def make(clock: Callable[[], float] | None = None) -> RedisShared:
        shared = RedisShared(url, prefix=prefix, clock=clock)
        made.append(shared)
        return shared

    yield make
    cleaner = make()
    keys = [key async for key in cleaner.redis.scan_iter(match=f"{prefix}*")]
    if keys:
        await cleaner.redis.delete(*keys)
    for shared in made:
        await shared.close()


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
        yield _pg_url(name)
    finally:
        await _pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class Templates:
    """A database migrated once per test process, copied for each test that needs a migrated
    one (a SQLite file copied; PostgreSQL's CREATE DATABASE … TEMPLATE): the migrations run
    once, not before every test. A database that is not new (a restart, or rows a test put in
    first) is migrated as the desk would. The migrations themselves are tested from empty in
    tests/storage, and `python -m bot` always migrates for itself."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.sqlite: Path | None = None
        self.postgres: str | None = None

    async def migrated(self, url: str) -> None:
        """Bring the database at `url` to the newest migration."""
        from storage.migrate import migrate

        if url.startswith("sqlite"):
            path = Path(url.split("///", 1)[1])
            if await asyncio.to_thread(_copied, await self._sqlite(), path):
                return
        elif url.startswith("postgresql") and await _pg_is_empty(url):
            name = url.rsplit("/", 1)[1]
            template = await self._postgres()
            await _pg_admin(f'DROP DATABASE "{name}"')
            await _pg_admin(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
            return
        await asyncio.to_thread(migrate, url)

    async def _sqlite(self) -> Path:
        from storage.migrate import migrate

        if self.sqlite is None:
            path = self.root / "template.db"
            await asyncio.to_thread(migrate, f"sqlite+aiosqlite:///{path}")
            assert not path.with_name("template.db-wal").exists()  # one file holds it all
            self.sqlite = path
        return self.sqlite

    async def _postgres(self) -> str:
        from storage.migrate import migrate

        if self.postgres is None:
            name = f"desk_template_{uuid.uuid4().hex[:12]}"
            await _pg_admin(f'CREATE DATABASE "{name}"')
            await asyncio.to_thread(migrate, _pg_url(name))
            self.postgres = name
        return self.postgres

    def drop(self) -> None:
        if self.postgres is not None:
            asyncio.run(_pg_admin(f'DROP DATABASE IF EXISTS "{self.postgres}" WITH (FORCE)'))


def _copied(template: Path, path: Path) -> bool:
    """A copy of the template at `path`, unless a database is there already."""
    if path.exists():
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(template, path)
    return True


def _pg_url(name: str) -> str:
    return f"postgresql+asyncpg://postgres@{PG_HOST}:{PG_PORT}/{name}"


async def _pg_is_empty(url: str) -> bool:
    import asyncpg

    name = url.rsplit("/", 1)[1]
    conn = await asyncpg.connect(host=PG_HOST, port=PG_PORT, user="postgres", database=name)
    try:
        return not await conn.fetchval(
            "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"
        )
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def templates(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Templates]:
    made = Templates(tmp_path_factory.mktemp("templates"))
    yield made
    made.drop()


@pytest.fixture
def redis_url() -> str:
    """The Redis at 127.0.0.1:6379 (tests that use it are marked `needs_redis`); each desk keeps
    its keys under its own bot's name, so tests side by side do not meet."""
    return f"redis://{REDIS_HOST}:{REDIS_PORT}/0"


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'desk.db'}"


@pytest.fixture
async def http() -> AsyncIterator[Any]:
    """A plain HTTP client, as a messenger or a browser calls the desk and the stand-ins."""
    import aiohttp

    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
async def wecom() -> AsyncIterator[Any]:
    """The WeCom stand-in: customer service (kf), the callbacks, a group robot's webhook."""
    from bot.standin.wecom import WeComStandIn

    standin = WeComStandIn()
    await standin.start()
    yield standin
    await standin.stop()


@pytest.fixture
async def api() -> AsyncIterator[BotApiStandIn]:
    """The Bot API stand-in with the shop's staff group in it."""
    # a bot of its own for each test: what a desk keeps in a shared Redis is under its bot's id
    standin = BotApiStandIn(token=f"{uuid.uuid4().int % 10**10}:TEST-token")
    await standin.start()
    standin.add_group(STAFF_CHAT, "花店售后群")
    yield standin
    await standin.stop()


def bot_settings(api: BotApiStandIn, database_url: str, **settings: str) -> dict[str, str]:
    """The desk's settings for a test, as a user writes them in .env (upper-case names)."""
    return {
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
        "HTTP_PORT": "0",  # tests run side by side: each desk on a free port
        **{k.upper(): v for k, v in settings.items()},
    }


def _polls(api: BotApiStandIn) -> int:
    return sum(1 for method, _ in api.calls if method == "getUpdates")


class InProcessBot:
    """The desk built and served inside the test's event loop, as the demo runs it: quick to
    start, and its log is the test's captured log."""

    def __init__(
        self,
        api: BotApiStandIn,
        database_url: str,
        clock: Callable[[], datetime] | None = None,
        migrated: Callable[[str], Awaitable[None]] | None = None,
        **settings: str,
    ) -> None:
        self.api = api
        self.clock = clock  # the desk's clock (None: the real time)
        self.migrated = migrated  # brings the database to the newest migration (None: migrate)
        given = bot_settings(api, database_url, **settings)
        self.settings = {k: v for k, v in given.items() if v != ""}  # "": left out
        self.task: asyncio.Task[None] | None = None
        self.app: Any = None

    async def start(self) -> None:
        from bot.app import build, serve
        from bot.config import load_settings
        from bot.policy import load_policy
        from storage.migrate import migrate

        if self.migrated is None:
            await asyncio.to_thread(migrate, self.settings["DATABASE_URL"])
        else:
            await self.migrated(self.settings["DATABASE_URL"])
        settings = load_settings(
            **{k.lower(): v for k, v in self.settings.items()}, _env_file=None
        )
        policy = load_policy(settings.shop_policy)
        self.app = (
            build(settings, policy) if self.clock is None else build(settings, policy, self.clock)
        )
        polls = _polls(self.api)
        self.task = asyncio.create_task(serve(self.app, signals=False))
        if self.app.telegram is None or settings.webhook_url:  # ready once it can be called
            waiting = asyncio.create_task(self.app.started.wait())
        else:
            waiting = asyncio.create_task(self.api.wait_calls("getUpdates", polls + 1))
        await asyncio.wait({self.task, waiting}, return_when=asyncio.FIRST_COMPLETED)
        if self.task.done():  # it stopped before it polled: say why
            waiting.cancel()
            self.task.result()
        await waiting

    async def handled(self) -> None:
        """A barrier: every update sent so far has been fetched and handled (committed)."""
        if self.app.telegram is not None:
            await self.api.wait_confirmed(timeout=60)  # their jobs are in the lanes by then
        await self.app.lanes.idle()

    async def settled(self) -> None:
        """A barrier: handled, and everything the desk had to say has been sent."""
        await self.handled()
        await self.app.sender.idle()

    async def stop(self) -> None:
        if self.task is None or self.task.done():
            return
        self.app.stop()
        await asyncio.wait_for(self.task, timeout=60)

    def output(self) -> str:
        return "(in-process: see the captured log)"


class BotProcess:
    """`python -m bot` in a subprocess, configured through its environment like a user does:
    for what only a process shows (start-up, settings errors, kill -9)."""

    def __init__(
        self, api: BotApiStandIn, database_url: str, workdir: Path, **settings: str
    ) -> None:
        self.api = api
        self.workdir = workdir
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("BOT_", "SLA_"))},
            **bot_settings(api, database_url, **settings),
            "PYTHONPATH": str(ROOT),
        }
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.log = workdir / "bot.log"

    async def start(self) -> None:
        """Start it as a user does: ready once it polls."""
        await self._launch("getUpdates")

    async def start_serving(self, url: str) -> None:
        """Start it in webhook mode: ready once it has given Telegram its address (it listens
        before that) and its `/healthz` at `url` says 200."""
        import aiohttp

        await self._launch("setWebhook")
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{url}/healthz") as answer:
                assert answer.status == 200, self.log.read_text()[-3000:]

    async def _launch(self, ready_when: str) -> None:
        """`python -m bot`, until it calls `ready_when` once more (a barrier; a busy machine
        may take a while); says why if it exits first."""
        before = sum(1 for method, _ in self.api.calls if method == ready_when)
        self.starts += 1
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "bot"],
                cwd=self.workdir,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        called = asyncio.create_task(self.api.wait_calls(ready_when, before + 1))
        while not called.done():
            if self.proc.poll() is not None:
                called.cancel()
                raise RuntimeError(f"the bot exited: {self.log.read_text()[-3000:]}")
            await asyncio.wait({called}, timeout=0.1)
        called.result()

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    async def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(asyncio.to_thread(self.proc.wait), timeout=60)
        except TimeoutError:
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
    api: BotApiStandIn, database_url: str, templates: Templates, request: pytest.FixtureRequest
) -> AsyncIterator[Any]:
    """Start the desk in-process against the stand-in and the database (again after a stop),
    on the real time or on the `clock` given. Every bot started is stopped at the end, whether
    or not it came up."""
    bots: list[InProcessBot] = []

    async def start(clock: Callable[[], datetime] | None = None, **settings: str) -> InProcessBot:
        bot = InProcessBot(api, database_url, clock, templates.migrated, **settings)
        bots.append(bot)  # stopped at the end even if it does not start
        await bot.start()
        return bot

    yield start
    for bot in bots:
        await bot.stop()


@pytest.fixture
async def start_bot_process(
    api: BotApiStandIn, database_url: str, tmp_path: Path, request: pytest.FixtureRequest
) -> AsyncIterator[Any]:
    """Start `python -m bot` as a user does (once, or again after a kill -9). When the test
    fails, the bot's log is printed with the failure."""
    processes: list[BotProcess] = []

    async def start(**settings: str) -> BotProcess:
        process = BotProcess(api, database_url, tmp_path, **settings)
        processes.append(process)  # stopped at the end even if it does not start
        await process.start()
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
