"""kill -9 halfway through a burst (issue 13, item 3): how many first answers does a crash
repeat, and does it lose any?

The Bot API stand-in, and the bot as a user starts it (`python -m bot`, its default settings:
Telegram's limits kept by its own flood control; SQLite in a temporary folder, or
`--database URL`; `--wide-open`: its flood control opened wide, so that many sends go at
once), warmed up with one customer. Then `--customers` newcomers (default 60) write at the
same moment. Each send takes `--latency` seconds at the stand-in (default 0.1 s, a round trip
to Telegram), so that sends are in flight when the bot dies. Once `--kill-at`
of them (default half) have their first answer, the bot is killed with SIGKILL; it is started
again on the same database, and the run waits until every customer has been answered and the
desk has nothing left to do (every stored update handled, nothing left in the outbox: read
from the database, a barrier, not a sleep).

Counted, per run:
- answered before the kill: customers whose first answer had reached the stand-in;
- in flight at the kill: first answers whose request had reached the stand-in (it may have
  been delivered, or be on its way back) but whose result the desk had not recorded (the
  outbox row not marked sent once the process was dead): what a restart may send again;
- repeats: customers who got their first answer more than once, and the extra copies;
- lost: customers never answered (within `--timeout` seconds of the restart).
The issue's target: a kill repeats at most the sends in flight at that instant, one a chat
(every repeated customer is one whose answer was in flight, and got at most two).

Usage:
    .venv/bin/python bench/kill_burst.py [--runs 3] [--customers 60] [--latency 0.1] \\
        [--wide-open]
    .venv/bin/python bench/kill_burst.py --database postgresql+asyncpg://postgres@127.0.0.1/x
        (the database is created for each run and dropped after it)
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from subprocess import Popen

from harness import ROOT, STAFF, WIDE_OPEN, bot_env, stop

from bot.standin import BotApiStandIn, Sent

BOT = [sys.executable, "-m", "bot"]
WELCOME = "非常抱歉给您带来不好的体验"  # the first answer's opening (customer/welcome.html)
FIRST_ID = 7000


@dataclass
class Run:
    customers: int
    answered_at_kill: int = 0
    arrived_at_kill: int = 0  # first answers whose request had reached the stand-in
    recorded_at_kill: int = 0  # first answers recorded as sent in the database at the kill
    in_flight: set[int] = field(default_factory=set)  # arrived, not recorded
    answered_unrecorded: int = 0  # of those: answered by the stand-in before the kill
    copies: Counter[int] = field(default_factory=Counter)  # first answers each customer got
    left_from_before: int = 0  # updates the restarted bot handled from the inbox
    seconds_to_kill: float = 0.0  # from the burst until the kill
    seconds_to_all: float = 0.0  # from the restart until every customer was answered
    problems: list[str] = field(default_factory=list)

    @property
    def repeated(self) -> set[int]:
        return {chat for chat, count in self.copies.items() if count > 1}

    @property
    def extra(self) -> int:
        return sum(count - 1 for count in self.copies.values() if count > 1)

    @property
    def lost(self) -> int:
        return sum(1 for n in range(self.customers) if self.copies[FIRST_ID + n] == 0)

    @property
    def within_target(self) -> bool:
        return self.repeated <= self.in_flight and all(
            self.copies[chat] <= 2 for chat in self.repeated
        )


def is_first(sent: Sent) -> bool:
    return WELCOME in sent.text


def is_welcome(method: str, params: dict[str, object]) -> bool:
    """A request that sends one of the burst's first answers."""
    if method != "sendMessage" or WELCOME not in str(params.get("text") or ""):
        return False
    return int(str(params.get("chat_id"))) >= FIRST_ID


async def desk_state(url: str) -> tuple[set[int], int, int]:
    """From the database: the burst's customers whose first answer is recorded as sent, the stored
    updates not yet handled, and the outbox rows not yet sent."""
    from sqlalchemy import func, select

    from storage.db import create_engine
    from storage.models import InboxRow, OutboxRow
    from storage.outbox import GREETING

    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            recorded = await conn.scalars(
                select(OutboxRow.recipient).where(
                    OutboxRow.kind == GREETING, OutboxRow.outcome == "sent"
                )
            )
            unhandled = await conn.scalar(
                select(func.count()).select_from(InboxRow).where(InboxRow.handled_at.is_(None))
            )
            unsent = await conn.scalar(
                select(func.count()).select_from(OutboxRow).where(OutboxRow.sent_at.is_(None))
            )
    finally:
        await engine.dispose()
    ours = {int(r) for r in recorded if int(r) >= FIRST_ID}  # not the warm-up's
    return ours, int(unhandled or 0), int(unsent or 0)


async def settled(url: str, timeout: float) -> None:
    """Until every stored update is handled and the outbox is empty (the database says)."""
    deadline = time.monotonic() + timeout
    while True:
        _, unhandled, unsent = await desk_state(url)
        if not unhandled and not unsent:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"{unhandled} updates unhandled, {unsent} rows unsent")
        await asyncio.sleep(0.2)  # polling the database: the bot is another process


async def one_run(url: str, folder: str, args: argparse.Namespace) -> Run:
    api = BotApiStandIn()
    await api.start()
    api.add_group(STAFF, "staff")
    run = Run(args.customers)
    log = Path(folder) / "bot.log"
    opened = WIDE_OPEN if args.wide_open else {}
    env = bot_env(api, folder, **opened, DATABASE_URL=url, LOG_LEVEL="INFO")
    bots: list[Popen[bytes]] = []
    try:
        proc = await start_logged(api, env, folder, log, bots)
        api.person(1, "warm-up", "zh").send("你好")
        await api.wait_for(lambda s: s.chat_id == 1, timeout=60)
        people = [api.person(FIRST_ID + n, f"客户{n}", "zh") for n in range(args.customers)]
        api.latency = args.latency
        for person in people:
            person.send(f"你好,我是第{person.id}号客户,花有问题")
        burst = time.monotonic()
        kill_at = args.kill_at or args.customers // 2

        def answered() -> set[int]:
            return {s.chat_id for s in api.sent if s.chat_id >= FIRST_ID and is_first(s)}

        await api.until(lambda: len(answered()) >= kill_at, timeout=60)
        proc.send_signal(signal.SIGKILL)  # at once: no await between the barrier and the kill
        arrived = {
            int(str(p["chat_id"])) for m, p in list(api.calls) if is_welcome(m, p)
        }  # requests that had reached the stand-in at the kill
        answered_chats = answered()
        run.answered_at_kill = len(answered_chats)
        run.seconds_to_kill = time.monotonic() - burst
        proc.wait(10)
        recorded, _, _ = await desk_state(url)
        run.arrived_at_kill = len(arrived)
        run.recorded_at_kill = len(recorded)
        run.in_flight = arrived - recorded
        run.answered_unrecorded = len(run.in_flight & answered_chats)
        api.latency = 0.0
        restarted = time.monotonic()
        proc = await start_logged(api, env, folder, log, bots)
        everyone = {p.id for p in people}
        try:
            await api.until(lambda: everyone <= answered(), timeout=args.timeout)
            run.seconds_to_all = time.monotonic() - restarted
            await settled(url, args.timeout)
        except TimeoutError as exc:
            run.problems.append(f"after the restart: {exc}")
        stop(proc)
        for sent in api.sent:
            if sent.chat_id >= FIRST_ID and is_first(sent):
                run.copies[sent.chat_id] += 1
        for person in people:
            run.copies.setdefault(person.id, 0)
        text = log.read_text(errors="replace")
        for line in text.splitlines():
            if "updates left from before the restart" in line:
                run.left_from_before = int(line.split("Handling ")[1].split()[0])
            if " ERROR " in line or "Traceback" in line:
                run.problems.append(line.strip()[:200])
    finally:
        for bot in bots:
            if bot.poll() is None:
                stop(bot)
        await api.stop()
    return run


async def start_logged(
    api: BotApiStandIn, env: dict[str, str], folder: str, log: Path, bots: list[Popen[bytes]]
) -> Popen[bytes]:
    """Start the bot, its output appended to `log` (and the process to `bots`); return once
    its first getUpdates reaches the stand-in (a barrier; raises if it exits first)."""
    polls = sum(1 for method, _ in api.calls if method == "getUpdates")
    with log.open("ab") as out:
        proc = Popen(BOT, cwd=folder, env=env, stdout=out, stderr=subprocess.STDOUT)
    bots.append(proc)
    polled = asyncio.ensure_future(api.wait_calls("getUpdates", polls + 1, timeout=120))
    while not polled.done():
        if proc.poll() is not None:
            polled.cancel()
            raise RuntimeError(f"the bot exited with {proc.returncode}: see {log}")
        await asyncio.wait({polled}, timeout=0.1)
    polled.result()
    return proc


async def pg_database(url: str, action: str) -> None:
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
        if action == "create":
            await conn.execute(f'DROP DATABASE IF EXISTS "{where.database}" WITH (FORCE)')
            await conn.execute(f'CREATE DATABASE "{where.database}"')
        else:
            await conn.execute(f'DROP DATABASE IF EXISTS "{where.database}" WITH (FORCE)')
    finally:
        await conn.close()


def report(number: int, run: Run) -> None:
    print(
        f"run {number}: answered before the kill {run.answered_at_kill} / {run.customers} "
        f"(killed {run.seconds_to_kill:.2f} s after the burst); "
        f"first answers arrived at the stand-in {run.arrived_at_kill}, recorded sent "
        f"{run.recorded_at_kill}: in flight {len(run.in_flight)} ({run.answered_unrecorded} of "
        f"them answered, the result not yet recorded)"
    )
    verdict = "within the target" if run.within_target else "MISSED the target"
    print(
        f"   after the restart ({run.left_from_before} updates left in the inbox; all answered "
        f"{run.seconds_to_all:.2f} s after it): repeats {len(run.repeated)} customers "
        f"({run.extra} extra copies), lost {run.lost}: {verdict}"
    )
    outside = run.repeated - run.in_flight
    if outside:
        print(f"   repeated but not in flight at the kill: {sorted(outside)}")
    for problem in run.problems:
        print(f"   ! {problem}")


async def main(args: argparse.Namespace) -> None:
    where = args.database or "SQLite (a file in a temporary folder)"
    print(
        f"machine: {platform.machine()} {os.cpu_count()} cores, Python "
        f"{platform.python_version()}; {where}; {args.customers} customers, kill at "
        f"{args.kill_at or args.customers // 2} answered, each send {args.latency:g} s, "
        f"the bot's flood control {'opened wide' if args.wide_open else 'as by default'}"
    )
    for number in range(1, args.runs + 1):
        with tempfile.TemporaryDirectory() as folder:
            url = args.database or f"sqlite+aiosqlite:///{folder}/desk.db"
            if args.database:
                await pg_database(url, "create")
            try:
                run = await one_run(url, folder, args)
            finally:
                if args.database:
                    await pg_database(url, "drop")
        report(number, run)


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    # a request the bot was still writing when it was killed: expected, not worth a traceback
    logging.getLogger("aiohttp.server").setLevel(logging.CRITICAL)
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--customers", type=int, default=60)
    parser.add_argument("--kill-at", type=int, help="answered customers at the kill (half)")
    parser.add_argument("--latency", type=float, default=0.1, help="seconds each send takes")
    parser.add_argument("--timeout", type=float, default=120.0, help="after the restart")
    parser.add_argument(
        "--wide-open", action="store_true", help="the bot's own flood control opened wide"
    )
    parser.add_argument("--database", help="a PostgreSQL URL (created and dropped each run)")
    asyncio.run(main(parser.parse_args()))
