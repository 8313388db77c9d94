"""The customer's history, pure: who is the same person, and how far a repeat complaint raises
the severity."""

from __future__ import annotations

from bot.domain.history import phone_of, raised_severity
from bot.domain.remedies import Ladder, Text, Tier

LADDER = Ladder(
    (
        Tier("minor", Text("轻微", "Minor")),
        Tier("moderate", Text("中等", "Moderate")),
        Tier("serious", Text("严重", "Serious")),
        Tier("critical", Text("重大", "Critical"), in_person=True),
    )
)


def test_a_phone_is_its_digits_whatever_the_customer_typed() -> None:
    assert phone_of("138-0013-8000") == phone_of("+86 138 0013 8000") == "13800138000"
    assert phone_of("就在这里联系我") is None and phone_of(None) is None


def test_a_repeat_raises_one_step_never_to_what_only_the_manager_handles() -> None:
    assert raised_severity("minor", LADDER) == "moderate"
    assert raised_severity("moderate", LADDER) == "serious"
    assert raised_severity("serious", LADDER) is None  # the next is the manager's in person
    assert raised_severity("critical", LADDER) is None
    assert raised_severity(None, LADDER) == "moderate"  # unjudged counts as the lowest
