"""What the benchmarks share: a bot started as a user starts it, against the Bot API stand-in,
with SQLite in a temporary folder, and warmed up with one customer."""

from __future__ import annotations

import asyncio
import os
import signal
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
        "HTTP_PORT": "0",
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
    try:
        await first_poll(api, proc, timeout=120)
        warm = api.person(1, "warm-up", "zh")
        warm.send("你好")
        await api.wait_for(lambda s: s.chat_id == 1, timeout=60)
    except BaseException:
        stop(proc)
        raise
    return proc


async def first_poll(api: BotApiStandIn, proc: subprocess.Popen[bytes], timeout: float) -> None:
    """Until the bot's first getUpdates reaches the stand-in (a barrier, not a sleep); raises
    if the process exits first."""
    loop = asyncio.get_running_loop()
    exited = loop.create_future()
    pidfd = os.pidfd_open(proc.pid)  # readable once the process has exited
    loop.add_reader(pidfd, lambda: exited.done() or exited.set_result(None))
    polled = asyncio.ensure_future(api.wait_calls("getUpdates", 1, timeout=timeout))
    try:
        await asyncio.wait({polled, exited}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        loop.remove_reader(pidfd)
        os.close(pidfd)
        if not polled.done():
            polled.cancel()
    if not polled.done() or polled.cancelled():
        raise RuntimeError(f"{proc.args} exited with {proc.wait()} before polling")
    polled.result()  # a TimeoutError, if the bot never polled


def stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM, as a service manager stops the bot; says so if it does not end cleanly."""
    proc.terminate()
    try:
        code = proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        print(f"! {proc.args}: still running 30 s after SIGTERM, killed", file=sys.stderr)
        return
    if code not in (0, -signal.SIGTERM):  # the bare bot leaves SIGTERM's default action
        print(f"! {proc.args}: exited with {code} after SIGTERM", file=sys.stderr)


def memory_mb(pid: int) -> tuple[float, float]:
    """The process's resident memory now and at its peak (Linux VmRSS, VmHWM), in MB."""
    found = {"VmRSS:": float("nan"), "VmHWM:": float("nan")}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key = line.split(maxsplit=1)[0] if line else ""
            if key in found:
                found[key] = int(line.split()[1]) / 1024
    except OSError:
        pass
    return found["VmRSS:"], found["VmHWM:"]
