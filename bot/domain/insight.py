"""Insight for the manager, in plain Python: the periods a manager asks about, the figures of a
summary (computed in SQL by storage, carried here), a row of the complaint record, and when
complaints about one product or batch call for an alert."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

DEFAULT_DAYS = 7


class RootCause(StrEnum):
    """Why it happened (the sources' three kinds)."""

    PRODUCT_DEFECT = "product_defect"
    SERVICE_MISTAKE = "service_mistake"
    PROCESS_GAP = "process_gap"


class Responsible(StrEnum):
    """Where it happened."""

    STORE = "store"
    SUPPLY_CHAIN = "supply_chain"
    COURIER = "courier"


class PeriodError(ValueError):
    """Not a period the desk understands (7d, 30d, 2026-11)."""


@dataclass(frozen=True)
class Period:
    """[start, end) in UTC, with the words it was asked with and the shop's time zone."""

    start: datetime
    end: datetime
    label: str
    timezone: str = "Asia/Shanghai"

    def days(self) -> list[date]:
        """The shop's calendar days the period covers."""
        zone = ZoneInfo(self.timezone)
        first = self.start.astimezone(zone).date()
        last = (self.end - timedelta(microseconds=1)).astimezone(zone).date()
        return [first + timedelta(days=n) for n in range((last - first).days + 1)]


def parse_period(text: str, now: datetime, timezone: str) -> Period:
    """`` (the last 7 days), `7d`, `30d`, `2026-11` (that calendar month in the shop's zone)."""
    words = text.strip().lower()
    zone = ZoneInfo(timezone)
    if not words:
        words = f"{DEFAULT_DAYS}d"
    if match := re.fullmatch(r"(\d{1,3})\s*(d|天)", words):
        days = int(match.group(1))
        if not 1 <= days <= 366:
            raise PeriodError(words)
        return Period(now - timedelta(days=days), now, f"{days}d", timezone)
    if match := re.fullmatch(r"(\d{4})-(\d{1,2})", words):
        year, month = int(match.group(1)), int(match.group(2))
        if not 1 <= month <= 12:
            raise PeriodError(words)
        start = datetime.combine(date(year, month, 1), time(), zone)
        following = date(year + month // 12, month % 12 + 1, 1)
        end = datetime.combine(following, time(), zone)
        return Period(start, min(end, max(now, start)), f"{year}-{month:02d}", timezone)
    raise PeriodError(words)


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (0-100) of the values, by linear interpolation between the closest
    ranks (as numpy's default and PostgreSQL's percentile_cont); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


class _Counted:
    """A stretch of the chart (a day, a week): its complaints, and the share answered in time."""

    by_category: dict[str, int]
    answered: int
    answered_in_time: int

    @property
    def total(self) -> int:
        return sum(self.by_category.values())

    @property
    def sla_hit(self) -> float | None:
        return self.answered_in_time / self.answered if self.answered else None


@dataclass(frozen=True)
class DayCount(_Counted):
    """One day of the chart: complaints by category key, and the share answered in time."""

    day: date
    by_category: dict[str, int]
    answered: int = 0  # tickets of that day that had a first human answer
    answered_in_time: int = 0


@dataclass(frozen=True)
class WeekCount(_Counted):
    """One week of the dashboard, Monday to Sunday in the shop's calendar: the chart's days of
    that week added up."""

    monday: date
    by_category: dict[str, int]
    answered: int = 0
    answered_in_time: int = 0


def monday_of(day: date) -> date:
    return day - timedelta(days=day.weekday())


def weeks_of(days: Sequence[DayCount]) -> list[WeekCount]:
    """The days (the chart's, in the shop's calendar) added up week by week: one WeekCount for
    each Monday from the first day's to the last day's, every category of the days in each."""
    if not days:
        return []
    order = list(days[0].by_category)
    weeks: dict[date, WeekCount] = {}
    monday = monday_of(days[0].day)
    while monday <= days[-1].day:
        weeks[monday] = WeekCount(monday, dict.fromkeys(order, 0))
        monday += timedelta(days=7)
    answered: dict[date, int] = dict.fromkeys(weeks, 0)
    in_time: dict[date, int] = dict.fromkeys(weeks, 0)
    for day in days:
        monday = monday_of(day.day)
        counts = weeks[monday].by_category
        for key, count in day.by_category.items():
            counts[key] = counts.get(key, 0) + count
        answered[monday] += day.answered
        in_time[monday] += day.answered_in_time
    return [
        WeekCount(monday, week.by_category, answered[monday], in_time[monday])
        for monday, week in weeks.items()
    ]


@dataclass(frozen=True)
class Summary:
    """The figures of a period (tickets submitted in it; the intake's unfinished are left out).
    Durations in seconds; shares between 0 and 1; None where nothing was there to measure."""

    period: Period
    total: int
    by_category: list[tuple[str, int]]  # (category key, count), most first
    by_severity: list[tuple[str, int]]  # (tier key or "" when none was set, count)
    backlog: int  # still with staff now (whenever submitted)
    first_answer_median: float | None
    first_answer_p90: float | None
    first_answer_in_sla: float | None
    answered: int
    resolution_median: float | None
    resolved: int
    satisfaction_average: float | None
    satisfaction_answers: int
    top_products: list[tuple[str, int]]  # most complained products, up to 5
    days: list[DayCount] = field(default_factory=list)
    channels: list[tuple[str, int]] = field(default_factory=list)  # telegram / wecom


@dataclass(frozen=True)
class RecordRow:
    """One ticket of the complaint record (the export), as plain values."""

    reference: str
    submitted_at: datetime | None
    channel: str
    customer: str
    contact: str  # masked unless the policy says otherwise
    order_number: str
    product: str
    batch: str
    category: str  # the category's key (the writer shows its label)
    severity: str  # the tier's key
    story: str
    photos: int
    first_answer_at: datetime | None
    first_answer_minutes: float | None
    actions: str
    remedy: str  # "tier:option" keys, or ""
    result: str  # the status
    satisfaction: int | None
    root_cause: str
    responsible: str
    store: str = ""
    region: str = ""


def mask_phone(text: str) -> str:
    """138****5678: the first three and last four digits of each phone number are kept."""

    def hide(match: re.Match[str]) -> str:
        digits = match.group(0)
        return digits[:3] + "*" * (len(digits) - 7) + digits[-4:]

    return re.sub(r"\d{7,}", hide, text)


@dataclass(frozen=True)
class BatchRule:
    """When complaints about one product or one batch call for an alert."""

    threshold: int = 3
    window: timedelta = timedelta(hours=24)


def alert_due(count: int, rule: BatchRule, last_alert: datetime | None, now: datetime) -> bool:
    """At the threshold, once per window (a new window starts after the last alert's)."""
    if count < rule.threshold:
        return False
    return last_alert is None or now - last_alert >= rule.window


@dataclass(frozen=True)
class TimelineEntry:
    """One line of a ticket's whole record (`/ticket T-000123`): an event or a message."""

    at: datetime
    kind: str  # event | message
    what: str  # the event's kind, or the message's kind (text, photo, ...)
    who: str  # the actor's or the sender's name
    role: str  # the actor's role; for a message: customer (in) or staff (out)
    text: str  # the event's detail, or the message's text ("" when none)
    direction: str = ""  # "" for an event; in | out for a message


@dataclass(frozen=True)
class BacklogRow:
    """An open ticket (with staff), as the manager's dashboard lists it."""

    ticket_id: int
    reference: str
    category: str  # the key ("" before it is known)
    severity: str  # the tier where the manager chose one, else the severity ("" when none)
    taken_by: str  # the name of who took it ("" when nobody has)
    submitted_at: datetime
    next_due: datetime | None  # the next promise still to keep: first answer, progress, resolution
    next_kind: str  # that promise's deadline kind ("" when none)

    def age_hours(self, now: datetime) -> float:
        return (now - self.submitted_at).total_seconds() / 3600

    def overdue(self, now: datetime) -> bool:
        return self.next_due is not None and self.next_due <= now


def overdue_first(rows: Sequence[BacklogRow], now: datetime) -> list[BacklogRow]:
    """Overdue tickets first (the longest overdue at the top), then by the next deadline, then
    the oldest; a ticket with no deadline last."""
    far = datetime.max.replace(tzinfo=now.tzinfo)
    return sorted(
        rows,
        key=lambda row: (
            not row.overdue(now),
            row.next_due or far,
            row.submitted_at,
            row.ticket_id,
        ),
    )


@dataclass(frozen=True)
class Figures:
    """What the manager's dashboard shows of a period: the summary `/stats` shows (the same
    aggregates), and beside it what only the dashboard shows."""

    summary: Summary
    by_store: list[tuple[str, str, int]]  # (store, category key, count), from the orders' stores
    satisfaction_scores: dict[int, int]  # score 1..5 -> answers (every score, 0 where none)
    top_batches: list[tuple[str, int]]  # most complained batches, as many as top_products
    root_causes: list[tuple[str, int]]  # (root cause key, count), most first

    @property
    def weeks(self) -> list[WeekCount]:
        """The heat map's and the on-time share's weeks: the summary's days, week by week."""
        return weeks_of(self.summary.days)

    def stores(self) -> tuple[list[str], list[tuple[str, list[int]]]]:
        """The store x category grid: the categories any store has (in the summary's order,
        most first), and each store's counts in that order, the most complained store first.
        Empty when no ticket's order names a store."""
        present = {category for _, category, _ in self.by_store}
        order = [key for key, _ in self.summary.by_category if key in present]
        order += sorted(present.difference(order))
        counts: dict[str, dict[str, int]] = {}
        for store, category, count in self.by_store:
            row = counts.setdefault(store, {})
            row[category] = row.get(category, 0) + count
        rows = [(store, [row.get(key, 0) for key in order]) for store, row in counts.items()]
        rows.sort(key=lambda item: (-sum(item[1]), item[0]))
        return order, rows
