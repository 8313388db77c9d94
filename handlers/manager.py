"""The manager, in the staff room: picks a tier of the shop's ladder (the customer gets its
options), resolves without compensation, or reopens a resolved ticket."""

from __future__ import annotations

from datetime import datetime

from bot.domain.messages import Answer, Urgency
from bot.domain.remedies import UnknownRemedy
from bot.domain.tickets import Actor, Ticket, TicketStateError
from handlers import choices, common
from handlers.choices import Key
from handlers.context import Desk
from storage.uow import UnitOfWork


async def card_tapped(
    uow: UnitOfWork, desk: Desk, actor: Actor, ticket: Ticket, key: Key, now: datetime
) -> Answer:
    action = key.part(0)
    if action == "tier":
        return await tier_chosen(uow, desk, actor, ticket, key.part(2), now)
    if action == "close":
        return await resolved_without_remedy(uow, desk, actor, ticket, now)
    return await reopened(uow, desk, actor, ticket, now)


async def tier_chosen(
    uow: UnitOfWork, desk: Desk, actor: Actor, ticket: Ticket, tier_key: str, now: datetime
) -> Answer:
    """Offer the customer the tier's options (or, for a critical one, the manager in person)."""
    lang = desk.staff_language
    try:
        tier = desk.policy.ladder.tier(tier_key)
        if tier.in_person:
            ticket.hand_to_manager(tier.key, actor, now)
        else:
            ticket.offer_remedy(tier.key, actor, now)
    except (TicketStateError, UnknownRemedy):
        return Answer(desk.render(lang, "common/stale_button.txt"), alert=True)
    assert ticket.id is not None
    await uow.tickets.save(ticket)
    if tier.in_person:
        common.tell_customer(uow, desk, ticket, "customer/remedy_in_person.html", manager=actor)
        common.tell_thread(
            uow,
            desk,
            ticket,
            "staff/in_person.html",
            rows=choices.done(ticket.id, lang),
            actor=actor,
            urgency=Urgency.RELAY,
        )
    else:
        common.tell_customer(
            uow,
            desk,
            ticket,
            "customer/remedy_offer.html",
            rows=choices.options(ticket.id, tier, ticket.language),
            tier=tier,
        )
        common.tell_thread(uow, desk, ticket, "staff/remedy_offered.html", actor=actor, tier=tier)
    common.refresh_card(uow, desk, ticket)
    return Answer(desk.render(lang, "manager/tier_sent.txt", tier=tier.label.in_(lang)))


async def resolved_without_remedy(
    uow: UnitOfWork, desk: Desk, actor: Actor, ticket: Ticket, now: datetime
) -> Answer:
    """The manager resolves the ticket without compensation; the customer is told."""
    lang = desk.staff_language
    try:
        ticket.resolve(actor, now, "no compensation")
    except TicketStateError:
        return Answer(desk.render(lang, "common/stale_button.txt"), alert=True)
    await uow.tickets.save(ticket)
    common.tell_customer(uow, desk, ticket, "customer/resolved.html", option=None)
    common.tell_thread(uow, desk, ticket, "staff/resolved.html", actor=actor)
    common.refresh_card(uow, desk, ticket)
    return Answer(desk.render(lang, "staff/resolved_alert.txt", ticket=ticket))


async def reopened(
    uow: UnitOfWork, desk: Desk, actor: Actor, ticket: Ticket, now: datetime
) -> Answer:
    """The manager reopens a resolved ticket; the customer hears it is looked at again. Not
    while the customer has another open ticket."""
    lang = desk.staff_language
    try:
        other = await uow.tickets.active_for_customer(ticket.customer)
        if other is not None:
            raise TicketStateError("the customer has another open ticket")
        ticket.reopen(actor, now)
    except TicketStateError:
        return Answer(desk.render(lang, "manager/reopen_refused.txt"), alert=True)
    await uow.tickets.save(ticket)
    common.tell_customer(uow, desk, ticket, "customer/reopened.html")
    common.tell_thread(uow, desk, ticket, "staff/reopened.html", actor=actor)
    common.refresh_card(uow, desk, ticket)
    return Answer(desk.render(lang, "manager/reopened_alert.txt", ticket=ticket))
