"""The clock: what the desk does when a deadline passes, and what it catches up on at start."""

from __future__ import annotations

import logging
from datetime import datetime

from bot.domain.clock import DeadlineKind, due_action, waited
from bot.domain.intake import holds_nothing
from bot.domain.messages import Attachment, Said, Urgency
from bot.domain.tickets import ACTIVE, CustomerRef, Status
from handlers import common, customer
from handlers.context import Desk
from storage.uow import UnitOfWork

logger = logging.getLogger(__name__)


async def deadline_passed(
    uow: UnitOfWork, desk: Desk, ticket_id: int, kind: DeadlineKind, now: datetime
) -> None:
    """Act on a passed deadline if it still means something (it may have been met since)."""
    ticket = await uow.tickets.get(ticket_id)
    if ticket is None or not due_action(ticket, kind):
        return
    logger.info("%s: %s deadline passed", ticket.reference, kind.value)
    if kind is DeadlineKind.INTAKE_TIMEOUT:  # the customer left it unfinished: as it stands
        assert ticket.id is not None
        kept = await uow.messages.pending_relay(ticket.id)
        if holds_nothing(ticket, kept=len(kept)):
            # a start, a greeting: no complaint, and not a word to anyone about it
            ticket.drop_empty(now)
            await uow.tickets.save(ticket)
            await uow.messages.mark_relayed([m.id for m in kept])
            await uow.outbox.drop(f"photos:{ticket.id}")
            logger.info("%s: dropped, the intake holds nothing", ticket.reference)
            return
        await common.submit(uow, desk, ticket, now, auto=True)
        await uow.outbox.drop(f"photos:{ticket.id}")
        common.tell_customer(uow, desk, ticket, "customer/auto_submitted.html", clear=True)
        await customer.relay_intake_files(uow, desk, ticket)
        return
    if kind is DeadlineKind.FOLLOW_UP:
        common.ask_follow_up(uow, desk, ticket, now)
        await uow.tickets.save(ticket)
        return
    if kind is DeadlineKind.AUTO_CLOSE:
        ticket.close_as_accepted(now)
        await uow.tickets.save(ticket)
        common.tell_thread(uow, desk, ticket, "staff/closed.html", accepted=True)
        common.refresh_card(uow, desk, ticket)
        return
    ticket.escalate(kind.value, now)
    await uow.tickets.save(ticket)
    managers = desk.managers()
    how_long = waited(ticket, now)
    if kind is DeadlineKind.FIRST_RESPONSE:
        common.tell_thread(
            uow,
            desk,
            ticket,
            "staff/late_first_response.html",
            alert=True,
            managers=managers,
            how_to_answer=desk.how_to_answer,
            waited=how_long,
            minutes=int(how_long.total_seconds() // 60),
        )
        common.tell_customer(uow, desk, ticket, "customer/person_on_it.html", urgency=Urgency.CARD)
    elif kind is DeadlineKind.PROGRESS:
        people = [ticket.taken_by] if ticket.taken_by else managers
        common.tell_thread(
            uow,
            desk,
            ticket,
            "staff/progress_due.html",
            alert=True,
            people=people,
            waited=how_long,
        )
        common.tell_customer(
            uow, desk, ticket, "customer/progress_note.html", urgency=Urgency.CARD
        )
    elif kind is DeadlineKind.RESOLUTION:
        common.tell_thread(
            uow,
            desk,
            ticket,
            "staff/resolution_due.html",
            alert=True,
            managers=managers,
            waited=how_long,
        )
    # the card is unchanged: no edit spent on the staff room's limit


async def catch_up(uow: UnitOfWork, desk: Desk) -> int:
    """At start: a ticket with staff that has no card and none queued gets one, and customer
    messages that a desk before this version left waiting are queued for staff. Returns how
    many tickets were caught up."""
    caught = 0
    for ticket_id in await uow.tickets.without_card():
        if await uow.outbox.has_pending_card(ticket_id):
            continue
        if await uow.outbox.sent_card(ticket_id):
            continue
        ticket = await uow.tickets.get(ticket_id)
        if ticket is None or ticket.status not in ACTIVE or ticket.status is Status.INTAKE:
            continue
        common.post_card(uow, desk, ticket)
        caught += 1
    for message in await uow.messages.pending_relay():
        ticket = await uow.tickets.get(message.ticket_id)
        if ticket is None or ticket.status is Status.INTAKE:
            continue
        said = Said(
            who=CustomerRef(ticket.channel, message.sender_id),
            name=message.sender_name,
            language=ticket.language,
            kind=message.kind,
            text=message.text,
            attachment=(
                Attachment(message.kind, message.file_id, ticket.channel)
                if message.file_id
                else None
            ),
        )
        customer.relay(uow, desk, ticket, said, message.at)
        await uow.messages.mark_relayed([message.id])
    return caught
