"""A customer's history with the shop: their earlier complaints, as the card shows them, and the
rule that makes a repeat complaint more serious (the playbook's "repeat complaints from one
customer" priority signal). Pure: the tickets come from the caller."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta

from bot.domain.remedies import Ladder
from bot.domain.tickets import Status, Ticket

HISTORY_WINDOW = timedelta(days=90)  # what the card counts
SHOWN = 2  # earlier complaints the card names


@dataclass(frozen=True)
class RepeatRule:
    """The `count`-th complaint within `window` raises the ticket's severity one step."""

    count: int = 3
    window: timedelta = timedelta(days=30)


def phone_of(contact: str | None) -> str | None:
    """The digits of a phone number the customer gave (None: no phone in it)."""
    digits = re.sub(r"\D", "", contact or "")
    return digits[-11:] if len(digits) >= 7 else None


def summarise(ticket: Ticket, earlier: list[Ticket], rule: RepeatRule) -> dict[str, object]:
    """What the card says of the customer's history (kept on the ticket as it was at submit):
    complaints in the last 90 days, the last `SHOWN`, a ticket still open, and how many fell
    within the repeat rule's window (this one included)."""
    assert ticket.submitted_at is not None
    now = ticket.submitted_at
    recent = sorted(
        (t for t in earlier if t.submitted_at and t.submitted_at >= now - HISTORY_WINDOW),
        key=lambda t: (t.submitted_at, t.id or 0),
        reverse=True,
    )
    open_ = next((t for t in recent if t.status not in (Status.RESOLVED, Status.CLOSED)), None)
    since = now - rule.window
    in_window = 1 + sum(1 for t in recent if t.submitted_at and t.submitted_at >= since)
    return {
        "count": len(recent),
        "in_window": in_window,
        "open": open_.id if open_ else None,
        "last": [past(t) for t in recent[:SHOWN]],
    }


def past(ticket: Ticket) -> dict[str, object]:
    """What is said of one complaint in a history: which, what about, how it ended."""
    return {
        "id": ticket.id,
        "category": ticket.category,
        "tier": ticket.tier,
        "option": ticket.chosen_option,
        "satisfaction": ticket.satisfaction,
        "status": ticket.status.value,
        "submitted_at": ticket.submitted_at.isoformat() if ticket.submitted_at else None,
    }


def raised_severity(current: str | None, ladder: Ladder) -> str | None:
    """One step up the ladder, never to a tier only the manager handles in person (None: it
    stays as it is)."""
    keys = [t.key for t in ladder.tiers if not t.in_person]
    if not keys:
        return None
    if current is None:
        return keys[min(1, len(keys) - 1)]
    if current not in keys:
        return None  # already at what only the manager handles
    at = keys.index(current)
    return keys[at + 1] if at + 1 < len(keys) else None
