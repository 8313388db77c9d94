"""The manager picks a tier of the shop's ladder; the customer gets its options."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from aiogram import F, Router
from aiogram.types import CallbackQuery

from bot import keyboards
from bot.callbacks import CardCb
from bot.channels.telegram import TelegramDesk
from bot.domain.remedies import UnknownRemedy
from bot.domain.tickets import Actor, TicketStateError
from bot.policy import Policy
from bot.render import Render
from handlers.staff.card import card_ticket
from storage.uow import UnitOfWork

router = Router(name=__name__)
Clock = Callable[[], datetime]


@router.callback_query(CardCb.filter(F.action == "tier"))
async def tier_chosen(
    query: CallbackQuery,
    callback_data: CardCb,
    uow: UnitOfWork,
    render: Render,
    policy: Policy,
    desk: TelegramDesk,
    clock: Clock,
    actor: Actor,
    lang: str,
) -> None:
    """Offer the customer the tier's options (or, for a critical one, the manager in person)."""
    ticket = await card_ticket(uow, callback_data, query)
    try:
        if ticket is None:
            raise TicketStateError("no such ticket")
        tier = policy.ladder.tier(callback_data.tier)
        if tier.in_person:
            ticket.hand_to_manager(tier.key, actor, clock())
        else:
            ticket.offer_remedy(tier.key, actor, clock())
    except (TicketStateError, UnknownRemedy):
        await query.answer(render(lang, "common/stale_button.txt"), show_alert=True)
        return
    assert ticket.id is not None
    await uow.tickets.save(ticket)
    await query.answer(render(lang, "manager/tier_sent.txt", tier=tier.label.in_(lang)))
    if tier.in_person:
        await desk.tell_customer(uow, ticket, "customer/remedy_in_person.html", manager=actor)
        await desk.tell_group(
            uow,
            ticket,
            "staff/in_person.html",
            actor=actor,
            reply_markup=keyboards.done(ticket.id, lang),
        )
    else:
        await desk.tell_customer(
            uow,
            ticket,
            "customer/remedy_offer.html",
            tier=tier,
            reply_markup=keyboards.options(ticket.id, tier, ticket.language),
        )
        await desk.tell_group(uow, ticket, "staff/remedy_offered.html", actor=actor, tier=tier)
    await desk.refresh_card(ticket)


@router.callback_query(CardCb.filter(F.action == "close"))
async def resolved_without_remedy(
    query: CallbackQuery,
    callback_data: CardCb,
    uow: UnitOfWork,
    render: Render,
    desk: TelegramDesk,
    clock: Clock,
    actor: Actor,
    lang: str,
) -> None:
    """The manager resolves the ticket without compensation; the customer is told."""
    ticket = await card_ticket(uow, callback_data, query)
    try:
        if ticket is None:
            raise TicketStateError("no such ticket")
        ticket.resolve(actor, clock(), "no compensation")
    except TicketStateError:
        await query.answer(render(lang, "common/stale_button.txt"), show_alert=True)
        return
    await uow.tickets.save(ticket)
    await query.answer(render(lang, "staff/resolved_alert.txt", ticket=ticket))
    await desk.tell_customer(uow, ticket, "customer/resolved.html", option=None)
    await desk.tell_group(uow, ticket, "staff/resolved.html", actor=actor)
    await desk.refresh_card(ticket)


@router.callback_query(CardCb.filter(F.action == "reopen"))
async def ticket_reopened(
    query: CallbackQuery,
    callback_data: CardCb,
    uow: UnitOfWork,
    render: Render,
    desk: TelegramDesk,
    clock: Clock,
    actor: Actor,
    lang: str,
) -> None:
    """The manager reopens a resolved ticket; the customer hears it is being looked at again."""
    ticket = await card_ticket(uow, callback_data, query)
    try:
        if ticket is None:
            raise TicketStateError("no such ticket")
        other = await uow.tickets.active_for_customer(ticket.channel, ticket.customer_id)
        if other is not None:
            raise TicketStateError("the customer has another open ticket")
        ticket.reopen(actor, clock())
    except TicketStateError:
        await query.answer(render(lang, "manager/reopen_refused.txt"), show_alert=True)
        return
    await uow.tickets.save(ticket)
    await query.answer(render(lang, "manager/reopened_alert.txt", ticket=ticket))
    await desk.tell_customer(uow, ticket, "customer/reopened.html")
    await desk.tell_group(uow, ticket, "staff/reopened.html", actor=actor)
    await desk.refresh_card(ticket)
