"""What every messenger adapter offers the rest of the desk."""

from __future__ import annotations

from enum import StrEnum


class Delivery(StrEnum):
    """How sending something to a customer went."""

    SENT = "sent"
    BLOCKED = "blocked"  # the customer blocked the bot or left: nothing can reach them here
    FAILED = "failed"  # refused for another reason (logged)
