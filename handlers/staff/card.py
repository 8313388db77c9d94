"""Buttons on a ticket's card that any staff member may use; the manager's are refused here."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from aiogram import F, Router
from aiogram.types import CallbackQuery

from bot.callbacks import CardCb
from bot.channels.telegram import TelegramDesk
from bot.domain.tickets import Actor, Ticket, TicketStateError
from bot.policy import Policy
from bot.render import Render
from storage.uow import UnitOfWork

router = Router(name=__name__)
Clock = Callable[[], datetime]
ON_CARD_ONLY = {"take", "tier", "close", "reopen"}


async def card_ticket(uow: UnitOfWork, data: CardCb, query: CallbackQuery) -> Ticket | None:
    """The ticket a card button belongs to. A tap can come before the card's id is stored (a
    few milliseconds after it appears): the tapped message is the card then."""
    ticket = await uow.tickets.get(data.ticket_id)
    if (
        ticket is not None
        and ticket.card_message_id is None
        and data.action in ON_CARD_ONLY
        and query.message is not None
    ):
        ticket.card_message_id = query.message.message_id
    return ticket


@router.callback_query(CardCb.filter(F.action == "take"))
async def ticket_taken(
    query: CallbackQuery,
    callback_data: CardCb,
    uow: UnitOfWork,
    render: Render,
    desk: TelegramDesk,
    clock: Clock,
    actor: Actor,
    lang: str,
) -> None:
    """The staff member takes the ticket; the card shows who has it."""
    ticket = await card_ticket(uow, callback_data, query)
    if ticket is None:
        await query.answer(render(lang, "common/stale_button.txt"), show_alert=True)
        return
    try:
        ticket.take(actor, clock())
    except TicketStateError:
        await query.answer(render(lang, "staff/take_refused.txt", ticket=ticket), show_alert=True)
        return
    await uow.tickets.save(ticket)
    await query.answer(render(lang, "staff/taken.txt", ticket=ticket))
    await desk.refresh_card(ticket)


@router.callback_query(CardCb.filter(F.action == "done"))
async def remedy_done(
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
    """Staff carried out the chosen remedy: the ticket is resolved and the customer told."""
    ticket = await card_ticket(uow, callback_data, query)
    if ticket is None or ticket.status.value != "remedy_chosen":
        await query.answer(render(lang, "common/stale_button.txt"), show_alert=True)
        return
    ticket.resolve(actor, clock(), "remedy carried out")
    await uow.tickets.save(ticket)
    await query.answer(render(lang, "staff/resolved_alert.txt", ticket=ticket))
    if query.message is not None and query.message.message_id != ticket.card_message_id:
        try:
            await query.message.edit_reply_markup(reply_markup=None)  # type: ignore[union-attr]
        except Exception:  # noqa: BLE001 - an old message: the card below is what counts
            pass
    option = None
    if ticket.tier and ticket.chosen_option is not None:
        option = policy.ladder.tier(ticket.tier).option(ticket.chosen_option)
    await desk.tell_customer(uow, ticket, "customer/resolved.html", option=option)
    await desk.tell_group(uow, ticket, "staff/resolved.html", actor=actor)
    await desk.refresh_card(ticket)


@router.callback_query(CardCb.filter(F.action.in_({"tier", "close", "reopen"})))
async def manager_only(query: CallbackQuery, render: Render, lang: str) -> None:
    """Only a manager may decide compensation: everyone else gets a short alert, nothing more."""
    await query.answer(render(lang, "staff/only_manager.txt"), show_alert=True)
