"""The clock's rules with a fixed 'now': deadlines from state, working hours, what is due."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

from bot.domain.clock import (
    DeadlineKind,
    SlaPolicy,
    WorkingHours,
    due_action,
    next_deadline,
    plan,
)
from bot.domain.guard import Banned, find_banned, find_signals
from bot.domain.remedies import Text
from bot.domain.tickets import Actor, CustomerRef, Status, Ticket

NOW = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)  # 10:00 in Shanghai, a Monday
SLA = SlaPolicy()
ALWAYS = WorkingHours()
SHOP = WorkingHours("Asia/Shanghai", time(9), time(21), frozenset(range(6)))  # closed Sunday
STAFF = Actor("5", "小王", "staff")


def open_ticket() -> Ticket:
    ticket = Ticket.receive(CustomerRef("telegram", "1"), "小明", "zh", NOW)
    ticket.submit(NOW, None, [])
    return ticket


def kinds(ticket: Ticket, hours: WorkingHours = ALWAYS) -> dict[DeadlineKind, datetime]:
    return {d.kind: d.due_at for d in plan(ticket, SLA, hours)}


def test_an_intake_has_only_its_timeout_counted_from_the_last_message() -> None:
    """Ten minutes after the customer last wrote, the intake is submitted."""
    ticket = Ticket.receive(CustomerRef("telegram", "1"), "小明", "zh", NOW)
    ticket.note_customer_message(NOW + timedelta(minutes=3))
    assert kinds(ticket) == {DeadlineKind.INTAKE_TIMEOUT: NOW + timedelta(minutes=13)}


def test_a_submitted_ticket_runs_the_three_human_clocks() -> None:
    """First response 10 min, progress 2 h, resolution 24 h from reaching staff."""
    ticket = open_ticket()
    assert kinds(ticket) == {
        DeadlineKind.FIRST_RESPONSE: NOW + timedelta(minutes=10),
        DeadlineKind.PROGRESS: NOW + timedelta(hours=2),
        DeadlineKind.RESOLUTION: NOW + timedelta(hours=24),
    }
    assert next_deadline(ticket, SLA, ALWAYS).kind is DeadlineKind.FIRST_RESPONSE  # type: ignore


def test_an_answer_in_time_means_the_first_response_never_escalates() -> None:
    """Once answered, the deadline is gone from the plan and a passed one does nothing."""
    ticket = open_ticket()
    ticket.record_answer(STAFF, NOW + timedelta(minutes=4))
    assert DeadlineKind.FIRST_RESPONSE not in kinds(ticket)
    assert due_action(ticket, DeadlineKind.FIRST_RESPONSE) is False
    assert due_action(ticket, DeadlineKind.RESOLUTION) is True


def test_after_the_fix_the_follow_up_then_the_auto_close() -> None:
    """24 h after resolution the question; 5 days without an answer, closed as accepted."""
    ticket = open_ticket()
    ticket.resolve(STAFF, NOW)
    assert kinds(ticket) == {DeadlineKind.FOLLOW_UP: NOW + timedelta(hours=24)}
    ticket.ask_follow_up(NOW + timedelta(hours=24))
    assert kinds(ticket) == {DeadlineKind.AUTO_CLOSE: NOW + timedelta(days=6)}
    ticket.close_as_accepted(NOW + timedelta(days=6))
    assert ticket.status is Status.CLOSED and kinds(ticket) == {}


def test_a_low_score_reopens_and_starts_a_new_round() -> None:
    """A score of 1 or 2 reopens the ticket; the human clocks run again from then."""
    ticket = open_ticket()
    ticket.record_answer(STAFF, NOW)
    ticket.resolve(STAFF, NOW)
    ticket.ask_follow_up(NOW + timedelta(days=1))
    later = NOW + timedelta(days=1, hours=1)
    assert ticket.rate(2, later) is True
    assert ticket.status is Status.OPEN and ticket.deadline_round == 1
    assert kinds(ticket)[DeadlineKind.FIRST_RESPONSE] == later + timedelta(minutes=10)


def test_outside_working_hours_the_human_clock_pauses() -> None:
    """Submitted at 20:55 on Saturday: five minutes then, five on Monday at 09:00."""
    saturday_2055 = datetime(2026, 11, 28, 12, 55, tzinfo=UTC)
    assert SHOP.is_open(saturday_2055)
    due = SHOP.add(saturday_2055, timedelta(minutes=10))
    assert due == datetime(2026, 11, 30, 1, 5, tzinfo=UTC)  # Monday 09:05 in Shanghai
    sunday = datetime(2026, 11, 29, 4, 0, tzinfo=UTC)
    assert not SHOP.is_open(sunday)
    assert SHOP.next_opening(sunday) == datetime(2026, 11, 30, 1, 0, tzinfo=UTC)


def test_banned_phrases_are_found_whatever_the_punctuation() -> None:
    """ "我不知道 不清楚" is the banned "我不知道,不清楚"; alarm words are found too."""
    banned = [Banned("我不知道,不清楚", Text("", ""), Text("", ""))]
    assert find_banned("这个嘛,我不知道 不清楚。", banned) is banned[0]
    assert find_banned("我知道了", banned) is None
    assert find_signals("孩子碰了以后过敏,要去医院", ["过敏", "医院", "起火"]) == ["过敏", "医院"]


def test_the_weekly_report_is_due_monday_nine_in_the_shops_time_zone() -> None:
    from datetime import UTC, datetime, time

    from bot.domain.clock import weekly_due

    sunday_night = datetime(2026, 11, 29, 20, 0, tzinfo=UTC)  # Monday 04:00 in Shanghai
    assert weekly_due(sunday_night, "Asia/Shanghai", 0, time(9, 0)) == datetime(
        2026, 11, 30, 1, 0, tzinfo=UTC
    )  # still ahead
    wednesday = datetime(2026, 12, 2, 3, 0, tzinfo=UTC)
    assert weekly_due(wednesday, "Asia/Shanghai", 0, time(9, 0)) == datetime(
        2026, 11, 30, 1, 0, tzinfo=UTC
    )  # passed: sent at once if it has not gone
