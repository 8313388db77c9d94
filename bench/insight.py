"""The manager's insight commands over a year of complaints (issue 9): `/stats 30d` and
`/export 30d` on a database of 100,000 tickets, on SQLite and on PostgreSQL.

The database is seeded by `bench/seed_tickets.py` (100,000 tickets over 365 days, with their
orders, events and messages). SQLite: seeded once into `/tmp/bench-insight-<count>.db` and
copied into a temporary folder for each run (the cache is reused while it exists; delete it to
seed anew). PostgreSQL: the database `bench_insight` is created, seeded and dropped by the run
(skipped, with a line saying so, when the server does not answer).

Each submitted ticket is given a card id before the bot starts (as on a desk that ran all
year; the seed writes none, and the bot's catch-up would post thousands of cards while timed).
The bot runs as a user starts it (`python -m bot`, the Bot API stand-in, a manager in
`MANAGER_IDS`), warmed up with one customer. The manager writes `/stats 30d` three times, then
`/export 30d` three times, in the staff group. Each is timed from the moment the command is
available to getUpdates until the stand-in receives the last of the answer's parts (/stats:
the text and the chart; /export: the text, the .xlsx and the .csv). Memory: the bot's resident
memory (VmRSS) at idle before the first command, and its peak (VmHWM) during each command
(the peak is reset before each command through /proc/<pid>/clear_refs, where the kernel
allows it; otherwise it is the peak since start). Targets: 2 s for /stats, 5 s for /export.

Usage:
    .venv/bin/python bench/insight.py                      # SQLite, then PostgreSQL
    .venv/bin/python bench/insight.py --only sqlite --count 100000 --runs 3
    .venv/bin/python bench/insight.py --url postgresql+asyncpg://postgres@127.0.0.1:5432/x
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import os
import platform
import re
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from harness import ROOT, STAFF, WIDE_OPEN, bot_env, memory_mb, start_warm, stop

from bot.standin import BotApiStandIn, Sent

MANAGER = 900001
PG_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/bench_insight"
TARGETS = {"/stats 30d": 2.0, "/export 30d": 5.0}


@dataclass
class Answer:
    seconds: float
    peak_mb: float
    rss_after_mb: float
    tickets: int | None
    files: list[tuple[str, int]] = field(default_factory=list)


def reset_peak(pid: int) -> bool:
    """Reset the process's VmHWM to its VmRSS (Linux 4.0+: `5` to clear_refs)."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        return False
    return True


async def ask(api: BotApiStandIn, pid: int, command: str) -> Answer:
    """The manager writes `command` in the staff group; until every part of the answer is in."""
    manager = api.person(MANAGER, "陈店长", "zh")
    mark, uploaded = len(api.sent), len(api.uploads)
    reset_peak(pid)
    asked = time.monotonic()
    manager.say_in_group(STAFF, command)
    ours = lambda s: s.chat_id == STAFF  # noqa: E731
    if command.startswith("/stats"):
        head = await api.wait_for(lambda s: ours(s) and "投诉统计" in s.text, 120, mark)
        tail = [await api.wait_for(lambda s: ours(s) and s.kind == "photo", 120, mark)]
        found = re.search(r"共 (\d+) 单投诉", head.text)
        tickets = int(found.group(1)) if found else None
    else:
        head = await api.wait_for(lambda s: ours(s) and "投诉记录" in s.text, 120, mark)

        def documents() -> list[Sent]:
            return [s for s in api.sent[mark:] if ours(s) and s.kind == "document"]

        await api.until(lambda: len(documents()) >= 2, 120)
        tail = documents()[:2]
        tickets = None
    finished = max(s.at for s in [head, *tail])
    rss, peak = memory_mb(pid)
    files = [(name, len(data)) for name, data in api.uploads[uploaded:]]
    if tickets is None:
        table = next((data for name, data in api.uploads[uploaded:] if name.endswith(".csv")), b"")
        tickets = max(0, len(list(csv.reader(io.StringIO(table.decode("utf-8-sig"))))) - 1)
    return Answer(finished - asked, peak, rss, tickets, files)


async def run_bot(url: str, runs: int) -> tuple[float, dict[str, list[Answer]], bool]:
    api = BotApiStandIn()
    await api.start()
    api.add_group(STAFF, "staff")
    answers: dict[str, list[Answer]] = {command: [] for command in TARGETS}
    with tempfile.TemporaryDirectory() as folder:
        env = bot_env(api, folder, **WIDE_OPEN, DATABASE_URL=url, MANAGER_IDS=str(MANAGER))
        proc = await start_warm(api, [sys.executable, "-m", "bot"], folder, env)
        try:
            idle, _ = memory_mb(proc.pid)
            resettable = reset_peak(proc.pid)
            for command in TARGETS:
                for _ in range(runs):
                    answers[command].append(await ask(api, proc.pid, command))
        finally:
            stop(proc)
    await api.stop()
    return idle, answers, resettable


def seconds(values: list[float]) -> str:
    return (
        f"min {min(values):.2f} s, median {statistics.median(values):.2f} s, "
        f"max {max(values):.2f} s"
    )


def report(name: str, idle: float, answers: dict[str, list[Answer]], resettable: bool) -> None:
    print(f"== {name}")
    print(f"   bot idle before the first command: VmRSS {idle:.1f} MB")
    for command, done in answers.items():
        target = TARGETS[command]
        worst = max(a.seconds for a in done)
        verdict = "met" if worst <= target else "missed"
        print(
            f"   {command}: {seconds([a.seconds for a in done])} (target {target:g} s: {verdict})"
        )
        print(f"      tickets in the 30 days: {', '.join(str(a.tickets) for a in done)}")
        files = ", ".join(f"{n} {size / 1024:.0f} KB" for n, size in done[-1].files)
        print(f"      files (last run): {files}")
        peaks = ", ".join(f"{a.peak_mb:.1f}" for a in done)
        what = "peak during each (VmHWM)" if resettable else "peak since start (VmHWM)"
        print(f"      {what}: {peaks} MB; VmRSS after the last {done[-1].rss_after_mb:.1f} MB")


async def as_if_carded(url: str) -> int:
    """Give each submitted ticket a card id, as a desk that ran all year would have: the seed
    writes none, and the bot would otherwise post thousands of cards at start (its catch-up)
    while it is timed."""
    from sqlalchemy import update

    from storage.db import create_engine
    from storage.models import TicketRow

    engine = create_engine(url)
    try:
        async with engine.begin() as conn:
            done = await conn.execute(
                update(TicketRow)
                .where(TicketRow.card_message_id.is_(None), TicketRow.submitted_at.is_not(None))
                .values(card_message_id=TicketRow.id)
            )
    finally:
        await engine.dispose()
    return done.rowcount


async def seeded_sqlite(count: int) -> str:
    """The cached SQLite file with `count` tickets, seeded now if it is not there."""
    from bench.seed_tickets import seed

    cache = Path(tempfile.gettempdir()) / f"bench-insight-{count}.db"
    if cache.exists():
        made = datetime.fromtimestamp(cache.stat().st_mtime, UTC)
        print(f"   seeded database: {cache} (cached, seeded {made:%Y-%m-%d %H:%M} UTC)")
        return str(cache)
    part = cache.with_suffix(".part")
    part.unlink(missing_ok=True)
    done = await seed(f"sqlite+aiosqlite:///{part}", count)
    part.rename(cache)
    print(
        f"   seeded {cache}: {done.tickets} tickets, {done.events} events in {done.seconds:.0f} s"
    )
    return str(cache)


async def bench_sqlite(count: int, runs: int) -> None:
    cache = await seeded_sqlite(count)
    with tempfile.TemporaryDirectory() as folder:
        copy = Path(folder) / "desk.db"
        shutil.copyfile(cache, copy)  # the warm-up customer is written to the copy
        size = copy.stat().st_size / 2**20
        await as_if_carded(f"sqlite+aiosqlite:///{copy}")
        result = await run_bot(f"sqlite+aiosqlite:///{copy}", runs)
    report(f"SQLite ({count} tickets, file {size:.0f} MB)", *result)


async def pg_admin(url: str, sql: str) -> None:
    import asyncpg
    from sqlalchemy.engine import make_url

    where = make_url(url)
    conn = await asyncpg.connect(
        host=where.host,
        port=where.port or 5432,
        user=where.username,
        password=where.password,
        database="postgres",
        timeout=10,
    )
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


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
        print(
            f"   seeded {name}: {done.tickets} tickets, {done.events} events "
            f"in {done.seconds:.0f} s"
        )
        await as_if_carded(url)
        result = await run_bot(url, runs)
    finally:
        await pg_admin(url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    report(f"PostgreSQL ({count} tickets)", *result)


async def bench_url(url: str, count: int, runs: int) -> None:
    """A database given as is; seeded with `count` tickets only if it holds none."""
    from sqlalchemy import func, select

    from bench.seed_tickets import seed
    from storage.db import create_engine
    from storage.migrate import migrate

    await asyncio.to_thread(migrate, url)
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            from storage.models import TicketRow

            held = await conn.scalar(select(func.count()).select_from(TicketRow))
    finally:
        await engine.dispose()
    if not held:
        done = await seed(url, count)
        held = done.tickets
        await as_if_carded(url)
    report(f"{url} ({held} tickets)", *(await run_bot(url, runs)))


Bench = Callable[..., Awaitable[None]]


def database_options(doc: str, pg_url: str, runs: int, runs_help: str) -> argparse.Namespace:
    """The options every database bench takes: how many tickets, how many runs, which
    databases (SQLite, PostgreSQL, or one given as it is)."""
    parser = argparse.ArgumentParser(
        description=doc.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--count", type=int, default=100_000, help="tickets to seed")
    parser.add_argument("--runs", type=int, default=runs, help=runs_help)
    parser.add_argument("--only", choices=["sqlite", "postgresql"])
    parser.add_argument("--pg", default=pg_url, help="the PostgreSQL database to create and drop")
    parser.add_argument("--url", help="bench this database as is (seeded only if empty)")
    return parser.parse_args()


async def on_each_database(
    args: argparse.Namespace, runs_of: str, url: Bench, sqlite: Bench, postgresql: Bench
) -> None:
    """Say what machine this is, then run the bench on the databases the options name."""
    print(
        f"machine: {platform.machine()} {os.cpu_count()} cores, Python "
        f"{platform.python_version()}; {args.runs} {runs_of}"
    )
    if args.url:
        await url(args.url, args.count, args.runs)
        return
    if args.only in (None, "sqlite"):
        await sqlite(args.count, args.runs)
    if args.only in (None, "postgresql"):
        await postgresql(args.pg, args.count, args.runs)


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    options = database_options(__doc__, PG_URL, 3, "times each command is asked")
    asyncio.run(
        on_each_database(
            options, "runs of each command", bench_url, bench_sqlite, bench_postgresql
        )
    )
