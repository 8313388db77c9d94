"""A manager's large orders file while customers write (issue 13, item 8): how long newcomers
wait for their first answer while `/orders` imports 200,000 rows, and how long the import takes.

The desk runs in-process, as the end-to-end tests start it (`bot.app.build` and `serve` in this
event loop, against the Bot API stand-in, SQLite in a temporary folder or `--database URL`),
the bot's own flood control opened wide, and is warmed up with one customer. A manager in
`MANAGER_IDS` sends `/orders` with a CSV of `--rows` orders in the staff group; once the bot
has asked for the file (getFile: the import has begun), `--newcomers` customers who never wrote
before write one after another, `--spacing` seconds apart. Per newcomer: from the moment their
message is available to getUpdates until the stand-in receives the bot's first answer. The
import: from the moment `/orders` is available until the stand-in receives "已导入 N 个订单".
At the end the poller must still be running, and one more newcomer is answered.

Usage:
    .venv/bin/python bench/orders_import.py
    .venv/bin/python bench/orders_import.py --rows 200000 --newcomers 10 --spacing 0.3
    .venv/bin/python bench/orders_import.py --database postgresql+asyncpg://postgres@127.0.0.1:5432/x
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import platform
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from harness import STAFF, WIDE_OPEN

from bot.standin import BotApiStandIn, Sent
from bot.standin.orders import orders_file

MANAGER = 900001


async def start_desk(api: BotApiStandIn, url: str) -> tuple[Any, asyncio.Task[None]]:
    """The desk built and served in this event loop, as tests/conftest.py's InProcessBot."""
    from bot.app import build, serve
    from bot.config import load_settings
    from bot.policy import load_policy
    from storage.migrate import migrate

    await asyncio.to_thread(migrate, url)
    settings = load_settings(
        bot_token=api.token,
        staff_chat_id=str(STAFF),
        manager_ids=str(MANAGER),
        database_url=url,
        telegram_api_url=api.base_url,
        http_port=0,
        **{k.lower(): v for k, v in WIDE_OPEN.items()},
        _env_file=None,
    )
    app = build(settings, load_policy(settings.shop_policy))
    task = asyncio.create_task(serve(app, signals=False))
    await api.wait_calls("getUpdates", 1, timeout=120)
    warm = api.person(1, "warm-up", "zh")
    warm.send("你好")
    await api.wait_for(lambda s: s.chat_id == 1, timeout=60)
    return app, task


async def run(url: str, rows: int, newcomers: int, spacing: float) -> dict[str, Any]:
    api = BotApiStandIn()
    await api.start()
    api.add_group(STAFF, "staff")
    pushed: dict[int, float] = {}
    answered: dict[int, float] = {}

    def listener(kind: str, payload: Any) -> None:
        if kind == "user":
            pushed.setdefault(payload["chat"]["id"], time.monotonic())
        elif kind == "sent" and payload.chat_id > 0:
            answered.setdefault(payload.chat_id, time.monotonic())

    api.listeners.append(listener)
    phases: list[str] = []  # the import's own account: read in .. s, written in .. s

    class Phases(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            phases.append(record.getMessage())

    logging.getLogger("handlers.manager").addHandler(Phases(logging.INFO))
    logging.getLogger("handlers.manager").setLevel(logging.INFO)
    logging.getLogger("handlers.manager").propagate = False
    app, task = await start_desk(api, url)
    try:
        api.files["orders"] = orders_file(rows)
        manager = api.person(MANAGER, "陈店长", "zh")
        document = {"file_id": "orders", "file_unique_id": "u-o", "file_name": "全年订单.csv"}
        mark = len(api.sent)
        asked = time.monotonic()
        manager.say_in_group(STAFF, caption="/orders", document=document)
        await api.wait_calls("getFile", 1, timeout=60)
        people = [api.person(50_000 + i, f"新客{i}", "zh") for i in range(newcomers)]
        for n, person in enumerate(people):
            if n:
                await asyncio.sleep(spacing)  # spread over the import, as customers come
            person.send("你好,我的花蔫了")
        imported: Sent = await api.wait_for(
            lambda s: s.chat_id == STAFF and "已导入" in s.text, timeout=1800, after=mark
        )
        await api.until(lambda: all(p.id in answered for p in people), timeout=600)
        waits = [answered[p.id] - pushed[p.id] for p in people]
        before_import = sum(1 for p in people if answered[p.id] < imported.at)
        alive = not task.done()
        later = api.person(60_000, "后来的客人", "zh")
        later.send("你好")
        await api.wait_for(lambda s: s.chat_id == later.id, timeout=60)
        return {
            "waits": waits,
            "sent_at": [pushed[p.id] - asked for p in people],
            "phases": phases,
            "import": imported.at - asked,
            "text": imported.text,
            "answered_during_import": before_import,
            "alive": alive and not task.done(),
        }
    finally:
        app.poller.stop()
        await asyncio.wait_for(task, timeout=120)
        await api.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--newcomers", type=int, default=10)
    parser.add_argument("--spacing", type=float, default=0.3, help="seconds between newcomers")
    parser.add_argument("--database", default=None, help="a database URL (default: SQLite)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    with tempfile.TemporaryDirectory() as folder:
        url = args.database or f"sqlite+aiosqlite:///{Path(folder) / 'bench.db'}"
        result = asyncio.run(run(url, args.rows, args.newcomers, args.spacing))
    waits = sorted(result["waits"])
    print(f"{platform.machine()}, Python {platform.python_version()}, {url.split(':')[0]}")
    print(f"/orders with {args.rows:,} rows; {args.newcomers} newcomers, {args.spacing}s apart")
    print(
        f"newcomers' first answer: median {statistics.median(waits) * 1000:.0f} ms, "
        f"max {waits[-1] * 1000:.0f} ms; answered before the import ended: "
        f"{result['answered_during_import']} / {len(waits)}"
    )
    print(
        "each newcomer: wrote at +s after /orders -> waited ms: "
        + ", ".join(
            f"+{at:.1f} -> {wait * 1000:.0f}"
            for at, wait in zip(result["sent_at"], result["waits"], strict=True)
        )
    )
    print(f"import, /orders to 已导入: {result['import']:.2f} s ({result['text'][:40]}…)")
    for phase in result["phases"]:
        print(f"  the desk's log: {phase}")
    print(f"poller alive at the end: {'yes' if result['alive'] else 'NO'}")


if __name__ == "__main__":
    main()
