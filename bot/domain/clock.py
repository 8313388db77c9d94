"""The clock a good shop keeps: deadlines computed from a ticket's state, working hours during
which the human clocks run, and what to do when a deadline passes.

Deadlines are data: `plan()` says which ones a ticket should have now; storage keeps them as
rows; one scheduler wakes at the earliest and asks `due_action()` what it means today (a
deadline that was met in the meantime means nothing).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

from bot.domain.tickets import Status, Ticket


class DeadlineKind(StrEnum):
    INTAKE_TIMEOUT = "intake_timeout"  # an unfinished intake is submitted as it stands
    FIRST_RESPONSE = "first_response"  # a human has answered
    PROGRESS = "progress"  # the customer has heard of progress
    RESOLUTION = "resolution"  # the problem is solved
    FOLLOW_UP = "follow_up"  # the satisfaction question goes out
    AUTO_CLOSE = "auto_close"  # no answer to it: closed as accepted


HUMAN_CLOCKS = (DeadlineKind.FIRST_RESPONSE, DeadlineKind.PROGRESS, DeadlineKind.RESOLUTION)


@dataclass(frozen=True)
class SlaPolicy:
    first_response: timedelta = timedelta(minutes=10)
    progress: timedelta = timedelta(hours=2)
    resolution: timedelta = timedelta(hours=24)
    follow_up_after: timedelta = timedelta(hours=24)
    auto_close_after: timedelta = timedelta(days=5)
    intake_timeout: timedelta = timedelta(minutes=10)


@dataclass(frozen=True)
class WorkingHours:
    """When people are at work, in the shop's time zone. No hours: always open.

    A day's window runs from `opens` to the next `closes`: `closes` at or before `opens` (such
    as 00:00, or 02:00 after 22:00) means the window ends the next day. The part after midnight
    belongs to the day the window opened on: `days` are the opening days.
    """

    timezone: str = "Asia/Shanghai"
    opens: time | None = None
    closes: time | None = None
    days: frozenset[int] = field(default_factory=lambda: frozenset(range(7)))  # 0 = Monday

    def __post_init__(self) -> None:
        if (self.opens is None) != (self.closes is None):
            raise ValueError("working hours need both opens and closes")
        if self.always:
            return
        if self.opens == self.closes:
            raise ValueError("working hours cannot open and close at the same time")
        if not self.days or not self.days <= frozenset(range(7)):
            raise ValueError("working hours need at least one day, 0 (Monday) to 6")

    @property
    def always(self) -> bool:
        return self.opens is None or self.closes is None

    def _zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def _window(self, day: date) -> tuple[datetime, datetime]:
        """The window that opens on `day` (a local date), as aware UTC."""
        assert self.opens is not None and self.closes is not None
        zone = self._zone()
        last = day if self.closes > self.opens else day + timedelta(days=1)
        opening = datetime.combine(day, self.opens, tzinfo=zone)
        closing = datetime.combine(last, self.closes, tzinfo=zone)
        return opening.astimezone(UTC), closing.astimezone(UTC)

    def _windows(self, at: datetime, days: int) -> list[tuple[datetime, datetime]]:
        """The working days' windows opening from the day before `at` (local) on, in order."""
        first = at.astimezone(self._zone()).date() - timedelta(days=1)
        dates = (first + timedelta(days=n) for n in range(days))
        return [self._window(d) for d in dates if d.weekday() in self.days]

    def _open_window(self, at: datetime) -> tuple[datetime, datetime] | None:
        """The window `at` falls in, if any (an overnight one may have opened the day before)."""
        return next(((o, c) for o, c in self._windows(at, 2) if o <= at < c), None)

    def is_open(self, at: datetime) -> bool:
        return self.always or self._open_window(at) is not None

    def next_opening(self, at: datetime) -> datetime:
        """`at` itself when open; otherwise when people are next back (aware UTC)."""
        if self.is_open(at):
            return at
        for opening, _ in self._windows(at, 9):
            if opening > at:
                return opening
        return at  # no working day configured: treat as always open

    def _closing(self, at: datetime) -> datetime:
        """When the window `at` falls in closes (`at` must be within working hours)."""
        window = self._open_window(at)
        assert window is not None
        return window[1]

    def add(self, start: datetime, duration: timedelta) -> datetime:
        """`duration` of working time after `start`: the clock pauses outside working hours."""
        if self.always:
            return start + duration
        remaining = duration
        cursor = self.next_opening(start)
        for _ in range(400):
            closing = self._closing(cursor)
            if cursor + remaining <= closing:
                return cursor + remaining
            remaining -= closing - cursor
            cursor = self.next_opening(closing)
        return cursor + remaining


@dataclass(frozen=True)
class Deadline:
    kind: DeadlineKind
    due_at: datetime


def plan(ticket: Ticket, sla: SlaPolicy, hours: WorkingHours) -> list[Deadline]:
    """The deadlines this ticket should have now, given its state."""
    deadlines: list[Deadline] = []
    if ticket.status is Status.INTAKE:
        started = ticket.last_customer_at or ticket.created_at
        deadlines.append(Deadline(DeadlineKind.INTAKE_TIMEOUT, started + sla.intake_timeout))
        return deadlines
    if ticket.status in (Status.OPEN, Status.REMEDY_OFFERED, Status.REMEDY_CHOSEN):
        start = ticket.clock_started_at or ticket.submitted_at or ticket.created_at
        if ticket.first_response_at is None:
            deadlines.append(
                Deadline(DeadlineKind.FIRST_RESPONSE, hours.add(start, sla.first_response))
            )
        if ticket.status is Status.OPEN:
            deadlines.append(Deadline(DeadlineKind.PROGRESS, hours.add(start, sla.progress)))
        deadlines.append(Deadline(DeadlineKind.RESOLUTION, hours.add(start, sla.resolution)))
        return deadlines
    if ticket.status is Status.RESOLVED and ticket.resolved_at is not None:
        if ticket.follow_up_missed:  # the question could not reach them: wait for them
            return deadlines
        if ticket.follow_up_asked_at is None:
            deadlines.append(
                Deadline(DeadlineKind.FOLLOW_UP, ticket.resolved_at + sla.follow_up_after)
            )
        elif ticket.satisfaction is None:
            deadlines.append(
                Deadline(DeadlineKind.AUTO_CLOSE, ticket.follow_up_asked_at + sla.auto_close_after)
            )
    return deadlines


def next_deadline(ticket: Ticket, sla: SlaPolicy, hours: WorkingHours) -> Deadline | None:
    """The next human deadline, as the card shows it."""
    human = [d for d in plan(ticket, sla, hours) if d.kind in HUMAN_CLOCKS]
    return min(human, key=lambda d: d.due_at) if human else None


def due_action(ticket: Ticket, kind: DeadlineKind) -> bool:
    """Whether a passed deadline still calls for action (it may have been met since)."""
    if kind is DeadlineKind.INTAKE_TIMEOUT:
        return ticket.status is Status.INTAKE
    if kind is DeadlineKind.FIRST_RESPONSE:
        return ticket.is_with_staff and ticket.first_response_at is None
    if kind is DeadlineKind.PROGRESS:
        return ticket.status is Status.OPEN
    if kind is DeadlineKind.RESOLUTION:
        return ticket.is_with_staff
    if kind is DeadlineKind.FOLLOW_UP:
        return (
            ticket.status is Status.RESOLVED
            and ticket.follow_up_asked_at is None
            and not ticket.follow_up_missed
        )
    if kind is DeadlineKind.AUTO_CLOSE:
        return ticket.follow_up_pending
    return False


def waited(ticket: Ticket, now: datetime) -> timedelta:
    """How long the customer has been waiting since the ticket reached staff."""
    start = ticket.clock_started_at or ticket.submitted_at or ticket.created_at
    return max(now - start, timedelta(0))


def weekly_due(now: datetime, timezone: str, weekday: int, at: time) -> datetime:
    """When this week's report is due (weekday 0 = Monday, at the shop's local time), in UTC;
    it may still be ahead of `now`."""
    zone = ZoneInfo(timezone)
    local = now.astimezone(zone)
    monday = local.date() - timedelta(days=local.weekday())
    return datetime.combine(monday + timedelta(days=weekday), at, zone).astimezone(UTC)
