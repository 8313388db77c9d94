"""A new customer's first answer, straight from the poller.

In a burst the handlers' database work (a ticket, the message, the dialogue state: a
transaction each) is what keeps customers waiting. A customer who never wrote before needs
nothing from the database to be answered: the poller sends the empathy line and the first
question as soon as the update is stored in the inbox, and the handler, run later in the
customer's lane, opens the ticket without answering again. Everyone else (a known chat, a
command, an album) goes the usual way.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime

from aiogram import Bot
from aiogram.exceptions import TelegramAPIError
from aiogram.types import Message, Update

from bot.domain.tickets import Actor
from bot.outbox import Priority, send_priority
from bot.policy import Policy
from bot.render import Render, language_of
from handlers.customer.intake import greet

logger = logging.getLogger(__name__)


class Greeter:
    def __init__(
        self,
        bot: Bot,
        policy: Policy,
        render: Render,
        default_language: str,
        clock: Callable[[], datetime],
    ) -> None:
        self.bot = bot
        self.policy = policy
        self.render = render
        self.default_language = default_language
        self.clock = clock
        self.known: set[int] = set()  # private chats that ever wrote (or have a ticket)

    def note(self, chat_id: int) -> None:
        self.known.add(chat_id)

    def first_message(self, update: Update) -> Message | None:
        """The update's message if it is a new customer's first one that opens a complaint."""
        message = update.message
        if message is None or message.chat.type != "private":
            return None
        user = message.from_user
        new = message.chat.id not in self.known
        self.known.add(message.chat.id)
        if not new or user is None or user.is_bot or message.media_group_id:
            return None
        text = (message.text or "").strip()
        if text.startswith("/") and text.split("@")[0] != "/start":
            return None  # a command (or a link's /start payload) has its own answer
        return message

    def answer(self, update: Update) -> asyncio.Task[bool] | None:
        """Start answering a new customer's first message; the task says whether it went."""
        message = self.first_message(update)
        if message is None:
            return None
        return asyncio.create_task(self._send(message))

    async def _send(self, message: Message) -> bool:
        user = message.from_user
        assert user is not None
        actor = Actor(user.id, user.first_name or user.full_name, "customer")
        lang = language_of(user.language_code, self.default_language)
        token = send_priority.set(Priority.FIRST_REPLY)
        try:
            greeting = greet(message, actor, lang, self.policy, self.render, self.clock())
            await self.bot.send_message(
                message.chat.id, greeting.text, reply_markup=greeting.markup
            )
        except TelegramAPIError as exc:  # the handler tries again, and reports what it must
            logger.info("First answer to %s not sent here: %s", message.chat.id, exc)
            return False
        finally:
            send_priority.reset(token)
        return True
