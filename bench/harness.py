"""What the benchmarks share: a bot started as a user starts it, against the Bot API stand-in,
with SQLite in a temporary folder, and warmed up with one customer."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.standin import BotApiStandIn  # noqa: E402

STAFF = -1000000000001
# the bot's own flood control opened wide: the figures are the bot's own cost
WIDE_OPEN = {
    "RATE_GLOBAL": "100000",
    "RATE_PER_CHAT": "100000",
    "RATE_CHAT_BURST": "100000",
    "RATE_GROUP_PER_MINUTE": "100000",
}


def bot_env(api: BotApiStandIn, folder: str, **settings: str) -> dict[str, str]:
    """The environment a shop owner would give the bot, pointed at the stand-in."""
    return {
        **os.environ,
        "BOT_TOKEN": api.token,
        "STAFF_CHAT_ID": str(STAFF),
        "DATABASE_URL": f"sqlite+aiosqlite:///{folder}/bench.db",
        "TELEGRAM_API_URL": api.base_url,
        "LOG_LEVEL": "WARNING",
        "PYTHONPATH": str(ROOT),
        **settings,
    }


async def start_warm(
    api: BotApiStandIn, command: list[str], folder: str, env: dict[str, str]
) -> subprocess.Popen[bytes]:
    """Start the bot; return once it polls and has answered one warm-up customer."""
    proc = subprocess.Popen(command, cwd=folder, env=env)
    while not any(m == "getUpdates" for m, _ in api.calls):
        if proc.poll() is not None:
            raise RuntimeError(f"{command} exited with {proc.returncode}")
        await asyncio.sleep(0.05)
    warm = api.person(1, "warm-up", "zh")
    warm.send("你好")
    await api.wait_for(lambda s: s.chat_id == 1, timeout=60)
    return proc


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
