"""Several instances: a burst of N newcomers (default 300) against two desks behind one address
(webhook mode, PostgreSQL and Redis), beside the same burst against one desk.

Each desk runs as a shop runs it (`python -m bot`, one process an instance, Telegram posting
updates to a round-robin proxy in front of them). The Bot API stand-in enforces Telegram's
limits (30 messages a second overall, one a second per private chat with short bursts, 20 a
minute per group; 429 past them) and posts each update to the webhook as Telegram does. Printed
for each set-up: customers answered, answered twice, never answered, the time until the last
first reply (from the moment all N have written), the median and 95th percentile of each
customer's wait for the first reply, the 429s the desks caused, and the updates each instance
took.

Usage: python bench/instances_burst.py [--customers 300] [--runs 1]
           [--database postgresql+asyncpg://postgres@127.0.0.1:5432/postgres]
           [--redis redis://127.0.0.1:6379/0]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass

from harness import ROOT, STAFF, bot_env, stop

from bot.standin import BotApiStandIn, TelegramLimits
from bot.standin.proxy import RoundRobin

SECRET = "bench-webhook-secret"


@dataclass
class Run:
    instances: int
    customers: int
    answered: int
    doubled: int
    seconds: float
    waits: list[float]
    refused: int
    served: dict[str, int]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def pg(admin_url: str, sql: str) -> None:
    import asyncpg

    dsn = admin_url.replace("postgresql+asyncpg://", "postgresql://")
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def ready(url: str, proc: subprocess.Popen[bytes], timeout: float = 120) -> None:
    """Until the instance's /healthz answers 200 (a barrier; raises if the process exits)."""
    import aiohttp

    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as http:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"instance exited with {proc.returncode}")
            try:
                async with http.get(f"{url}/healthz") as answer:
                    if answer.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise TimeoutError("instance never became healthy")


async def one_run(args: argparse.Namespace, instances: int) -> Run:
    name = f"desk_bench_{uuid.uuid4().hex[:10]}"
    await pg(args.database, f'CREATE DATABASE "{name}"')
    base = args.database.rsplit("/", 1)[0]
    api = BotApiStandIn(token=f"{uuid.uuid4().int % 10**10}:BENCH")
    await api.start()
    api.add_group(STAFF, "售后群")
    proxy = RoundRobin([])
    proxy_url = await proxy.start()
    procs: list[subprocess.Popen[bytes]] = []
    try:
        urls = []
        for n in range(instances):
            port = free_port()
            env = bot_env(
                api,
                "/tmp",
                DATABASE_URL=f"{base}/{name}",
                HTTP_PORT=str(port),
                WEBHOOK_URL=f"{proxy_url}/telegram",
                WEBHOOK_SECRET=SECRET,
                REDIS_URL=args.redis,
                INSTANCE_NAME=f"bench-{n}",
            )
            procs.append(subprocess.Popen([sys.executable, "-m", "bot"], cwd=ROOT, env=env))
            urls.append(f"http://127.0.0.1:{port}")
            await ready(urls[-1], procs[-1])  # one at a time: the first migrates
        proxy.set_upstreams(urls)
        warm = api.person(1, "warm-up", "zh")
        warm.send("你好")
        await api.wait_for(lambda s: s.chat_id == 1, timeout=60)
        api.limits = TelegramLimits()
        people = [api.person(10_000 + i, f"顾客{i}", "zh") for i in range(args.customers)]
        wrote: dict[int, float] = {}
        for person in people:
            person.send("花送到就蔫了,怎么办")
            wrote[person.id] = time.monotonic()
        start = time.monotonic()
        firsts: dict[int, float] = {}

        def answered_all() -> bool:
            for sent in api.sent:
                if sent.chat_id in wrote and sent.chat_id not in firsts:
                    firsts[sent.chat_id] = sent.at
            return len(firsts) == len(wrote)

        deadline = time.monotonic() + args.customers  # generous: a second a customer
        while not answered_all() and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        seconds = max(firsts.values(), default=start) - start
        await api.wait_confirmed(timeout=120)
        await asyncio.sleep(3)  # let any repeat show (a bench, not a test)
        counts = [
            sum(1 for s in api.sent if s.chat_id == p.id and "哪一类问题" in s.text)
            for p in people
        ]
        return Run(
            instances,
            args.customers,
            len(firsts),
            sum(1 for c in counts if c > 1),
            seconds,
            [firsts[i] - wrote[i] for i in firsts],
            api.limits.refused,
            dict(proxy.requests),
        )
    finally:
        for proc in procs:
            stop(proc)
        await proxy.stop()
        await api.stop()
        await pg(args.database, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def report(run: Run) -> None:
    waits = sorted(run.waits)
    p95 = waits[int(0.95 * (len(waits) - 1))] if waits else float("nan")
    print(
        f"{run.instances} instance(s): {run.answered}/{run.customers} answered, "
        f"{run.doubled} twice, {run.customers - run.answered} never; last first reply "
        f"{run.seconds:.1f} s after the burst (ideal {run.customers / 30:.1f} s); wait median "
        f"{statistics.median(waits) if waits else float('nan'):.2f} s, p95 {p95:.2f} s; "
        f"429s {run.refused}; updates by instance {sorted(run.served.values())}"
    )


async def main(args: argparse.Namespace) -> None:
    for _ in range(args.runs):
        for instances in (1, 2):
            report(await one_run(args, instances))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--customers", type=int, default=300)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument(
        "--database", default="postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
    )
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    os.chdir(ROOT)
    asyncio.run(main(parser.parse_args()))
