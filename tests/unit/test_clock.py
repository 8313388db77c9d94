"""The clock's rules with a fixed 'now': deadlines from state, working hours (and the policy
entry they come from), what is due."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from pathlib import Path

import pytest

from bot.config import BUNDLED_POLICY
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
from bot.policy import PolicyError, load_policy

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


LATE = WorkingHours("Asia/Shanghai", time(9), time(0))  # 09:00 until midnight
NIGHT = WorkingHours("Asia/Shanghai", time(22), time(2))  # late delivery: 22:00 to 02:00
FRIDAY_NIGHT = WorkingHours("Asia/Shanghai", time(22), time(2), frozenset({4}))  # Fri only


def shanghai(day: int, hour: int, minute: int = 0) -> datetime:
    """A moment of November 2026 given in Shanghai time (UTC+8), as aware UTC."""
    return datetime(2026, 11, day, hour, minute, tzinfo=UTC) - timedelta(hours=8)


def test_hours_that_end_at_midnight_are_open_until_then() -> None:
    """09:00-00:00 is open at 20:22 and 23:59, closed from midnight to 09:00."""
    assert LATE.is_open(shanghai(23, 20, 22))
    assert LATE.is_open(shanghai(23, 23, 59))
    assert not LATE.is_open(shanghai(24, 0, 0))
    assert not LATE.is_open(shanghai(24, 8, 59))
    assert LATE.is_open(shanghai(24, 9, 0))
    assert LATE.next_opening(shanghai(24, 0, 0)) == shanghai(24, 9, 0)


def test_a_ticket_submitted_in_the_evening_is_due_that_evening() -> None:
    """Submitted at 20:22 with hours until midnight: the first response is due at 20:32, and a
    two-hour clock runs to midnight and on from 09:00 the next morning."""
    assert LATE.add(shanghai(23, 20, 22), timedelta(minutes=10)) == shanghai(23, 20, 32)
    assert LATE.add(shanghai(23, 23, 0), timedelta(hours=2)) == shanghai(24, 10, 0)
    assert LATE.add(shanghai(23, 23, 50), timedelta(minutes=10)) == shanghai(24, 0, 0)


def test_overnight_hours_are_open_across_midnight() -> None:
    """22:00-02:00 is open at 23:00 and 01:30, closed at 02:00 and at noon."""
    assert NIGHT.is_open(shanghai(23, 23, 0))
    assert NIGHT.is_open(shanghai(24, 1, 30))
    assert not NIGHT.is_open(shanghai(24, 2, 0))
    assert not NIGHT.is_open(shanghai(24, 12, 0))
    assert NIGHT.is_open(shanghai(24, 22, 0))


def test_overnight_hours_next_opening_and_deadlines_cross_midnight() -> None:
    """Closed at noon: back at 22:00; open at 23:55, ten minutes are due at 00:05; at 01:55
    ten minutes are five tonight and five from 22:00 the next evening."""
    assert NIGHT.next_opening(shanghai(24, 12, 0)) == shanghai(24, 22, 0)
    assert NIGHT.next_opening(shanghai(24, 2, 0)) == shanghai(24, 22, 0)
    assert NIGHT.next_opening(shanghai(24, 1, 30)) == shanghai(24, 1, 30)
    assert NIGHT.add(shanghai(23, 23, 55), timedelta(minutes=10)) == shanghai(24, 0, 5)
    assert NIGHT.add(shanghai(24, 1, 55), timedelta(minutes=10)) == shanghai(24, 22, 5)
    assert NIGHT.add(shanghai(24, 12, 0), timedelta(hours=5)) == shanghai(25, 23, 0)


def test_an_overnight_window_belongs_to_the_day_it_opens_on() -> None:
    """Open Friday nights only: Saturday 01:30 is open (Friday's night), Friday 01:30 is not
    (Thursday's), and from Saturday 02:00 the next opening is the next Friday at 22:00."""
    friday, saturday = 27, 28  # November 2026
    assert FRIDAY_NIGHT.is_open(shanghai(saturday, 1, 30))
    assert not FRIDAY_NIGHT.is_open(shanghai(friday, 1, 30))
    assert not FRIDAY_NIGHT.is_open(shanghai(saturday, 22, 30))
    assert FRIDAY_NIGHT.next_opening(shanghai(saturday, 2, 0)) == datetime(
        2026, 12, 4, 14, 0, tzinfo=UTC
    )
    assert FRIDAY_NIGHT.add(shanghai(saturday, 1, 0), timedelta(hours=2)) == datetime(
        2026, 12, 4, 15, 0, tzinfo=UTC
    )  # one hour that night, one from the next Friday's 22:00


def test_a_plan_made_in_the_evening_counts_only_working_time() -> None:
    """A ticket submitted at 20:22 under 09:00-00:00 gets its first response due at 20:32,
    not days later."""
    submitted = shanghai(23, 20, 22)
    ticket = Ticket.receive(CustomerRef("telegram", "1"), "小明", "zh", submitted)
    ticket.submit(submitted, None, [])
    due = kinds(ticket, LATE)
    assert due[DeadlineKind.FIRST_RESPONSE] == shanghai(23, 20, 32)
    assert due[DeadlineKind.PROGRESS] == shanghai(23, 22, 22)
    assert due[DeadlineKind.RESOLUTION] == shanghai(25, 14, 22)  # 3h38 + 15h + 5h22


def policy_with_hours(tmp_path: Path, hours: str, suffix: str = ".yaml") -> Path:
    """The bundled policy with these working hours (a YAML flow mapping) switched on."""
    path = tmp_path / f"policy{suffix}"
    text = BUNDLED_POLICY.read_text(encoding="utf-8")
    path.write_text(text.replace("# working_hours:", f"working_hours: {hours}\n#"), "utf-8")
    return path


@pytest.mark.parametrize(
    ("hours", "problem"),
    [
        ('{opens: "09:00", closes: "09:00"}', r"working_hours: .*both 09:00"),
        ('{opens: "9 am", closes: "21:00"}', r"working_hours\.opens: .*'9 am'"),
        ('{opens: "09:00", closes: "25:00"}', r"working_hours\.closes: .*'25:00'"),
        ('{opens: "09:00", closes: 21:00}', r"working_hours\.closes: .*unquoted"),
        ('{opens: "09:00+08:00", closes: "21:00"}', r"working_hours\.opens"),
        ('{opens: "09:00"}', r"working_hours\.closes: Field required"),
        ('{closes: "21:00"}', r"working_hours\.opens: Field required"),
        ('{opens: "09:00", closes: "21:00", days: []}', r"working_hours\.days: .*at least one"),
    ],
)
def test_working_hours_that_make_no_sense_stop_the_start(
    tmp_path: Path, hours: str, problem: str
) -> None:
    """Same opening and closing time, a time that is not one, only one of the two, or no day:
    the start stops with one line naming the entry."""
    with pytest.raises(PolicyError, match=problem) as refused:
        load_policy(policy_with_hours(tmp_path, hours))
    assert "\n" not in str(refused.value) and "SHOP_POLICY" in str(refused.value)


def test_working_hours_to_midnight_and_overnight_are_read(tmp_path: Path) -> None:
    """ "00:00" and "24:00" both close at midnight; 22:00 to 02:00 on Fridays is one window."""
    for closes in ("00:00", "24:00"):
        hours = load_policy(policy_with_hours(tmp_path, f'{{opens: "09:00", closes: "{closes}"}}'))
        assert hours.hours == LATE
    night = load_policy(
        policy_with_hours(tmp_path, '{opens: "22:00", closes: "02:00", days: [fri]}')
    )
    assert night.hours == FRIDAY_NIGHT


def test_a_domain_window_that_makes_no_sense_is_refused() -> None:
    """WorkingHours itself refuses a window with no length, half a window, or no day."""
    with pytest.raises(ValueError, match="same time"):
        WorkingHours("Asia/Shanghai", time(9), time(9))
    with pytest.raises(ValueError, match="both"):
        WorkingHours("Asia/Shanghai", time(9), None)
    with pytest.raises(ValueError, match="at least one day"):
        WorkingHours("Asia/Shanghai", time(9), time(21), frozenset())
