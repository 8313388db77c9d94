"""The floor for any python-telegram-bot bot on this machine: answers every private message once
with a fixed text.

No database, no templates, no flood control, no `telegram.ext` (no Application, no JobQueue):
a `telegram.Bot` with the desk's HTTP set-up (a pool of 64 connections for requests, one for
getUpdates), its own getUpdates loop, and one sendMessage per message, each in its own task.
The only extra is what any bot must do to answer every message once under Telegram's limits:
a 429 waits `retry_after` and the message goes again. `bench/burst.py` and `bench/startup.py`
run it beside the desk, the same way.
Settings from the environment: BOT_TOKEN, TELEGRAM_API_URL.
"""

from __future__ import annotations

import asyncio
import logging
import os

from telegram import Bot
from telegram.error import RetryAfter
from telegram.request import HTTPXRequest

TEXT = "您好,收到您的消息了。"


async def answer(bot: Bot, chat_id: int) -> None:
    for _ in range(10):
        try:
            await bot.send_message(chat_id, TEXT)
            return
        except RetryAfter as exc:
            await asyncio.sleep(exc._retry_after.total_seconds())  # the property warns on ints
        except Exception:  # the floor logs and moves on; the benchmark counts the unanswered
            logging.exception("sendMessage to %s failed", chat_id)
            return


async def main() -> None:
    logging.basicConfig(level=logging.WARNING)
    base = os.environ["TELEGRAM_API_URL"].rstrip("/")
    bot = Bot(
        os.environ["BOT_TOKEN"],
        base_url=f"{base}/bot",
        base_file_url=f"{base}/file/bot",
        request=HTTPXRequest(connection_pool_size=64, pool_timeout=60.0),
        get_updates_request=HTTPXRequest(connection_pool_size=1, read_timeout=45.0),
    )
    tasks: set[asyncio.Task[None]] = set()
    offset = None
    async with bot:  # getMe, as every python-telegram-bot bot starts
        while True:
            try:
                updates = await bot.get_updates(
                    offset=offset, timeout=25, limit=100, allowed_updates=["message"]
                )
            except Exception as exc:
                logging.warning("getUpdates failed (%r)", exc)
                await asyncio.sleep(1)
                continue
            for update in updates:
                message = update.message
                if message is not None and message.chat.type == "private":
                    task = asyncio.create_task(answer(bot, message.chat.id))
                    tasks.add(task)
                    task.add_done_callback(tasks.discard)
            if updates:
                offset = updates[-1].update_id + 1


if __name__ == "__main__":
    asyncio.run(main())
