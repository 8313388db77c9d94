"""What the desk does when a deadline passes, and when a customer's words raise the alarm."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from aiogram import Bot
from aiogram.exceptions import TelegramAPIError
from aiogram.fsm.storage.base import BaseStorage, StorageKey

from bot import keyboards, workflow
from bot.channels.telegram import TelegramDesk
from bot.domain.clock import DeadlineKind, due_action, waited
from bot.domain.guard import find_signals
from bot.domain.tickets import Ticket
from bot.middlewares import Managers
from bot.policy import Policy
from storage.uow import UnitOfWork

logger = logging.getLogger(__name__)


class Clockwork:
    def __init__(
        self,
        bot: Bot,
        desk: TelegramDesk,
        policy: Policy,
        managers: Managers,
        fsm: BaseStorage,
        new_uow: Callable[[], UnitOfWork],
        clock: Callable[[], datetime],
    ) -> None:
        self.bot = bot
        self.desk = desk
        self.policy = policy
        self.managers = managers
        self.fsm = fsm
        self.new_uow = new_uow
        self.clock = clock

    async def lane_of(self, ticket_id: int) -> str:
        async with self.new_uow() as uow:
            ticket = await uow.tickets.get(ticket_id)
        return str(ticket.customer_id) if ticket else f"ticket-{ticket_id}"

    async def fire(self, ticket_id: int, kind: DeadlineKind) -> None:
        """A deadline passed: act if it still means something (it may have been met)."""
        async with self.new_uow() as uow:
            ticket = await uow.tickets.get(ticket_id)
            if ticket is None or not due_action(ticket, kind):
                return
            now = self.clock()
            logger.info("%s: %s deadline passed", ticket.reference, kind.value)
            if kind is DeadlineKind.INTAKE_TIMEOUT:
                await self._auto_submit(uow, ticket, now)
                return
            if kind is DeadlineKind.FOLLOW_UP:
                ticket.ask_follow_up(now)
                await uow.tickets.save(ticket)
                await self.desk.tell_customer(
                    uow,
                    ticket,
                    "customer/follow_up.html",
                    reply_markup=keyboards.rating(ticket.id or 0, ticket.language),
                )
                await uow.commit()
                return
            if kind is DeadlineKind.AUTO_CLOSE:
                ticket.close_as_accepted(now)
                await uow.tickets.save(ticket)
                await uow.commit()
                await self.desk.tell_group(uow, ticket, "staff/closed.html", accepted=True)
                await self.desk.refresh_card(ticket)
                await uow.commit()
                return
            ticket.escalate(kind.value, now)
            await uow.tickets.save(ticket)
            await uow.commit()
            managers = await self.managers.people(self.bot)
            minutes = int(waited(ticket, now).total_seconds() // 60)
            if kind is DeadlineKind.FIRST_RESPONSE:
                await self.desk.tell_group(
                    uow,
                    ticket,
                    "staff/late_first_response.html",
                    managers=managers,
                    waited=waited(ticket, now),
                    minutes=minutes,
                )
                await self.desk.tell_customer(uow, ticket, "customer/person_on_it.html")
            elif kind is DeadlineKind.PROGRESS:
                people = [ticket.taken_by] if ticket.taken_by else managers
                await self.desk.tell_group(
                    uow,
                    ticket,
                    "staff/progress_due.html",
                    people=people,
                    waited=waited(ticket, now),
                )
                await self.desk.tell_customer(uow, ticket, "customer/progress_note.html")
            elif kind is DeadlineKind.RESOLUTION:
                await self.desk.tell_group(
                    uow,
                    ticket,
                    "staff/resolution_due.html",
                    managers=managers,
                    waited=waited(ticket, now),
                )
            await uow.commit()  # the card is unchanged: no edit spent on the group's limit

    async def _auto_submit(self, uow: UnitOfWork, ticket: Ticket, now: datetime) -> None:
        """The customer left the intake unfinished: staff get it as it stands."""
        await workflow.submit(uow, ticket, self.policy, now, auto=True)
        key = StorageKey(
            bot_id=self.bot.id, chat_id=ticket.customer_id, user_id=ticket.customer_id
        )
        await self.fsm.set_state(key, None)
        await uow.commit()
        await self.desk.tell_customer(uow, ticket, "customer/auto_submitted.html")
        await uow.commit()
        try:
            await self.desk.announce(uow, ticket)
        except TelegramAPIError as exc:
            logger.error("%s could not be posted: %s", ticket.reference, exc)
        await uow.commit()

    async def watch(self, uow: UnitOfWork, ticket: Ticket, text: str) -> None:
        """Safety or public-threat words, at any step: the ticket turns critical and the
        managers are paged in the staff group at once, even before the intake is done."""
        words = find_signals(text, self.policy.signal_words)
        if not words:
            return
        new = ticket.flag(words, self.clock())
        if not new:
            return
        await uow.tickets.save(ticket)
        await uow.commit()
        managers = await self.managers.people(self.bot)
        if ticket.card_message_id is None:
            await self.desk.alert_early(uow, ticket, managers, new)
        else:
            await self.desk.tell_group(
                uow, ticket, "staff/critical.html", managers=managers, words=new
            )
            await self.desk.refresh_card(ticket)
        await uow.commit()
