"""The ticket: one customer's complaint from the first message to its resolution.

Every state change appends an event (what, who, when); storage writes them out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum


class Status(StrEnum):
    INTAKE = "intake"  # the bot is still asking the customer
    OPEN = "open"  # in the staff group, waiting for staff and the manager
    REMEDY_OFFERED = "remedy_offered"  # the customer has options to choose from
    REMEDY_CHOSEN = "remedy_chosen"  # staff must carry out what the customer chose
    RESOLVED = "resolved"  # done; the follow-up question is still to come or unanswered
    CLOSED = "closed"  # rated, or taken as accepted when the follow-up went unanswered
    CANCELLED = "cancelled"  # the customer cancelled the intake


EMPTY_INTAKE = "empty intake"  # a cancellation's detail: the intake timed out holding nothing

ACTIVE = (Status.INTAKE, Status.OPEN, Status.REMEDY_OFFERED, Status.REMEDY_CHOSEN)
WITH_STAFF = (Status.OPEN, Status.REMEDY_OFFERED, Status.REMEDY_CHOSEN)


class EventKind(StrEnum):
    RECEIVED = "received"
    IN_INTAKE = "in_intake"
    SUBMITTED = "submitted"
    TAKEN = "taken"
    ANSWERED = "answered"
    REMEDY_OFFERED = "remedy_offered"
    REMEDY_CHOSEN = "remedy_chosen"
    RESOLVED = "resolved"
    REOPENED = "reopened"
    CANCELLED = "cancelled"
    UNDELIVERABLE = "undeliverable"
    AUTO_SUBMITTED = "auto_submitted"
    ESCALATED = "escalated"
    FLAGGED = "flagged"
    FOLLOW_UP_ASKED = "follow_up_asked"
    RATED = "rated"
    CLOSED = "closed"
    HELD_BACK = "held_back"
    FOLLOW_UP_UNDELIVERED = "follow_up_undelivered"
    FACTS_SET = "facts_set"  # staff set the product, batch or root cause


@dataclass(frozen=True)
class CustomerRef:
    """Who a customer is, whatever the messenger: the channel and its id for them, as text
    (a Telegram user id, a WeCom external_userid)."""

    channel: str
    id: str

    def __str__(self) -> str:
        return f"{self.channel}:{self.id}"


@dataclass(frozen=True)
class Actor:
    """Who did something: a customer, a staff member, a manager, or the bot itself."""

    id: str
    name: str
    role: str  # customer | staff | manager | bot


BOT = Actor("0", "bot", "bot")


@dataclass(frozen=True)
class Event:
    kind: EventKind
    actor: Actor
    at: datetime
    detail: str = ""


class TicketStateError(Exception):
    """The action does not fit the ticket's state (a stale button, a double tap)."""


@dataclass
class Ticket:
    """A complaint. Fields gathered during the intake are filled in step by step."""

    customer_id: str
    customer_name: str
    language: str
    created_at: datetime
    id: int | None = None
    channel: str = "telegram"
    customer_username: str | None = None
    status: Status = Status.INTAKE
    # the intake
    category: str | None = None
    order_number: str | None = None
    order_skipped: bool = False
    story: list[str] = field(default_factory=list)
    photos: list[str] = field(default_factory=list)
    photos_done: bool = False
    contact: str | None = None
    contact_skipped: bool = False
    # after submit
    submitted_at: datetime | None = None
    severity: str | None = None  # suggested from the text
    severity_words: list[str] = field(default_factory=list)
    taken_by: Actor | None = None
    first_response_at: datetime | None = None
    first_response_by: Actor | None = None
    tier: str | None = None
    chosen_option: int | None = None
    resolved_at: datetime | None = None
    customer_blocked: bool = False
    # the clock and its signals
    last_customer_at: datetime | None = None
    clock_started_at: datetime | None = None  # submitted, or reopened
    deadline_round: int = 0  # a reopened ticket starts a new round of deadlines
    incomplete: bool = False  # submitted by the clock before the customer finished
    priority: str | None = None  # "critical" once a safety or public-threat word appears
    priority_words: list[str] = field(default_factory=list)
    repeat_of: int | None = None  # the same customer's previous ticket within 30 days
    # the customer's history as it stood at submit (`bot.domain.history.summarise`), and the
    # severity before a repeat complaint raised it
    history: dict[str, object] | None = None
    raised_from: str | None = None
    follow_up_asked_at: datetime | None = None
    satisfaction: int | None = None
    satisfaction_comment: str | None = None
    closed_at: datetime | None = None
    awaiting_comment: bool = False  # rated: the customer's next words are their comment
    follow_up_missed: bool = False  # the question could not reach them: it waits for them
    # what the complaint is about and why it happened (set by staff, or from the order)
    product: str | None = None
    batch: str | None = None
    root_cause: str | None = None  # product_defect | service_mistake | process_gap
    responsible: str | None = None  # store | supply_chain | courier
    order_facts: dict[str, str] | None = None  # the order as the shop's records have it
    # where it lives in the staff group
    card_message_id: int | None = None
    topic_id: int | None = None
    events: list[Event] = field(default_factory=list)  # new ones, not yet stored

    @property
    def reference(self) -> str:
        return reference(self.id)

    @property
    def customer(self) -> CustomerRef:
        return CustomerRef(self.channel, self.customer_id)

    @property
    def is_active(self) -> bool:
        return self.status in ACTIVE

    @property
    def is_with_staff(self) -> bool:
        return self.status in WITH_STAFF

    # -- lifecycle -------------------------------------------------------------------------

    @classmethod
    def receive(
        cls,
        who: CustomerRef,
        name: str,
        language: str,
        now: datetime,
        username: str | None = None,
    ) -> Ticket:
        """A customer's first message opens a ticket in intake."""
        ticket = cls(
            customer_id=who.id,
            customer_name=name,
            customer_username=username,
            language=language,
            created_at=now,
            channel=who.channel,
        )
        ticket._record(EventKind.RECEIVED, ticket._customer(), now)
        ticket._record(EventKind.IN_INTAKE, BOT, now)
        return ticket

    def submit(self, now: datetime, severity: str | None, words: list[str]) -> None:
        self._require(Status.INTAKE)
        self.status = Status.OPEN
        self.submitted_at = now
        self.clock_started_at = now
        self.severity = severity
        self.severity_words = list(words)
        self._record(EventKind.SUBMITTED, self._customer(), now)

    def auto_submit(self, now: datetime, severity: str | None, words: list[str]) -> None:
        """The customer left the intake unfinished: it goes to staff as it stands."""
        self.submit(now, severity, words)
        self.incomplete = True
        self._record(EventKind.AUTO_SUBMITTED, BOT, now)

    def note_customer_message(self, now: datetime) -> None:
        self.last_customer_at = now

    def flag(self, words: list[str], now: datetime) -> list[str]:
        """Safety or public-threat words: the ticket becomes critical. Returns the new words."""
        new = [w for w in words if w not in self.priority_words]
        if not new:
            return []
        self.priority = "critical"
        self.priority_words = [*self.priority_words, *new]
        self._record(EventKind.FLAGGED, BOT, now, ",".join(new))
        return new

    def escalate(self, kind: str, now: datetime) -> None:
        self._record(EventKind.ESCALATED, BOT, now, kind)

    def hold_back(self, actor: Actor, phrase: str, now: datetime) -> None:
        """A staff reply with a banned phrase was not relayed."""
        self._record(EventKind.HELD_BACK, actor, now, phrase)

    def ask_follow_up(self, now: datetime) -> None:
        self._require(Status.RESOLVED)
        self.follow_up_asked_at = now
        self.follow_up_missed = False
        self.satisfaction = None  # a reopened ticket is asked again
        self._record(EventKind.FOLLOW_UP_ASKED, BOT, now)

    def rate(self, score: int, now: datetime) -> bool:
        """The customer's satisfaction, 1-5. A low score reopens the ticket (True)."""
        self._require(Status.RESOLVED)
        if self.follow_up_asked_at is None or self.satisfaction is not None:
            raise TicketStateError("no question to answer")
        if not 1 <= score <= 5:
            raise TicketStateError("score out of range")
        self.satisfaction = score
        self.awaiting_comment = True
        self._record(EventKind.RATED, self._customer(), now, str(score))
        if score <= 2:
            self.reopen(self._customer(), now)
            return True
        self.status = Status.CLOSED
        self.closed_at = now
        self._record(EventKind.CLOSED, self._customer(), now, "rated")
        return False

    def add_comment(self, text: str) -> None:
        self.awaiting_comment = False
        self.satisfaction_comment = (
            f"{self.satisfaction_comment}\n{text}" if self.satisfaction_comment else text
        )

    def decline_comment(self) -> None:
        self.awaiting_comment = False

    def close_as_accepted(self, now: datetime) -> None:
        """No answer to the follow-up: the solution is taken as accepted."""
        self._require(Status.RESOLVED)
        self.status = Status.CLOSED
        self.closed_at = now
        self._record(EventKind.CLOSED, BOT, now, "accepted: no answer")

    def cancel(self, now: datetime) -> None:
        self._require(Status.INTAKE)
        self.status = Status.CANCELLED
        self._record(EventKind.CANCELLED, self._customer(), now)

    def drop_empty(self, now: datetime) -> None:
        """The customer opened the chat and said nothing: no complaint to pass on. The intake
        ends as cancelled, by the desk."""
        self._require(Status.INTAKE)
        self.status = Status.CANCELLED
        self._record(EventKind.CANCELLED, BOT, now, EMPTY_INTAKE)

    def take(self, actor: Actor, now: datetime) -> None:
        self._require(Status.OPEN, Status.REMEDY_OFFERED, Status.REMEDY_CHOSEN)
        if self.taken_by and self.taken_by.id == actor.id:
            raise TicketStateError("already yours")
        self.taken_by = actor
        self._record(EventKind.TAKEN, actor, now)

    def record_answer(self, actor: Actor, now: datetime) -> bool:
        """A staff answer reached the customer; True when it was the first human response."""
        if self.first_response_at is not None:
            return False
        self.first_response_at = now
        self.first_response_by = actor
        self._record(EventKind.ANSWERED, actor, now)
        return True

    def offer_remedy(self, tier_key: str, actor: Actor, now: datetime) -> None:
        self._require(Status.OPEN, Status.REMEDY_OFFERED)
        self.status = Status.REMEDY_OFFERED
        self.tier = tier_key
        self.chosen_option = None
        self._record(EventKind.REMEDY_OFFERED, actor, now, tier_key)

    def choose_remedy(self, tier_key: str, option: int, now: datetime) -> None:
        self._require(Status.REMEDY_OFFERED)
        if tier_key != self.tier:
            raise TicketStateError("those options were replaced")
        self.status = Status.REMEDY_CHOSEN
        self.chosen_option = option
        self._record(EventKind.REMEDY_CHOSEN, self._customer(), now, f"{tier_key}:{option}")

    def hand_to_manager(self, tier_key: str, actor: Actor, now: datetime) -> None:
        """A tier with no options: the manager handles it in person; staff await 'done'."""
        self.offer_remedy(tier_key, actor, now)
        self.status = Status.REMEDY_CHOSEN

    def resolve(self, actor: Actor, now: datetime, detail: str = "") -> None:
        self._require(Status.OPEN, Status.REMEDY_OFFERED, Status.REMEDY_CHOSEN)
        self.status = Status.RESOLVED
        self.resolved_at = now
        self._record(EventKind.RESOLVED, actor, now, detail)

    def reopen(self, actor: Actor, now: datetime) -> None:
        self._require(Status.RESOLVED, Status.CLOSED)
        self.status = Status.OPEN
        self.resolved_at = None
        self.closed_at = None
        self.tier = None
        self.chosen_option = None
        self.first_response_at = None  # a new round: a human must answer again
        self.first_response_by = None
        self.follow_up_asked_at = None
        self.clock_started_at = now
        self.deadline_round += 1
        self._record(EventKind.REOPENED, actor, now)

    @property
    def follow_up_pending(self) -> bool:
        """The satisfaction question was asked and is not answered yet."""
        return (
            self.status is Status.RESOLVED
            and self.follow_up_asked_at is not None
            and self.satisfaction is None
        )

    def follow_up_undelivered(self, now: datetime, reason: str) -> None:
        """The question never reached the customer (the messenger refused it): it is not taken
        as accepted after the silence; the ticket waits for them to write again."""
        self._require(Status.RESOLVED)
        self.follow_up_asked_at = None
        self.follow_up_missed = True
        self._record(EventKind.FOLLOW_UP_UNDELIVERED, BOT, now, reason)

    def set_facts(self, actor: Actor, now: datetime, **facts: str | None) -> list[str]:
        """Staff say what the complaint is about (product, batch) and why it happened (root
        cause, who is responsible). Returns the names of the facts that changed."""
        changed = []
        for name in ("product", "batch", "root_cause", "responsible"):
            if name in facts and facts[name] != getattr(self, name):
                setattr(self, name, facts[name])
                changed.append(name)
        if changed:
            detail = ", ".join(f"{n}={getattr(self, n) or ''}" for n in changed)
            self._record(EventKind.FACTS_SET, actor, now, detail)
        return changed

    def show_order(self, facts: dict[str, str]) -> None:
        """The order as the shop's records have it: shown beside the complaint; its product
        and batch are the ticket's unless staff said otherwise."""
        self.order_facts = dict(facts) or None
        self.product = self.product or facts.get("product")
        self.batch = self.batch or facts.get("batch")

    def mark_undeliverable(self, now: datetime, reason: str) -> None:
        self.customer_blocked = True
        self._record(EventKind.UNDELIVERABLE, BOT, now, reason)

    def mark_reachable(self) -> None:
        self.customer_blocked = False

    # -- helpers ---------------------------------------------------------------------------

    def _customer(self) -> Actor:
        return Actor(self.customer_id, self.customer_name, "customer")

    def _require(self, *allowed: Status) -> None:
        if self.status not in allowed:
            raise TicketStateError(f"ticket is {self.status}, expected one of {allowed}")

    def _record(self, kind: EventKind, actor: Actor, now: datetime, detail: str = "") -> None:
        self.events.append(Event(kind, actor, now, detail))


def reference(ticket_id: int | None) -> str:
    """The reference customers and staff quote: T-000123."""
    return f"T-{ticket_id or 0:06d}"


MAX_TICKET_ID = 2**31 - 1  # the tickets table's integer id


def parse_reference(text: str) -> int | None:
    """T-000123 -> 123; None for anything else (other digits than 0-9, an id no ticket can
    have)."""
    text = text.strip().upper()
    digits = text[2:]
    if text.startswith("T-") and digits.isascii() and digits.isdigit():
        ticket_id = int(digits)
        return ticket_id if 0 < ticket_id <= MAX_TICKET_ID else None
    return None
