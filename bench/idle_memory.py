"""Idle memory against the number of customers (issue 13, item 10): the bot's resident memory
once it has started and answered one customer, on an empty database and on one with 100,000
tickets, and where the difference is (tracemalloc).

The 100,000 tickets are `bench/seed_tickets.py`'s (over 365 days, with orders, events and
messages), each submitted one given a card id as `bench/insight.py` does (a desk that ran all
year; otherwise the catch-up would post thousands of cards at start). The SQLite file is seeded
once into `/tmp/bench-insight-<count>.db` (the cache `bench/insight.py` uses) and copied for
each run. Three databases:

- empty (the migrations run at start);
- the 100,000 tickets: the bundled policy's weekly report is due (from Monday 09:00, the shop's
  time, until it has gone), so the bot sends it at start, with its chart; the run waits until
  the chart has reached the staff group (a barrier) before the idle time;
- the same, this week's report already sent (a desk restarted in the middle of the week).

For each the bot is started twice as a user starts it (`python -m bot`, the Bot API stand-in,
`bench/harness.py`, a new copy of the database each time), warmed up with one customer, and
left idle `--idle` seconds:

1. plain: its VmRSS (resident now) and VmHWM (peak since start) from /proc;
2. traced: the same bot under `tracemalloc` (`--frames` frames a trace), traced from the
   moment its modules are imported (the imports are the same on every database); at idle it
   dumps a snapshot, with tracemalloc's count of the Python memory allocated since then and
   still in use, and its peak. tracemalloc's bookkeeping makes this process larger: its RSS
   is not the figure.

Printed for the two seeded databases against the empty one: the RSS difference, the modules
only that bot imported (by package), how much of the Python memory difference the imports
made, and the `--top` largest of the other differences by call path (the innermost frame, and
the desk's own frame that led there). Memory that RSS shows and tracemalloc does not is C
memory (matplotlib's and FreeType's buffers, SQLite's page cache) or freed Python memory the
allocator has not given back.

Usage:
    .venv/bin/python bench/idle_memory.py [--count 100000] [--idle 5] [--frames 12] [--top 12]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import signal
import sys
import tempfile
import time
import tracemalloc
from dataclasses import dataclass
from pathlib import Path

from harness import ROOT, STAFF, bot_env, memory_mb, start_warm, stop

from bot.standin import BotApiStandIn

BOT = [sys.executable, "-m", "bot"]


@dataclass
class Idle:
    rss_mb: float
    hwm_mb: float


@dataclass
class Traced:
    snapshot: tracemalloc.Snapshot
    current_mb: float
    peak_mb: float
    rss_mb: float
    modules: set[str]


# The child of a traced run (`python -c`, so that nothing of the harness is in it):
# `python -m bot`, traced from the moment the desk's modules are imported (the imports are the
# same on both databases, and tracing them would take most of a minute); on SIGUSR1 it writes
# a snapshot to argv[1] and tracemalloc's current and peak to argv[1].json.
TRACED_CHILD = """
import json, os, signal, sys, tracemalloc
import bot.app, bot.__main__, storage.migrate
tracemalloc.start(int(sys.argv[2]))
path = sys.argv[1]

def dump(_signum, _frame):
    current, peak = tracemalloc.get_traced_memory()
    snapshot = tracemalloc.take_snapshot().filter_traces(
        [tracemalloc.Filter(False, tracemalloc.__file__)]
    )
    snapshot.dump(path + ".part")
    with open(path + ".json", "w") as out:
        json.dump({"current": current, "peak": peak, "modules": sorted(sys.modules)}, out)
    os.replace(path + ".part", path)  # the parent waits for this name

signal.signal(signal.SIGUSR1, dump)
from bot.__main__ import main
sys.exit(main([]))
"""


async def idle_bot(
    url: str, idle: float, traced: tuple[str, int] | None, report: bool
) -> Idle | Traced:
    """Start the bot on `url`, warm it up, (with `report`) wait until the week's report with
    its chart has reached the staff group, leave it idle, and read its memory."""
    api = BotApiStandIn()
    await api.start()
    api.add_group(STAFF, "staff")
    with tempfile.TemporaryDirectory() as folder:
        env = bot_env(api, folder, DATABASE_URL=url)
        command = BOT
        if traced is not None:
            path, frames = traced
            command = [sys.executable, "-c", TRACED_CHILD, path, str(frames)]
        proc = await start_warm(api, command, folder, env)
        try:
            if report:  # under tracemalloc the chart takes long: a barrier, not the idle time
                await api.wait_for(lambda s: s.chat_id == STAFF and s.kind == "photo", 300)
            await asyncio.sleep(idle)  # idle is the point: nothing to wait on
            rss, hwm = memory_mb(proc.pid)
            if traced is None:
                return Idle(rss, hwm)
            proc.send_signal(signal.SIGUSR1)
            return await asyncio.to_thread(read_dump, path, rss)
        finally:
            stop(proc)
            await api.stop()


def read_dump(path: str, rss: float, timeout: float = 120.0) -> Traced:
    """The traced child's snapshot, once it has written it."""
    deadline = time.monotonic() + timeout
    while not Path(path).exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"no snapshot in {path} within {timeout:g} s")
        time.sleep(0.1)
    used = json.loads(Path(path + ".json").read_text())
    return Traced(
        tracemalloc.Snapshot.load(path),
        used["current"] / 2**20,
        used["peak"] / 2**20,
        rss,
        set(used["modules"]),
    )


async def seeded_file(count: int, folder: str) -> Path:
    """A copy of the cached seeded SQLite file, each submitted ticket with a card id."""
    from insight import as_if_carded, seeded_sqlite

    carded = Path(folder) / "seeded.db"
    shutil.copyfile(await seeded_sqlite(count), carded)
    await as_if_carded(f"sqlite+aiosqlite:///{carded}")
    return carded


def report_due() -> bool:
    """Whether the bundled policy's weekly report is due now (the bot sends it at start)."""
    from datetime import UTC, datetime

    from bot.config import BUNDLED_POLICY
    from bot.domain.clock import weekly_due
    from bot.policy import load_policy

    policy = load_policy(BUNDLED_POLICY)
    if policy.weekly_report is None:
        return False
    weekday, at = policy.weekly_report
    now = datetime.now(UTC)
    return now >= weekly_due(now, policy.timezone, weekday, at)


async def report_given(original: Path, folder: str) -> Path:
    """A copy of `original` on which this week's report has gone out already (a desk restarted
    in the middle of the week): the bot draws no chart at start."""
    from datetime import UTC, datetime
    from zoneinfo import ZoneInfo

    from sqlalchemy import insert

    from bot.config import BUNDLED_POLICY
    from bot.policy import load_policy
    from storage.db import create_engine
    from storage.models import NoticeRow

    copy = Path(folder) / "seeded-reported.db"
    shutil.copyfile(original, copy)
    now = datetime.now(UTC)
    week = now.astimezone(ZoneInfo(load_policy(BUNDLED_POLICY).timezone)).strftime("%G-W%V")
    engine = create_engine(f"sqlite+aiosqlite:///{copy}")
    try:
        async with engine.begin() as conn:
            await conn.execute(
                insert(NoticeRow).values(kind="weekly_report", key=week, at=now, detail={})
            )
    finally:
        await engine.dispose()
    return copy


def fresh(folder: str, name: str, original: Path | None) -> str:
    """A database for one run (each run's stand-in counts update ids from 1 again, and the
    inbox ignores an id it has seen): a new file, or a new copy of `original`."""
    path = Path(folder) / f"{name}.db"
    path.unlink(missing_ok=True)
    if original is not None:
        shutil.copyfile(original, path)
    return f"sqlite+aiosqlite:///{path}"


def short(filename: str) -> str:
    """A file's name from its package on (site-packages and the desk's folder left out)."""
    for prefix in sorted({str(ROOT), *(p for p in sys.path if p)}, key=len, reverse=True):
        if filename.startswith(prefix + "/"):
            return filename[len(prefix) + 1 :]
    return filename


def top_packages(modules: set[str]) -> dict[str, int]:
    """Modules by top-level package: how many of each."""
    counted: dict[str, int] = {}
    for name in modules:
        top = name.split(".")[0]
        counted[top] = counted.get(top, 0) + 1
    return dict(sorted(counted.items(), key=lambda item: -item[1]))


def imported(trace: tracemalloc.Trace | tracemalloc.Statistic, packages: set[str]) -> bool:
    """Whether an allocation was made by an import, or by a package only one side imported."""
    for frame in trace.traceback:
        name = short(frame.filename)
        if name.startswith("<frozen importlib") or name.split("/")[0] in packages:
            return True
    return False


def report_diff(big: Traced, small: Traced, top: int) -> None:
    """What the bigger bot holds that the smaller does not: the modules only it imported, and
    tracemalloc's differences, split into the imports' and the rest."""
    extra = big.modules - small.modules
    packages = {name.split(".")[0] for name in extra} - {"bot", "handlers", "storage"}
    counted = ", ".join(f"{name} {count}" for name, count in top_packages(extra).items())
    print(f"     modules only it imported: {len(extra)} ({counted or 'none'})")
    diffs = big.snapshot.compare_to(small.snapshot, "traceback")
    by_import = sum(d.size_diff for d in diffs if imported(d, packages))
    print(
        f"     Python memory in use: {big.current_mb - small.current_mb:+.1f} MB, of which "
        f"made by imports (and by the packages only it imported) {by_import / 2**20:+.1f} MB"
    )
    rest = [d for d in diffs if not imported(d, packages)]
    rest.sort(key=lambda d: -abs(d.size_diff))
    print(f"     the rest, the {top} largest differences by call path (innermost frame first):")
    for diff in rest[:top]:
        frames = list(diff.traceback)[::-1]
        ours = next((f for f in frames if f.filename.startswith(str(ROOT))), None)
        inner = f"{short(frames[0].filename)}:{frames[0].lineno}"
        via = f" <- {short(ours.filename)}:{ours.lineno}" if ours and ours != frames[0] else ""
        size = f"{diff.size_diff / 1024:+8.0f} KB {diff.count_diff:+7d} blocks"
        print(f"       {size}  {inner}{via}")


async def main(args: argparse.Namespace) -> None:
    print(
        f"machine: {platform.machine()} {os.cpu_count()} cores, Python "
        f"{platform.python_version()}; idle {args.idle:g} s after the warm-up"
    )
    with tempfile.TemporaryDirectory() as folder:
        seeded = await seeded_file(args.count, folder)
        # each case: the database to copy (none: empty), and whether the week's report is due
        cases: dict[str, tuple[Path | None, bool]] = {
            "empty database": (None, False),
            f"{args.count:,} tickets": (seeded, report_due()),
            f"{args.count:,} tickets, this week's report already sent": (
                await report_given(seeded, folder),
                False,
            ),
        }
        plain: dict[str, Idle] = {}
        traced: dict[str, Traced] = {}
        for number, (name, (original, report)) in enumerate(cases.items()):
            found = await idle_bot(fresh(folder, "run", original), args.idle, None, report)
            assert isinstance(found, Idle)
            plain[name] = found
            if args.frames:
                snap = f"{folder}/{number}.snapshot"
                url = fresh(folder, "run", original)
                got = await idle_bot(url, args.idle, (snap, args.frames), report)
                assert isinstance(got, Traced)
                traced[name] = got
    print("== SQLite, idle after start and one customer")
    if not report_due():
        print("   (this week's report is not due yet: the second case draws no chart either)")
    empty = next(iter(plain))
    for name, idle in plain.items():
        print(f"   {name}: VmRSS {idle.rss_mb:.1f} MB (VmHWM {idle.hwm_mb:.1f} MB)", end="")
        if name != empty:
            print(f", {idle.rss_mb - plain[empty].rss_mb:+.1f} MB over the empty database")
        else:
            print()
        if name in traced:
            t = traced[name]
            print(
                f"     traced: Python memory allocated since the import and in use "
                f"{t.current_mb:.1f} MB (peak {t.peak_mb:.1f} MB); RSS under tracemalloc "
                f"{t.rss_mb:.1f} MB"
            )
            if name != empty:
                report_diff(t, traced[empty], args.top)


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--count", type=int, default=100_000, help="tickets to seed")
    parser.add_argument("--idle", type=float, default=5.0, help="seconds idle before reading")
    parser.add_argument("--frames", type=int, default=12, help="tracemalloc frames; 0: no trace")
    parser.add_argument("--top", type=int, default=12, help="differences to show")
    asyncio.run(main(parser.parse_args()))
