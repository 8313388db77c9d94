"""What the staff room hears once a private message went, or did not: the button for the
dashboard sent into a manager's private chat from the group (`handlers.manager.dashboard_in_room`)
tells the group it went; Telegram's refusal (they never started the bot, or blocked it) tells
why; a failure or no answer (it may have arrived) tells only that it could not be sent."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from bot.channels.base import Delivery, Outcome
from bot.domain.messages import Outgoing, Say, Urgency
from bot.domain.tickets import Actor
from bot.sender import Sender
from tests.unit.fakes import FakeUnitOfWork

BOSS = Actor("4242", "陈店长", "manager")


def private_button(**follow_up: Say | None) -> Outgoing:
    """The row the outbox keeps for the button, with what the room hears after it."""
    payload: dict[str, Any] = {
        "say": Say("📊 投诉看板").to_json(),
        "follow_up": {
            **{key: say.to_json() if say else None for key, say in follow_up.items()},
            "to": [BOSS.id, BOSS.name, BOSS.role],
        },
    }
    now = datetime(2026, 11, 30, 10, 0, tzinfo=UTC)
    return Outgoing(1, "telegram", BOSS.id, "c:telegram:4242", None, "say", Urgency.RELAY,
                    payload, now, None, None)  # fmt: skip


@pytest.mark.parametrize(
    ("delivery", "heard"),
    [
        (Delivery.SENT, "已经私信发给您了"),
        (Delivery.BLOCKED, "您还没私聊过我"),
        (Delivery.FAILED, "现在给您发不了私信"),
        (Delivery.UNSURE, "现在给您发不了私信"),
    ],
)
def test_the_room_hears_how_the_private_message_went(delivery: Delivery, heard: str) -> None:
    uow = FakeUnitOfWork()
    head = private_button(
        sent=Say("陈店长,投诉看板的按钮已经私信发给您了"),
        blocked=Say("陈店长,现在给您发不了私信(您还没私聊过我,或者把我屏蔽了)"),
        not_sent=Say("陈店长,现在给您发不了私信。"),
    )
    Sender._follow_up(uow, head, Outcome(delivery))  # type: ignore[arg-type]
    [told] = uow.outbox.take()
    assert heard in told.say.text
    assert delivery in (Delivery.BLOCKED, Delivery.SENT) or "屏蔽" not in told.say.text


def test_a_row_without_a_follow_up_tells_the_room_nothing() -> None:
    uow = FakeUnitOfWork()
    head = private_button()
    head.payload.pop("follow_up")
    Sender._follow_up(uow, head, Outcome(Delivery.BLOCKED))  # type: ignore[arg-type]
    assert uow.outbox.take() == []
