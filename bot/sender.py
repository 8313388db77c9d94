"""The sender: delivers the outbox after each commit, lane by lane.

Rows of one lane (a customer's chat, a ticket's thread in the staff room) go one at a time and
in order; lanes run at once, and each adapter's limiter decides who goes first. What came back
is recorded as it returns, in one transaction with its consequences (the card's message id, a
customer who blocked the bot). A kill -9 can repeat at most the sends in flight, one a lane.

Several instances on one database (`claims`): each lane is sent by one of them at a time. An
instance claims a lane before it sends (a lease, `bot.leases`), checks the lease is still its
own before each send, and leaves alone the lanes others hold; its heartbeat renews its leases,
and a lane whose instance died is taken over once its lease expires. Stopping hands the leases
back. One instance alone claims nothing and writes nothing more.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime

from bot.channels.base import CustomerChannel, Delivery, Outcome, StaffRoom, Unsure
from bot.domain.messages import Outgoing, Say, Urgency
from bot.domain.tickets import Actor, CustomerRef
from bot.durable import passing
from bot.leases import Claims, wall_clock
from bot.metrics import Metrics
from handlers import customer, staff
from handlers.context import Desk
from storage.outbox import CARD, MIRROR, STAFF
from storage.uow import NewUnitOfWork, UnitOfWork

logger = logging.getLogger(__name__)

RETRY_FIRST = 5.0  # a lane whose send failed for a passing reason tries again after this,
RETRY_MOST = 60.0  # doubling up to this, for as long as the messenger is away
MAX_TRIES = 5  # a row that fails for a reason that will not pass (a bug) is given up after this
MAX_HOLD = 30.0  # a lane held back (an album's end) looks again at least this often
LANE = "outbox:"  # a lane's lease is named this and the lane


def utc_now() -> datetime:
    return datetime.now(UTC)


class Sender:
    def __init__(
        self,
        new_uow: NewUnitOfWork,
        desk: Desk,
        staff_room: StaffRoom,
        customers: dict[str, CustomerChannel],
        clock: Callable[[], datetime] = utc_now,
        mirror: CustomerChannel | None = None,
        claims: Claims | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        """`mirror`: a second staff room that gets a copy of each new card and each alert (a
        WeCom group robot), where the shop has one. `claims`: several instances share the
        outbox, and this one claims each lane before it sends (None: it is the only one).
        `metrics`: where the time to the first answer is observed."""
        self.new_uow = new_uow
        self.metrics = metrics or Metrics()
        self.mirror = mirror
        self.desk = desk
        self.staff_room = staff_room
        self.customers = customers
        self.clock = clock
        self._poked = asyncio.Event()
        self._stopping = False
        self._stopped = asyncio.Event()  # wakes lanes that wait (an album's end, a retry)
        self._workers: dict[str, asyncio.Task[None]] = {}
        self._again: set[str] = set()  # lanes poked while their worker was finishing
        self._nudges: dict[str, asyncio.Event] = {}  # wake a lane whose head waits its time
        self._tries: dict[int, int] = {}  # a row's failures that will not pass
        self.retry_first, self.retry_most = RETRY_FIRST, RETRY_MOST
        self._blocked: set[str] = set()  # lanes of customers found unreachable
        self.sent = 0
        self.claims = claims
        self._heartbeat: asyncio.Task[None] | None = None

    def poke(self) -> None:
        """Something was committed: look for new rows."""
        self._poked.set()

    async def run(self) -> None:
        """Deliver until `stop()`."""
        if self.claims is not None and self._heartbeat is None:
            self._heartbeat = asyncio.create_task(self._renew(self.claims))
        while not self._stopping:
            self._poked.clear()
            try:
                await self._scan()
            except Exception:
                logger.exception("The outbox could not be read")
            # among several, look often: rows whose instance died are taken over within 30 s
            look = MAX_HOLD if self.claims is None else self.claims.look_every
            try:
                await asyncio.wait_for(self._poked.wait(), timeout=look)
            except TimeoutError:
                pass

    async def stop(self, grace: float = 3.0) -> None:
        """Finish what is in hand (up to `grace` seconds); what is left goes at the next start,
        or at once from another instance: this one hands its lanes back."""
        self._stopping = True
        self._stopped.set()
        self._poked.set()
        workers = list(self._workers.values())
        if workers:
            _, late = await asyncio.wait(workers, timeout=grace)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            await asyncio.gather(self._heartbeat, return_exceptions=True)
        if self.claims is not None:
            try:
                async with self.new_uow() as uow:
                    await uow.leases.release_all(self.claims.holder, LANE)
                    await uow.commit()
            except Exception as exc:  # they expire by themselves
                logger.warning("The outbox's lanes were not handed back: %s", exc)

    async def idle(self) -> None:
        """Wait until nothing is queued or in flight (tests and the demo)."""
        while True:
            await self._scan()
            if not self._workers:
                async with self.new_uow(read_only=True) as uow:
                    if not await uow.outbox.pending_count():
                        return
                if self.claims is not None:  # what is left is another instance's
                    await self._pause(0.05)
            await asyncio.gather(*list(self._workers.values()), return_exceptions=True)

    async def _scan(self) -> None:
        async with self.new_uow(read_only=True) as uow:
            lanes = await uow.outbox.lanes()
            if self.claims is not None:
                held = await uow.leases.held_by_others(wall_clock(), self.claims.holder, LANE)
                lanes = [lane for lane in lanes if LANE + lane not in held]
        for lane in lanes:
            if lane in self._workers:
                self._again.add(lane)
                if lane in self._nudges:
                    self._nudges[lane].set()
            elif not self._stopping:
                self._workers[lane] = asyncio.create_task(self._work(lane))

    async def _pending(self, lane: str) -> list[Outgoing]:
        async with self.new_uow(read_only=True) as uow:
            return await uow.outbox.pending(lane)

    async def _work(self, lane: str) -> None:
        backoff = self.retry_first
        try:
            while not self._stopping:
                self._again.discard(lane)
                nudged = self._nudges.setdefault(lane, asyncio.Event())
                nudged.clear()
                if self.claims is not None:  # the lane is this instance's, for each send
                    mine = await self._claim(self.claims, lane)
                    if mine is None:
                        await self._pause(backoff)
                        backoff = min(backoff * 2, self.retry_most)
                        continue
                    if not mine:
                        return
                rows = await self._pending(lane)
                if not rows:
                    if self.claims is not None and await self._hand_back(self.claims, lane):
                        continue  # a row came as it was handed back
                    return
                head = rows[0]
                now = self.clock()
                due = due_time(rows)
                if due is not None and due > now:
                    # until its time, or until something new is queued in the lane (what
                    # replaces it, or drops it: an album's next photo, the customer's next word)
                    wait = min((due - now).total_seconds(), MAX_HOLD)
                    await self._pause(max(wait, 0.01), nudged)
                    continue
                if head.collapse and any(r.collapse == head.collapse for r in rows[1:]):
                    await self._record([head], Outcome(Delivery.SENT, [head.id], detail="dropped"))
                    continue
                try:
                    outcome = await self._deliver(rows, lane)
                except Unsure as exc:  # it may have arrived: recorded so, never sent again
                    logger.warning("Send %s in %s unsure: %s", head.id, lane, exc)
                    covers = exc.rows or [head.id]
                    outcome = Outcome(Delivery.UNSURE, covers, detail=str(exc)[:500])
                except Exception as exc:
                    if passing(exc):  # the lane waits, however long
                        logger.warning("Send %s in %s waits: %s", head.id, lane, exc)
                        await self._pause(backoff)
                        backoff = min(backoff * 2, self.retry_most)
                        continue
                    tries = self._tries.get(head.id, 0) + 1
                    self._tries[head.id] = tries
                    logger.exception("Send %s in %s failed, try %s", head.id, lane, tries)
                    if tries < MAX_TRIES:
                        await self._pause(self.retry_first)
                        continue
                    detail = f"{type(exc).__name__}: {exc}"[:500]  # adapters keep secrets out
                    outcome = Outcome(Delivery.FAILED, [head.id], detail=detail)
                backoff = self.retry_first
                self._tries.pop(head.id, None)
                covered = set(outcome.rows or [head.id])
                fresh = rows if covered <= {r.id for r in rows} else await self._pending(lane)
                await self._record([r for r in fresh if r.id in covered] or [head], outcome)
        finally:
            self._workers.pop(lane, None)
            self._nudges.pop(lane, None)
            if lane in self._again and not self._stopping:
                self._again.discard(lane)
                self._workers[lane] = asyncio.create_task(self._work(lane))

    async def _claim(self, claims: Claims, lane: str) -> bool | None:
        """Claim the lane, or renew it; None: the database is away for now."""
        try:
            async with self.new_uow() as uow:
                mine = await uow.leases.claim(LANE + lane, claims.holder, wall_clock(), claims.ttl)
                await uow.commit()
        except Exception as exc:
            if not passing(exc):
                raise
            logger.warning("Lane %s not claimed: %s", lane, exc)
            return None
        if not mine:
            logger.info("Lane %s is another instance's", lane)
        return mine

    async def _hand_back(self, claims: Claims, lane: str) -> bool:
        """The lane is empty: hand it back, so that another instance that queues a row in it
        may send it. True: a row came meanwhile (which that instance, having found the lane
        held, left to this one), and the lane goes on here."""
        try:
            async with self.new_uow() as uow:
                await uow.leases.release(LANE + lane, claims.holder)
                await uow.commit()
            return bool(await self._pending(lane))
        except Exception as exc:  # the heartbeat keeps it; the next row here releases it
            logger.warning("Lane %s not handed back: %s", lane, exc)
            return False

    async def _renew(self, claims: Claims) -> None:
        """The heartbeat: this instance's lanes stay its own while it lives."""
        while True:
            await asyncio.sleep(claims.renew_every)
            try:
                async with self.new_uow() as uow:
                    await uow.leases.renew_all(claims.holder, wall_clock(), claims.ttl, LANE)
                    await uow.commit()
            except Exception as exc:  # renewed at the next beat, or taken over: both fine
                logger.warning("The outbox's lanes were not renewed: %s", exc)

    async def _pause(self, seconds: float, nudged: asyncio.Event | None = None) -> None:
        """Wait, unless the sender stops (or the lane is `nudged`) meanwhile."""
        waits = [asyncio.ensure_future(self._stopped.wait())]
        if nudged is not None:
            waits.append(asyncio.ensure_future(nudged.wait()))
        try:
            await asyncio.wait(waits, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiting in waits:
                waiting.cancel()

    async def _deliver(self, rows: list[Outgoing], lane: str) -> Outcome:
        head = rows[0]

        async def refresh() -> list[Outgoing]:
            return await self._pending(lane)

        if head.channel == STAFF:
            ticket = None
            if head.ticket_id is not None:
                async with self.new_uow(read_only=True) as uow:
                    ticket = await uow.tickets.get(head.ticket_id)
            return await self.staff_room.deliver(rows, ticket, refresh)
        channel = self.mirror if head.channel == MIRROR else self.customers.get(head.channel)
        if channel is None:
            return Outcome(Delivery.FAILED, [head.id], detail=f"no channel {head.channel}")
        return await channel.deliver(rows, refresh)

    # -- recording -------------------------------------------------------------------------

    async def _record(self, rows: list[Outgoing], outcome: Outcome) -> None:
        """Record what came back at once, in a transaction of its own, so that a kill -9
        repeats at most the sends in flight. A passing database fault is waited out (never
        answered by sending again); should recording its consequences fail for good, the row
        is still marked done."""
        backoff = 0.05
        while True:
            try:
                async with self.new_uow() as uow:
                    await self._apply(uow, rows, outcome)
                    await uow.commit()
                break
            except Exception as exc:
                if not passing(exc):
                    logger.exception("What followed send %s was not recorded", rows[0].id)
                    await self._mark_done(rows, outcome)
                    break
                logger.warning("Recording send %s waits: %s", rows[0].id, exc)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
        self.sent += 1
        self._first_answers(rows, outcome)

    def _first_answers(self, rows: list[Outgoing], outcome: Outcome) -> None:
        """A customer's first answer delivered: how long since their message came. The row
        was queued as it came (a Telegram newcomer's greeting, in the transaction that stored
        the update) or in the unit of work that handled it; its time is the wall clock's."""
        if outcome.delivery is not Delivery.SENT or outcome.detail == "dropped":
            return
        now = datetime.now(UTC)
        for row in rows:
            if row.urgency is Urgency.FIRST_REPLY and row.channel not in (STAFF, MIRROR):
                self.metrics.answered_first((now - row.created_at).total_seconds())

    async def _mark_done(self, rows: list[Outgoing], outcome: Outcome) -> None:
        backoff = 0.05
        while True:
            try:
                async with self.new_uow() as uow:
                    await uow.outbox.done(
                        [r.id for r in rows],
                        "dropped" if outcome.detail == "dropped" else outcome.delivery.value,
                        self.clock(),
                        outcome.message_ids or None,
                        outcome.detail or None,
                    )
                    await uow.commit()
                return
            except Exception as exc:
                if not passing(exc):
                    raise
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)

    async def _apply(self, uow: UnitOfWork, rows: list[Outgoing], outcome: Outcome) -> None:
        now = self.clock()
        head = rows[0]
        label = "dropped" if outcome.detail == "dropped" else outcome.delivery.value
        await uow.outbox.done(
            [r.id for r in rows], label, now, outcome.message_ids or None, outcome.detail or None
        )
        if head.channel == STAFF:
            await self._staff_room_answered(uow, head, outcome)
            self._mirror(uow, rows, outcome)
            return
        if head.channel == MIRROR:
            return
        self._follow_up(uow, head, outcome)
        who = CustomerRef(head.channel, head.recipient)
        if outcome.delivery is Delivery.BLOCKED:
            self._blocked.add(head.lane)
            await customer.unreachable(
                uow, self.desk, who, outcome.detail, now, ticket_id=head.ticket_id
            )
        elif outcome.delivery is Delivery.FAILED:
            await customer.refused(uow, self.desk, head.ticket_id, outcome.detail, now)
        elif outcome.delivery is Delivery.UNSURE:
            answer_by = _answer_by(rows)
            if answer_by and head.ticket_id is not None:  # its writer hears of the doubt
                await staff.answer_unsure(uow, self.desk, head.ticket_id, Actor(*answer_by))
        elif label == "sent":
            if head.lane in self._blocked:
                self._blocked.discard(head.lane)
                await customer.reachable(uow, self.desk, who)
            answer_by = _answer_by(rows)
            if answer_by and head.ticket_id is not None:
                actor = Actor(*answer_by)
                await staff.answer_delivered(uow, self.desk, head.ticket_id, actor, now)

    @staticmethod
    def _follow_up(uow: UnitOfWork, head: Outgoing, outcome: Outcome) -> None:
        """What the staff room hears once a private message went, or did not (blocked: never
        started, or blocked; failed or unsure: it may not have arrived)."""
        follow = head.payload.get("follow_up")
        if not follow:
            return
        if outcome.delivery is Delivery.SENT:
            said = follow.get("sent")
        elif outcome.delivery is Delivery.BLOCKED:
            said = follow.get("blocked") or follow.get("not_sent")
        else:  # failed, or unsure: it may even have arrived
            said = follow.get("not_sent")
        if said:
            to = Actor(*follow["to"]) if follow.get("to") else None
            uow.outbox.to_room(Say.from_json(said), urgency=Urgency.RELAY, to=to)

    async def _staff_room_answered(
        self, uow: UnitOfWork, head: Outgoing, outcome: Outcome
    ) -> None:
        """Staff may answer any message of a ticket's thread: each is linked to the ticket; the
        card's id and the ticket's topic are kept on the ticket."""
        if head.ticket_id is None or outcome.delivery is not Delivery.SENT:
            if outcome.delivery is not Delivery.SENT:
                logger.error("Staff room: %s %s: %s", head.kind, outcome.delivery, outcome.detail)
            return
        if outcome.room_id is not None:
            for message_id in outcome.message_ids:
                if message_id.isdigit():
                    await uow.links.link(outcome.room_id, int(message_id), head.ticket_id)
        card = outcome.card_id if head.kind == CARD else None
        await uow.tickets.place(head.ticket_id, card_message_id=card, topic_id=outcome.topic_id)

    def _mirror(self, uow: UnitOfWork, rows: list[Outgoing], outcome: Outcome) -> None:
        """A new card or an alert the staff room has shown: the mirror gets a copy."""
        if self.mirror is None or outcome.delivery is not Delivery.SENT:
            return
        for row in rows:
            if row.kind == CARD or row.payload.get("alert"):
                uow.outbox.to_mirror(row.say, ticket_id=row.ticket_id)


def _answer_by(rows: list[Outgoing]) -> list[str] | None:
    return next((r.payload["answer_by"] for r in rows if "answer_by" in r.payload), None)


def due_time(rows: list[Outgoing]) -> datetime | None:
    """When the lane's head may go: its own time; for a photo of an album, the time of the
    album's last photo queued so far (an album goes as one, once its last photo's window has
    passed: a photo held for what was behind it gives way to that)."""
    head = rows[0]
    album = head.payload.get("album")
    if not album:
        return head.not_before
    return next(r.not_before for r in reversed(rows) if r.payload.get("album") == album)
