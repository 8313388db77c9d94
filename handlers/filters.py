"""Role filters: each actor's router is filtered once, on the router."""

from __future__ import annotations

from typing import Any

from aiogram.filters import Filter
from aiogram.types import TelegramObject


class HasRole(Filter):
    def __init__(self, *roles: str) -> None:
        self.roles = roles

    async def __call__(self, event: TelegramObject, role: str | None = None, **_: Any) -> bool:
        return role in self.roles
