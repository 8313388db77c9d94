"""The outbox: what the desk says, queued in the transaction that decided it, delivered after
the commit by the sender (`bot.sender`), which records each row's outcome and message ids."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.domain.messages import Outgoing, Say, Urgency
from bot.domain.tickets import Actor, CustomerRef
from storage.models import OutboxRow

STAFF = "staff"  # the channel of the staff room's rows
MIRROR = "mirror"  # the channel (and lane) of copies for a second staff room (a WeCom group)

# kinds of row
SAY = "say"  # to a customer
GREETING = "greeting"  # a newcomer's first answer, queued by the poller
CLEAR = "clear"  # take the choices off a message a customer tapped
CARD = "card"  # a ticket's card in the staff room (with its photos)
CARD_EDIT = "card_edit"  # the card shows the ticket's new state
THREAD = "thread"  # into a ticket's thread in the staff room
RELAY = "relay"  # a customer's message shown in its ticket's thread (mergeable)
ROOM = "room"  # to the staff room, about no ticket's thread
MIRRORED = "mirrored"  # a new card or an alert, copied to the mirror


def customer_lane(who: CustomerRef) -> str:
    return f"{who.channel}:{who.id}"


def thread_lane(ticket_id: int | None) -> str:
    return f"{STAFF}:t{ticket_id}" if ticket_id else f"{STAFF}:room"


class Outbox:
    """Queue messages in the current transaction; nothing is sent before the commit."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self.added = 0

    def _add(
        self,
        *,
        channel: str,
        recipient: str,
        lane: str,
        kind: str,
        urgency: Urgency,
        payload: dict[str, Any],
        ticket_id: int | None = None,
        not_before: datetime | None = None,
        collapse: str | None = None,
    ) -> None:
        self.session.add(
            OutboxRow(
                channel=channel,
                recipient=recipient,
                lane=lane,
                ticket_id=ticket_id,
                kind=kind,
                urgency=int(urgency),
                payload=payload,
                created_at=datetime.now(UTC),
                not_before=not_before,
                collapse=collapse,
            )
        )
        self.added += 1

    def to_customer(
        self,
        who: CustomerRef,
        say: Say,
        *,
        ticket_id: int | None = None,
        urgency: Urgency = Urgency.RELAY,
        kind: str = SAY,
        not_before: datetime | None = None,
        collapse: str | None = None,
        answer_by: Actor | None = None,
        if_sent: Say | None = None,
        if_blocked: Say | None = None,
        if_not_sent: Say | None = None,
        tell: Actor | None = None,
    ) -> None:
        """`answer_by`: a staff member's answer; once it has reached the customer, the sender
        tells the desk (`handlers.staff.answer_delivered`). `if_sent`, `if_blocked`,
        `if_not_sent`: what the staff room is told (meant for `tell`) once the messenger has
        answered, by how it went (sent; refused as blocked: a manager who never started a chat
        with the bot; failed otherwise, or unsure): a message into someone's private chat."""
        payload: dict[str, Any] = {"say": say.to_json()}
        if answer_by is not None:
            payload["answer_by"] = [answer_by.id, answer_by.name, answer_by.role]
        if if_sent is not None or if_blocked is not None or if_not_sent is not None:
            payload["follow_up"] = {
                "sent": if_sent.to_json() if if_sent is not None else None,
                "blocked": if_blocked.to_json() if if_blocked is not None else None,
                "not_sent": if_not_sent.to_json() if if_not_sent is not None else None,
                "to": [tell.id, tell.name, tell.role] if tell is not None else None,
            }
        self._add(
            channel=who.channel,
            recipient=who.id,
            lane=customer_lane(who),
            kind=kind,
            urgency=urgency,
            payload=payload,
            ticket_id=ticket_id,
            not_before=not_before,
            collapse=collapse,
        )

    def clear_choices(self, who: CustomerRef, message_ref: str) -> None:
        """The choices under that message are used up: take them off."""
        self._add(
            channel=who.channel,
            recipient=who.id,
            lane=customer_lane(who),
            kind=CLEAR,
            urgency=Urgency.REPORT,
            payload={"message": message_ref},
        )

    def clear_room_choices(self, ticket_id: int, message_ref: str) -> None:
        """The choices under that staff-room message are used up."""
        self._add(
            channel=STAFF,
            recipient=STAFF,
            lane=thread_lane(ticket_id),
            kind=CLEAR,
            urgency=Urgency.REPORT,
            payload={"message": message_ref},
            ticket_id=ticket_id,
        )

    def card(self, ticket_id: int, card: Say) -> None:
        """Post the ticket's card (what follows it, its photos and the rest of the story, are
        rows of their own in its thread)."""
        self._add(
            channel=STAFF,
            recipient=STAFF,
            lane=thread_lane(ticket_id),
            kind=CARD,
            urgency=Urgency.CARD,
            payload={"say": card.to_json()},
            ticket_id=ticket_id,
        )

    def card_edit(self, ticket_id: int, card: Say) -> None:
        """Show the ticket's new state on its card (only the latest of several is sent)."""
        self._add(
            channel=STAFF,
            recipient=STAFF,
            lane=thread_lane(ticket_id),
            kind=CARD_EDIT,
            urgency=Urgency.CARD,
            payload={"say": card.to_json()},
            ticket_id=ticket_id,
            collapse=f"card:{ticket_id}",
        )

    def to_thread(
        self,
        ticket_id: int,
        say: Say,
        *,
        urgency: Urgency = Urgency.CARD,
        reply_to: str | None = None,
        relay: bool = False,
        album: str | None = None,
        not_before: datetime | None = None,
        merge: tuple[str, str] | None = None,
        alert: bool = False,
        to: Actor | None = None,
    ) -> None:
        """Into the ticket's thread in the staff room (its topic, or as a reply to its card).
        `relay`: a customer's message; `merge` (its header and text): consecutive texts may go
        as one message while they wait for the room. `alert`: an escalation, also mirrored.
        `to`: meant for that one person (a shared group shows it to all, a room of 1:1 chats
        sends it to them only)."""
        self._add(
            channel=STAFF,
            recipient=STAFF,
            lane=thread_lane(ticket_id),
            kind=RELAY if relay else THREAD,
            urgency=urgency,
            payload={
                "say": say.to_json(),
                "reply_to": reply_to,
                "album": album,
                "merge": list(merge) if merge else None,
                "alert": alert,
                **({"to": to.id} if to is not None else {}),
            },
            ticket_id=ticket_id,
            not_before=not_before,
        )

    def to_room(
        self,
        say: Say,
        *,
        ticket_id: int | None = None,
        urgency: Urgency = Urgency.CARD,
        alert: bool = False,
        to: Actor | None = None,
    ) -> None:
        """To the staff room as a message of its own (replies to it still find `ticket_id`).
        `alert`: an escalation, also mirrored. `to`: an answer meant for that one person (an
        insight reply, a refusal, how to answer a customer): a shared group shows it to all,
        a room of 1:1 chats sends it to that person only."""
        self._add(
            channel=STAFF,
            recipient=STAFF,
            lane=thread_lane(None),
            kind=ROOM,
            urgency=urgency,
            payload={"say": say.to_json(), "alert": alert, **({"to": to.id} if to else {})},
            ticket_id=ticket_id,
        )

    def to_mirror(self, say: Say, *, ticket_id: int | None = None) -> None:
        """A copy of a new card or an alert for the mirror (a WeCom group robot)."""
        self._add(
            channel=MIRROR,
            recipient=MIRROR,
            lane=MIRROR,
            kind=MIRRORED,
            urgency=Urgency.REPORT,
            payload={"say": Say(say.text).to_json()},
            ticket_id=ticket_id,
        )

    async def drop(self, collapse: str) -> None:
        """Pending rows with this key are no longer wanted."""
        await self.session.execute(
            update(OutboxRow)
            .where(OutboxRow.collapse == collapse, OutboxRow.sent_at.is_(None))
            .values(sent_at=datetime.now(UTC), outcome="dropped")
        )

    # -- the sender's side -----------------------------------------------------------------

    async def lanes(self) -> list[str]:
        """Lanes with rows to send."""
        rows = await self.session.scalars(
            select(OutboxRow.lane).where(OutboxRow.sent_at.is_(None)).distinct()
        )
        return list(rows)

    async def pending(self, lane: str, limit: int = 50) -> list[Outgoing]:
        rows = await self.session.scalars(
            select(OutboxRow)
            .where(OutboxRow.sent_at.is_(None), OutboxRow.lane == lane)
            .order_by(OutboxRow.id)
            .limit(limit)
        )
        return [_queued(r) for r in rows]

    async def pending_count(self) -> int:
        return int(
            await self.session.scalar(
                select(func.count()).select_from(OutboxRow).where(OutboxRow.sent_at.is_(None))
            )
            or 0
        )

    async def has_pending_card(self, ticket_id: int) -> bool:
        found = await self.session.scalar(
            select(OutboxRow.id)
            .where(
                OutboxRow.ticket_id == ticket_id,
                OutboxRow.kind == CARD,
                OutboxRow.sent_at.is_(None),
            )
            .limit(1)
        )
        return found is not None

    async def sent_card(self, ticket_id: int) -> bool:
        """Whether the ticket's card went out (its id may not be stored yet: a crash between)."""
        found = await self.session.scalar(
            select(OutboxRow.id)
            .where(
                OutboxRow.ticket_id == ticket_id,
                OutboxRow.kind == CARD,
                OutboxRow.outcome.in_(("sent", "unsure")),  # unsure: it may be there
            )
            .limit(1)
        )
        return found is not None

    async def thread_in_flight(self) -> bool:
        """Whether a message of some ticket's thread is being sent to the staff room (its
        link to the ticket is recorded once it has gone)."""
        found = await self.session.scalar(
            select(OutboxRow.id)
            .where(
                OutboxRow.channel == STAFF,
                OutboxRow.ticket_id.is_not(None),
                OutboxRow.sent_at.is_(None),
                OutboxRow.kind.in_((THREAD, RELAY, ROOM, CARD)),
            )
            .limit(1)
        )
        return found is not None

    async def sent_since(self, lane: str, since: datetime) -> int:
        """How many rows went out in this lane since then."""
        return int(
            await self.session.scalar(
                select(func.count())
                .select_from(OutboxRow)
                .where(
                    OutboxRow.lane == lane, OutboxRow.outcome == "sent", OutboxRow.sent_at > since
                )
            )
            or 0
        )

    async def ticket_of(self, row_id: int) -> int | None:
        """The ticket an outbox row was about."""
        return await self.session.scalar(select(OutboxRow.ticket_id).where(OutboxRow.id == row_id))

    async def done(
        self,
        ids: list[int],
        outcome: str,
        at: datetime,
        message_ids: list[str] | None = None,
        detail: str | None = None,
    ) -> None:
        await self.session.execute(
            update(OutboxRow)
            .where(OutboxRow.id.in_(ids))
            .values(sent_at=at, outcome=outcome, message_ids=message_ids, detail=detail)
        )

    async def history(self, lane: str | None = None) -> list[tuple[Outgoing, str | None]]:
        """Every row (sent or not) with its outcome, oldest first: the desk's transcript."""
        query = select(OutboxRow).order_by(OutboxRow.id)
        if lane is not None:
            query = query.where(OutboxRow.lane == lane)
        return [(_queued(r), r.outcome) for r in await self.session.scalars(query)]


def _queued(r: OutboxRow) -> Outgoing:
    return Outgoing(
        r.id,
        r.channel,
        r.recipient,
        r.lane,
        r.ticket_id,
        r.kind,
        Urgency(r.urgency),
        dict(r.payload or {}),
        r.created_at,
        r.not_before,
        r.collapse,
    )
