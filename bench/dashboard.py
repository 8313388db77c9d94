"""The manager's dashboard on a year of complaints (issue 17): each JSON call the page makes,
timed through the desk's real HTTP endpoint on the 100,000-ticket database, on SQLite and on
PostgreSQL. Target: each call within 300 ms.

The database is `bench/seed_tickets.py`'s, as `bench/insight.py` makes it (100,000 tickets over
365 days with their orders, events and messages; SQLite: the cached
`/tmp/bench-insight-<count>.db`, copied for the run; PostgreSQL: `bench_dashboard`, created,
seeded and dropped by the run). Before the desk starts, the database is made to look like one a
desk ran all year: each submitted ticket has a card id (`bench/insight.py`'s `as_if_carded`),
each ticket with staff has the deadlines the domain plans for it (as `bot.domain.clock.plan`
does, with the default SLAs, the past ones fired: the seed writes none, and the backlog reads
them), and this week's report has gone out (else the desk draws its chart at start, while
timed).

The desk runs as a user starts it (`python -m bot`, the Bot API stand-in, a manager in
`MANAGER_IDS`, its HTTP server on a free port), warmed up with one customer. The manager's
Mini App data (signed with the bot's token, as Telegram signs it) opens a session; then each
call is made `--runs` times in turn, after one untimed round: the figures for 7 days, 30 days
and the last whole month, the backlog, and a ticket's timeline (a different ticket each time,
from the last 30 days). Timed in this process from the request until the whole answer is read,
one request at a time.

Usage:
    .venv/bin/python bench/dashboard.py                        # SQLite, then PostgreSQL
    .venv/bin/python bench/dashboard.py --only sqlite --runs 30
    .venv/bin/python bench/dashboard.py --url postgresql+asyncpg://postgres@127.0.0.1:5432/x
"""

from __future__ import annotations

import asyncio
import json
import random
import shutil
import socket
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import aiohttp
from harness import ROOT, WIDE_OPEN, bot_env, start_warm, stop
from insight import as_if_carded, database_options, on_each_database, pg_admin, seeded_sqlite

from bot.domain.insight import percentile
from bot.standin import BotApiStandIn

MANAGER = 900001
PG_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/bench_dashboard"
TARGET_MS = 300.0
SHOP_ZONE = "Asia/Shanghai"  # the bundled policy's


def init_data(token: str, user_id: int) -> str:
    """The Mini App's initData as Telegram signs it (the desk's own `sign`, which its check
    uses: the tests sign it themselves)."""
    from bot.channels.telegram.webapp import sign

    user = {"id": user_id, "first_name": "陈店长", "language_code": "zh"}
    fields = {
        "auth_date": str(int(time.time())),
        "query_id": "AAHbench",
        "user": json.dumps(user, separators=(",", ":"), ensure_ascii=False),
    }
    return urlencode({**fields, "hash": sign(fields, token)})


def last_month() -> str:
    """The last whole calendar month in the shop's zone (2026-10 in November)."""
    today = datetime.now(ZoneInfo(SHOP_ZONE)).date()
    return (today.replace(day=1) - timedelta(days=1)).strftime("%Y-%m")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- the database, as a desk that ran all year leaves it -----------------------------------------


async def as_if_planned(url: str) -> int:
    """Give each ticket with staff the deadlines the domain plans for it (default SLAs, round
    0, every day open); those already due are marked fired, as the desk's scheduler would have
    claimed them (none fires while timed)."""
    from sqlalchemy import insert, select

    from bot.domain.clock import DeadlineKind
    from bot.domain.tickets import WITH_STAFF, Status
    from storage.db import create_engine
    from storage.models import DeadlineRow, TicketRow

    now = datetime.now(UTC)
    sla = {
        DeadlineKind.FIRST_RESPONSE: timedelta(minutes=10),
        DeadlineKind.PROGRESS: timedelta(hours=2),
        DeadlineKind.RESOLUTION: timedelta(hours=24),
    }
    engine = create_engine(url)
    try:
        async with engine.begin() as conn:
            if await conn.scalar(select(DeadlineRow.id).limit(1)) is not None:
                return 0  # planned already (a database given with --url, a second run)
            tickets = await conn.execute(
                select(
                    TicketRow.id,
                    TicketRow.status,
                    TicketRow.submitted_at,
                    TicketRow.clock_started_at,
                    TicketRow.first_response_at,
                ).where(TicketRow.status.in_([s.value for s in WITH_STAFF]))
            )
            rows = []
            for ticket_id, status, submitted, started, answered in tickets:
                start = started or submitted
                kinds = [DeadlineKind.RESOLUTION]
                if answered is None:
                    kinds.append(DeadlineKind.FIRST_RESPONSE)
                if status == Status.OPEN.value:
                    kinds.append(DeadlineKind.PROGRESS)
                for kind in kinds:
                    due = start + sla[kind]
                    rows.append(
                        {
                            "ticket_id": ticket_id,
                            "kind": kind.value,
                            "round": 0,
                            "due_at": due,
                            "fired_at": due if due <= now else None,
                        }
                    )
            if rows:
                await conn.execute(insert(DeadlineRow), rows)
    finally:
        await engine.dispose()
    return len(rows)


async def report_given(url: str) -> None:
    """This week's report has gone out: the desk draws no chart at start."""
    from sqlalchemy import select

    from storage.db import create_engine
    from storage.models import NoticeRow

    now = datetime.now(UTC)
    week = now.astimezone(ZoneInfo(SHOP_ZONE)).strftime("%G-W%V")
    engine = create_engine(url)
    try:
        async with engine.begin() as conn:
            given = await conn.scalar(
                select(NoticeRow.at).where(
                    NoticeRow.kind == "weekly_report", NoticeRow.key == week
                )
            )
            if given is None:
                await conn.execute(
                    NoticeRow.__table__.insert().values(
                        kind="weekly_report", key=week, at=now, detail={}
                    )
                )
    finally:
        await engine.dispose()


async def ready(url: str) -> tuple[int, list[int]]:
    """Migrated (the desk's newest migration, its indexes), carded, planned, reported; the
    ticket count and the ids of the last 30 days' submitted tickets."""
    from sqlalchemy import func, select

    from storage.db import create_engine
    from storage.migrate import migrate
    from storage.models import TicketRow

    await asyncio.to_thread(migrate, url)
    await as_if_carded(url)
    planned = await as_if_planned(url)
    await report_given(url)
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            count = await conn.scalar(select(func.count()).select_from(TicketRow))
            since = datetime.now(UTC) - timedelta(days=30)
            ids = list(
                await conn.scalars(
                    select(TicketRow.id).where(TicketRow.submitted_at >= since).limit(5000)
                )
            )
    finally:
        await engine.dispose()
    print(f"   {count} tickets; {planned} deadlines planned for the tickets with staff")
    return count or 0, ids


# -- the calls -----------------------------------------------------------------------------------


async def timed(http: aiohttp.ClientSession, url: str, token: str) -> tuple[float, int, Any]:
    began = time.perf_counter()
    async with http.get(url, headers={"Authorization": f"Bearer {token}"}) as answer:
        body = await answer.read()
        status = answer.status
    spent = (time.perf_counter() - began) * 1000
    if status != 200:
        raise RuntimeError(f"{url}: {status} {body[:200]!r}")
    return spent, len(body), json.loads(body)


async def run_desk(url: str, runs: int, ticket_ids: list[int]) -> dict[str, dict[str, Any]]:
    api = BotApiStandIn()
    await api.start()
    port = free_port()
    month = last_month()
    calls = {
        "figures 7d": "/dashboard/api/figures?period=7d",
        "figures 30d": "/dashboard/api/figures?period=30d",
        f"figures {month}": f"/dashboard/api/figures?period={month}",
        "backlog": "/dashboard/api/backlog",
        "ticket": "/dashboard/api/tickets/{reference}",
    }
    results: dict[str, dict[str, Any]] = {
        name: {"ms": [], "bytes": 0, "note": ""} for name in calls
    }
    pick = random.Random(17)
    with tempfile.TemporaryDirectory() as folder:
        env = bot_env(
            api,
            folder,
            **WIDE_OPEN,
            DATABASE_URL=url,
            MANAGER_IDS=str(MANAGER),
            HTTP_PORT=str(port),
        )
        proc = await start_warm(api, [sys.executable, "-m", "bot"], folder, env)
        base = f"http://127.0.0.1:{port}"
        try:
            async with aiohttp.ClientSession() as http:
                async with http.post(
                    f"{base}/dashboard/api/session", data=init_data(api.token, MANAGER).encode()
                ) as answer:
                    if answer.status != 200:
                        raise RuntimeError(f"no session: {answer.status} {await answer.text()}")
                    token = (await answer.json())["token"]
                for round_ in range(runs + 1):  # round 0: untimed (the caches fill)
                    for name, path in calls.items():
                        reference = f"T-{pick.choice(ticket_ids):06d}"
                        spent, size, data = await timed(
                            http, base + path.format(reference=reference), token
                        )
                        if round_ == 0:
                            results[name]["cold_ms"] = spent
                            continue
                        results[name]["ms"].append(spent)
                        results[name]["bytes"] = max(results[name]["bytes"], size)
                        if name.startswith("figures"):
                            results[name]["note"] = (
                                f"{data['total']} tickets, {len(data['heat']['weeks'])} weeks"
                            )
                        elif name == "backlog":
                            results[name]["note"] = f"{len(data['tickets'])} tickets"
                        else:
                            results[name].setdefault("entries", []).append(len(data["entries"]))
        finally:
            stop(proc)
    await api.stop()
    if results["ticket"].get("entries"):
        entries = results["ticket"].pop("entries")
        results["ticket"]["note"] = f"{min(entries)}-{max(entries)} entries"
    return results


def report(name: str, results: dict[str, dict[str, Any]]) -> None:
    print(f"== {name}")
    for call, found in results.items():
        ms = found["ms"]
        p95 = percentile(ms, 95) or 0.0
        verdict = "met" if p95 <= TARGET_MS else "MISSED"
        print(
            f"   {call:<16} median {statistics.median(ms):6.1f} ms  p95 {p95:6.1f} ms  "
            f"max {max(ms):6.1f} ms  (first, untimed {found.get('cold_ms', 0):.0f} ms)  "
            f"{found['bytes'] / 1024:.0f} KB, {found['note']}  [{TARGET_MS:g} ms: {verdict}]"
        )


# -- the databases -------------------------------------------------------------------------------


async def bench_sqlite(count: int, runs: int) -> None:
    cache = await seeded_sqlite(count)
    with tempfile.TemporaryDirectory() as folder:
        copy = Path(folder) / "desk.db"
        shutil.copyfile(cache, copy)
        url = f"sqlite+aiosqlite:///{copy}"
        held, ids = await ready(url)
        size = copy.stat().st_size / 2**20
        results = await run_desk(url, runs, ids)
    report(f"SQLite ({held} tickets, file {size:.0f} MB)", results)


async def bench_postgresql(url: str, count: int, runs: int) -> None:
    from sqlalchemy.engine import make_url

    from bench.seed_tickets import seed

    name = make_url(url).database
    try:
        await pg_admin(url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await pg_admin(url, f'CREATE DATABASE "{name}"')
    except Exception as exc:  # any failure to reach the server or to create the database
        print(f"== PostgreSQL skipped: {url} not reachable ({type(exc).__name__}: {exc})")
        return
    try:
        done = await seed(url, count)
        print(f"   seeded {name}: {done.tickets} tickets in {done.seconds:.0f} s")
        held, ids = await ready(url)
        results = await run_desk(url, runs, ids)
    finally:
        await pg_admin(url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    report(f"PostgreSQL ({held} tickets)", results)


async def bench_url(url: str, count: int, runs: int) -> None:
    """A database given as is; seeded with `count` tickets only if it holds none."""
    from sqlalchemy import func, select

    from bench.seed_tickets import seed
    from storage.db import create_engine
    from storage.migrate import migrate
    from storage.models import TicketRow

    await asyncio.to_thread(migrate, url)
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            held = await conn.scalar(select(func.count()).select_from(TicketRow))
    finally:
        await engine.dispose()
    if not held:
        await seed(url, count)
    held, ids = await ready(url)
    report(f"{url} ({held} tickets)", await run_desk(url, runs, ids))


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    options = database_options(__doc__, PG_URL, 30, "timed runs of each call")
    asyncio.run(
        on_each_database(
            options, "timed runs of each call", bench_url, bench_sqlite, bench_postgresql
        )
    )
