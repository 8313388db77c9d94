"""The ports the core talks to: a customer channel (one per messenger) and the staff room.

The sender (`bot.sender`) hands each an outbox row (with the rows queued behind it in the same
lane, which an adapter may send as one message) and records what came back: the messenger's
message ids, or that the customer cannot be reached.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol

from bot.domain.messages import Outgoing
from bot.domain.tickets import Ticket


class Delivery(StrEnum):
    """How sending went."""

    SENT = "sent"
    BLOCKED = "blocked"  # the customer blocked the bot or left: nothing can reach them here
    FAILED = "failed"  # refused for another reason (the detail says why)
    UNSURE = "unsure"  # no answer in time: it may have arrived, so it is not sent again


@dataclass
class Outcome:
    """What an adapter did with the rows it was given: which it covered (several, when it
    merged them into one message), how it went, and the messenger's ids of what it sent."""

    delivery: Delivery
    rows: list[int] = field(default_factory=list)
    message_ids: list[str] = field(default_factory=list)
    detail: str = ""
    topic_id: int | None = None  # the staff room made a thread (topic) for the ticket
    card_id: int | None = None  # the staff room posted the ticket's card
    room_id: int | None = None  # the staff room's chat, where `message_ids` are


Refresh = Callable[[], Awaitable[list[Outgoing]]]


class Passing(Exception):
    """The messenger is away for now (network, 5xx, flood limits past their retries): the row
    stays queued and goes again later, however long it takes. An adapter raises this only
    where sending again cannot show a message twice: a request that may have arrived is not
    a passing fault."""


class CustomerChannel(Protocol):
    """Deliver a message to a customer reference on one messenger."""

    name: str

    async def deliver(self, rows: list[Outgoing], refresh: Refresh) -> Outcome:
        """Send `rows[0]` (and any rows behind it the channel merges with it)."""
        ...


class StaffRoom(Protocol):
    """Where staff work: post or edit a ticket's card, relay into its thread, alert."""

    async def deliver(
        self, rows: list[Outgoing], ticket: Ticket | None, refresh: Refresh
    ) -> Outcome:
        """Send `rows[0]` (and what it merges) into the ticket's thread or the room."""
        ...


class Unsure(Exception):
    """A request went out and no answer came back in time: the message may have arrived.
    Sending it again could show it twice, so it is recorded as unsure instead. `rows`: the
    outbox rows it carried, when it carried several (merged texts, an album)."""

    def __init__(self, message: str, rows: list[int] | None = None) -> None:
        super().__init__(message)
        self.rows = rows or []
