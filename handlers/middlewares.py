"""Around the customer's handlers: every message is read for alarm words, at any step."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import BaseMiddleware
from aiogram.types import Message, TelegramObject

from bot.clockwork import Clockwork
from storage.uow import UnitOfWork


class WatchWords(BaseMiddleware):
    """After the handler: safety or public-threat words page the managers within seconds,
    even in the very first message and before the intake is done."""

    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        result = await handler(event, data)
        assert isinstance(event, Message)
        text = event.text or event.caption or ""
        clockwork: Clockwork | None = data.get("clockwork")
        uow: UnitOfWork = data["uow"]
        if text and clockwork is not None and event.from_user is not None:
            ticket = await uow.tickets.active_for_customer("telegram", event.from_user.id)
            if ticket is not None:
                await clockwork.watch(uow, ticket, text)
        return result
