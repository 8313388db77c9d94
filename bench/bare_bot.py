"""The floor for any aiogram bot on this machine: answers every message once with a fixed text.

No database, no templates, no flood control: aiogram's own polling (updates handled as tasks)
and one sendMessage per message. `bench/burst.py` runs it beside the desk, the same way.
Settings from the environment: BOT_TOKEN, TELEGRAM_API_URL.
"""

from __future__ import annotations

import asyncio
import logging
import os

from aiogram import Bot, Dispatcher
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.types import Message

dispatcher = Dispatcher()


@dispatcher.message()
async def answer(message: Message) -> None:
    await message.answer("您好,收到您的消息了。")


async def main() -> None:
    logging.basicConfig(level=logging.WARNING)
    session = AiohttpSession(api=TelegramAPIServer.from_base(os.environ["TELEGRAM_API_URL"]))
    bot = Bot(os.environ["BOT_TOKEN"], session=session)
    await dispatcher.start_polling(bot)


if __name__ == "__main__":
    asyncio.run(main())
