"""Per-update context: the unit of work, and who is speaking (customer, staff or manager)."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from aiogram import BaseMiddleware, Bot
from aiogram.types import Chat, TelegramObject, Update, User
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.domain.tickets import Actor
from bot.outbox import Priority, send_priority
from bot.render import language_of
from storage.repositories import Planner
from storage.uow import UnitOfWork

logger = logging.getLogger(__name__)

Handler = Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]]


class UnitOfWorkMiddleware(BaseMiddleware):
    """One transaction per update; the inbox row is marked handled in the same transaction."""

    def __init__(
        self,
        factory: async_sessionmaker[AsyncSession],
        clock: Callable[[], datetime],
        planner: Planner | None = None,
        on_commit: Callable[[], None] | None = None,
    ) -> None:
        self.factory = factory
        self.clock = clock
        self.planner = planner
        self.on_commit = on_commit

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        assert isinstance(event, Update)
        async with UnitOfWork(self.factory, self.planner) as uow:
            data["uow"] = uow
            try:
                result = await handler(event, data)
            except Exception as exc:
                await uow.rollback()
                async with UnitOfWork(self.factory) as failed:
                    await failed.inbox.mark_handled(event.update_id, self.clock(), repr(exc))
                    await failed.commit()
                raise
            await uow.inbox.mark_handled(event.update_id, self.clock())
            await uow.commit()
            if self.on_commit is not None:
                self.on_commit()  # new deadlines may be due earlier than the scheduler thinks
            return result


class Managers:
    """Who may decide compensation: MANAGER_IDS, and the staff group's administrators when the
    policy says so (asked from Telegram, kept five minutes)."""

    def __init__(self, ids: tuple[int, ...], staff_chat_id: int, include_admins: bool) -> None:
        self.ids = frozenset(ids)
        self.staff_chat_id = staff_chat_id
        self.include_admins = include_admins
        self._admins: frozenset[int] = frozenset()
        self._fetched = 0.0
        self._names: dict[int, str] = {}

    async def people(self, bot: Bot) -> list[Actor]:
        """The managers to mention, with their first names (asked from the group once)."""
        ids = set(self.ids)
        if self.include_admins:
            await self.is_manager(bot, 0)  # refreshes the administrators when due
            ids |= {i for i in self._admins if i != bot.id}
        people = []
        for user_id in sorted(ids):
            if user_id not in self._names:
                try:
                    member = await bot.get_chat_member(self.staff_chat_id, user_id)
                    self._names[user_id] = member.user.first_name
                except Exception as exc:  # noqa: BLE001 - a name is nice, not needed
                    logger.info("No name for manager %s: %s", user_id, exc)
                    self._names[user_id] = ""
            people.append(Actor(user_id, self._names[user_id], "manager"))
        return people

    async def is_manager(self, bot: Bot, user_id: int) -> bool:
        if user_id in self.ids:
            return True
        if not self.include_admins:
            return False
        if time.monotonic() - self._fetched > 300:
            try:
                admins = await bot.get_chat_administrators(self.staff_chat_id)
                self._admins = frozenset(a.user.id for a in admins)
                self._fetched = time.monotonic()
            except Exception as exc:
                logger.warning("Cannot read the staff group's administrators: %s", exc)
        return user_id in self._admins


class RoleMiddleware(BaseMiddleware):
    """Sets `role` (customer / staff / manager / None), `actor` and `lang` for the handlers."""

    def __init__(self, staff_chat_id: int, managers: Managers, default_language: str) -> None:
        self.staff_chat_id = staff_chat_id
        self.managers = managers
        self.default_language = default_language

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        user: User | None = data.get("event_from_user")
        chat: Chat | None = data.get("event_chat")
        role: str | None = None
        if chat is not None and user is not None:
            if chat.type == "private":
                role = "customer"
            elif chat.id == self.staff_chat_id:
                manager = await self.managers.is_manager(data["bot"], user.id)
                role = "manager" if manager else "staff"
        data["role"] = role
        if user is not None:
            data["actor"] = Actor(user.id, user.first_name or user.full_name, role or "none")
            data["lang"] = (
                language_of(user.language_code, self.default_language)
                if role == "customer"
                else self.default_language
            )
        else:
            data["lang"] = self.default_language
        # answers to customers and staff relays go before cards and reminders
        token = send_priority.set(Priority.RELAY if role else Priority.CARD)
        try:
            return await handler(event, data)
        finally:
            send_priority.reset(token)
