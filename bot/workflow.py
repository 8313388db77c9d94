"""Steps shared by the handlers and the clock: submitting a ticket, paging on signals."""

from __future__ import annotations

from datetime import datetime, timedelta

from bot.domain.signals import suggest_severity
from bot.domain.tickets import Ticket
from bot.policy import Policy
from storage.uow import UnitOfWork

REPEAT_WINDOW = timedelta(days=30)


async def submit(
    uow: UnitOfWork, ticket: Ticket, policy: Policy, now: datetime, auto: bool = False
) -> None:
    """Send the ticket on to staff: severity suggested from the words, repeat complaints
    within 30 days flagged."""
    assert ticket.id is not None
    suggestion = suggest_severity(ticket.story, policy.ladder)
    tier = suggestion.tier_key if suggestion else None
    words = list(suggestion.words) if suggestion else []
    if ticket.priority == "critical":
        tier = policy.ladder.tiers[-1].key
    if auto:
        ticket.auto_submit(now, tier, words)
    else:
        ticket.submit(now, tier, words)
    earlier = await uow.tickets.recent_for_customer(
        ticket.channel, ticket.customer_id, now - REPEAT_WINDOW, ticket.id
    )
    ticket.repeat_of = earlier.id if earlier else None
    await uow.tickets.save(ticket)
