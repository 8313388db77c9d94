"""SIGTERM, as `docker compose stop` or systemd sends it: the instance stops taking requests,
finishes what it holds, and exits in time, leaving the webhook for the others."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import aiohttp

from bot.standin import BotApiStandIn
from tests.conftest import ROOT, bot_settings
from tests.e2e.people import said


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def healthz(url: str) -> int | None:
    try:
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{url}/healthz", timeout=aiohttp.ClientTimeout(total=2)) as r:
                return r.status
    except aiohttp.ClientError:
        return None


async def test_sigterm_stops_the_instance_in_time_and_keeps_the_webhook(
    api: BotApiStandIn, sqlite_url: str, tmp_path: Path
) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("BOT_", "SLA_"))},
        **bot_settings(api, sqlite_url),
        "HTTP_PORT": str(port),
        "WEBHOOK_URL": f"{url}/telegram",
        "WEBHOOK_SECRET": "stop-test-secret",
        "PYTHONPATH": str(ROOT),
    }
    log = tmp_path / "bot.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "bot"], cwd=tmp_path, env=env, stdout=out, stderr=out
        )
    try:
        # the desk listens before it gives Telegram its address: serving from here
        await api.wait_calls("setWebhook", 1, timeout=60)
        assert await healthz(url) == 200, log.read_text()[-3000:]
        customer = api.person(2301, "小罗", "zh")
        customer.send("你好")
        await said(api, customer, "哪一类问题", timeout=30)

        proc.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(asyncio.to_thread(proc.wait), timeout=10)
        assert code == 0, log.read_text()[-3000:]
        assert "deleteWebhook" not in {m for m, _ in api.calls}
        assert "Desk stopped" in log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
