"""Which updates the poller answers itself: a new customer's first message, nothing else."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aiogram.types import Update

from bot.config import BUNDLED_POLICY
from bot.greeter import Greeter
from bot.policy import load_policy
from bot.render import make_renderer


def greeter() -> Greeter:
    policy = load_policy(BUNDLED_POLICY)
    return Greeter(
        bot=None,  # type: ignore[arg-type]  # deciding needs no bot
        policy=policy,
        render=make_renderer(policy.timezone),
        default_language="zh",
        clock=lambda: datetime(2026, 11, 23, tzinfo=UTC),
    )


def update(chat_id: int, text: str | None = "你好", **extra: Any) -> Update:
    chat = (
        {"id": chat_id, "type": "private", "first_name": "小郑"}
        if chat_id > 0
        else {"id": chat_id, "type": "supergroup", "title": "售后群"}
    )
    message: dict[str, Any] = {
        "message_id": 1,
        "date": 0,
        "chat": chat,
        "from": {"id": abs(chat_id), "is_bot": False, "first_name": "小郑"},
        **extra,
    }
    if text is not None:
        message["text"] = text
    return Update.model_validate({"update_id": 1, "message": message})


def test_only_a_new_customers_first_message_is_answered_by_the_poller() -> None:
    desk = greeter()
    assert desk.first_message(update(1)) is not None
    assert desk.first_message(update(1, "还有一件事")) is None  # known now: the handler answers
    assert desk.first_message(update(2, "/start")) is not None  # /start opens a complaint
    assert desk.first_message(update(3, "/start T-000013")) is None  # a digest link: staff?
    assert desk.first_message(update(4, "/whoami")) is None  # a command has its own answer
    assert desk.first_message(update(-1001, "你好")) is None  # the staff group
    album = {
        "media_group_id": "a1",
        "photo": [{"file_id": "p", "file_unique_id": "u", "width": 1, "height": 1}],
    }
    assert desk.first_message(update(5, None, **album)) is None  # albums go the usual way
    desk.note(6)  # a customer with a ticket (loaded at start)
    assert desk.first_message(update(6)) is None
