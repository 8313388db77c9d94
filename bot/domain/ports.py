"""What the domain needs from storage, declared here so the domain imports no database code."""

from __future__ import annotations

from typing import Protocol

from bot.domain.tickets import Ticket


class TicketRepository(Protocol):
    async def get(self, ticket_id: int) -> Ticket | None: ...

    async def active_for_customer(self, channel: str, customer_id: int) -> Ticket | None: ...

    async def add(self, ticket: Ticket) -> Ticket: ...

    async def save(self, ticket: Ticket) -> None: ...
