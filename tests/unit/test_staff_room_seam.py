"""The staff-room seam, as a room of 1:1 chats needs it: answers meant for one person say so,
manager-only choices say so, the card has a structured summary, and typed actions become the
keys the buttons carry."""

from __future__ import annotations

import pytest

from bot.domain.messages import Say
from bot.domain.tickets import Actor, Status
from handlers import common, staff
from handlers.context import Desk
from storage.outbox import ROOM
from tests.unit import fakes
from tests.unit.fakes import MANAGER, FakeUnitOfWork
from tests.unit.test_use_cases import NOW, STAFF, submitted, ticket_of


@pytest.fixture
def uow() -> FakeUnitOfWork:
    return FakeUnitOfWork()


@pytest.fixture
def desk() -> Desk:
    return fakes.desk()


async def test_the_card_marks_the_managers_choices_and_has_a_summary(
    uow: FakeUnitOfWork, desk: Desk
) -> None:
    """Tiers and closing are for managers only; the card's summary names the ticket, its
    severity and category, the order, the contact and the channel, and how to act by typing."""
    await submitted(uow, desk)
    card = common.card(desk, await ticket_of(uow))
    roles = {c.label: c.for_role for row in card.choices for c in row}
    assert roles["🙋 我来跟进"] == ""
    assert roles["补偿方案:轻微"] == "manager"
    assert roles["✅ 直接结案(不补偿)"] == "manager"
    assert card.summary is not None
    assert card.summary.title.startswith("T-000001 · ")
    rows = dict(card.summary.rows)
    assert rows["订单号"] == "FS2026112301" and rows["渠道"] == "Telegram"
    assert "跟进 T-000001" in card.summary.how
    assert Say.from_json(card.to_json()) == card  # it survives the outbox


def test_typed_actions_and_addressing_are_parsed() -> None:
    """`跟进 T-000123`, `方案 2 #123`, `结案 T-000123`; `T-000123 …` and `#123 …` address."""
    desk = fakes.desk()
    assert staff.typed(desk, "跟进 T-000123") == ("take", None, 123)
    assert staff.typed(desk, "方案 2 #123") == ("tier", 2, 123)
    assert staff.typed(desk, "结案 T-000123") == ("done", None, 123)
    assert staff.typed(desk, "你好 T-000123") is None
    assert staff.addressed("T-000123 我们马上重做") == (123, "我们马上重做")
    assert staff.addressed("#7 好的") == (7, "好的")
    assert staff.addressed("好的 #7") is None


async def test_a_typed_tier_from_staff_is_refused_and_changes_nothing(
    uow: FakeUnitOfWork, desk: Desk
) -> None:
    """`方案 1 T-000001` from someone who is not a manager is refused, as the button is."""
    await submitted(uow, desk)
    uow.outbox.take()
    answer = await staff.typed_action(uow.typed, desk, STAFF, "方案 1 T-000001", NOW)
    assert answer is not None and answer.text == "只有店长可以决定补偿方案。"
    assert (await ticket_of(uow)).status is Status.OPEN
    assert uow.outbox.take() == []
    answer = await staff.typed_action(uow.typed, desk, MANAGER, "方案 1 T-000001", NOW)
    assert (await ticket_of(uow)).status is Status.REMEDY_OFFERED


async def test_a_word_meant_for_one_person_says_so(uow: FakeUnitOfWork, desk: Desk) -> None:
    """How to answer a customer is told to the one who asked, not to everyone."""
    someone = Actor("9", "小李", "staff")
    staff.not_a_thread(uow.typed, desk, someone)
    row = uow.outbox.take()[0]
    assert row.kind == ROOM and row.to == someone


async def test_the_card_says_how_to_answer_in_the_room_it_is_in(uow: FakeUnitOfWork) -> None:
    """The room names the words that say how to answer a customer: reply to the card in a
    Telegram group, write to the app in WeCom; the core only shows them."""
    group, app = fakes.desk(), fakes.desk(how_to_answer="staff/how_to_answer_app.html")
    await submitted(uow, group)
    ticket = await ticket_of(uow)
    assert "回复这张卡片" in common.card(group, ticket).text
    in_app = common.card(app, ticket).text
    assert "给应用发消息" in in_app and "回复这张卡片" not in in_app
