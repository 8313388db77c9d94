"""The use cases in `handlers/` against in-memory fakes, at a fixed time: what the customer and
staff are sent, the buttons they get, and where the ticket stands."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from bot.domain.clock import DeadlineKind, plan
from bot.domain.intake import Step, next_step
from bot.domain.messages import PHOTO, Answer, Attachment, Said, StaffSaid, Tap, Urgency
from bot.domain.tickets import Actor, CustomerRef, EventKind, Status, Ticket
from handlers import clock, customer, staff
from handlers.context import Desk
from storage.outbox import CARD, CARD_EDIT, CLEAR, RELAY, ROOM, SAY, THREAD
from tests.unit import fakes
from tests.unit.fakes import MANAGER, FakeUnitOfWork, Queued

NOW = datetime(2026, 11, 23, 4, 0, tzinfo=UTC)  # 12:00 in the shop's time zone
CUSTOMER = CustomerRef("telegram", "1001")
STAFF = Actor("7", "小王", "staff")
EVERYTHING = "订单FS2026112301的花全都蔫了,电话13800138000"
STORY = "花全都蔫了,叶子也发黄了"
STALE = "这个按钮已经失效了,请看最新的消息。"
CUSTOMER_LANE = "telegram:1001"
THREAD_LANE = "staff:t1"


@pytest.fixture
def uow() -> FakeUnitOfWork:
    return FakeUnitOfWork()


@pytest.fixture
def desk() -> Desk:
    return fakes.desk()


# -- people acting -------------------------------------------------------------------------


def said(text: str | None = None, **fields: object) -> Said:
    return Said(CUSTOMER, "小明", "zh", text=text, **fields)  # type: ignore[arg-type]


def photo(ref: str, caption: str | None = None, album: str | None = None) -> Said:
    return said(caption, kind=PHOTO, attachment=Attachment(PHOTO, ref), album=album)


async def customer_writes(
    uow: FakeUnitOfWork, desk: Desk, message: Said | str, at: datetime = NOW
) -> list[Queued]:
    """The customer sends a message; returns what it queued."""
    await customer.wrote(
        uow.typed, desk, said(message) if isinstance(message, str) else message, at
    )
    return uow.outbox.take()


def _message_with(uow: FakeUnitOfWork, lanes: set[str], label: str) -> Queued:
    """The latest message still to be sent in these lanes with a button so labelled."""
    for queued in reversed(uow.outbox.pending()):
        if queued.lane in lanes and label in queued.labels:
            return queued
    raise AssertionError(f"no message with a {label!r} button")


def _key(message: Queued, label: str) -> str:
    return next(c.key for row in message.say.choices for c in row if c.label == label)


async def customer_taps(
    uow: FakeUnitOfWork, desk: Desk, label: str, at: datetime = NOW, on: Queued | None = None
) -> tuple[Answer, list[Queued]]:
    """The customer taps the button so labelled on a message (by default the latest that has
    one)."""
    message = on or _message_with(uow, {CUSTOMER_LANE}, label)
    tap = Tap(CUSTOMER, _key(message, label), "m42", "zh")
    answer = await customer.tapped(uow.typed, desk, tap, at)
    return answer, uow.outbox.take()


async def customer_taps_key(
    uow: FakeUnitOfWork, desk: Desk, key: str, at: datetime = NOW
) -> tuple[Answer, list[Queued]]:
    answer = await customer.tapped(uow.typed, desk, Tap(CUSTOMER, key, "m42", "zh"), at)
    return answer, uow.outbox.take()


def room_ref(uow: FakeUnitOfWork, message: Queued) -> str:
    """The id the staff room gave a message (made up from its place in the queue; an edited
    card keeps the card's)."""
    if message.kind == CARD_EDIT:
        card = (q for q in uow.outbox.queued if q.kind == CARD)
        message = next(q for q in card if q.ticket_id == message.ticket_id)
    return str(1000 + uow.outbox.queued.index(message))


async def staff_taps(
    uow: FakeUnitOfWork,
    desk: Desk,
    actor: Actor,
    label: str,
    at: datetime = NOW,
    on: Queued | None = None,
) -> tuple[Answer, list[Queued]]:
    """A staff member taps the button so labelled on a message (by default the latest card or
    thread message that has one)."""
    message = on or _message_with(uow, {THREAD_LANE}, label)
    key = _key(message, label)
    answer = await staff.card_tapped(uow.typed, desk, actor, key, room_ref(uow, message), at)
    return answer, uow.outbox.take()


async def staff_replies(
    uow: FakeUnitOfWork, desk: Desk, text: str, at: datetime = NOW
) -> list[Queued]:
    reply = StaffSaid(STAFF, 1, text=text, ref="901")
    await staff.replied(uow.typed, desk, reply, at)
    return uow.outbox.take()


async def deadline(
    uow: FakeUnitOfWork, desk: Desk, kind: DeadlineKind, at: datetime
) -> list[Queued]:
    await clock.deadline_passed(uow.typed, desk, 1, kind, at)
    return uow.outbox.take()


# -- what they see -------------------------------------------------------------------------


def to_customer(queued: list[Queued]) -> list[Queued]:
    return [q for q in queued if q.lane == CUSTOMER_LANE and q.kind == SAY and not q.dropped]


def in_thread(queued: list[Queued], kind: str = THREAD) -> list[Queued]:
    return [q for q in queued if q.lane == THREAD_LANE and q.kind == kind]


def one(messages: list[Queued]) -> Queued:
    assert len(messages) == 1, [m.text for m in messages]
    return messages[0]


async def ticket_of(uow: FakeUnitOfWork) -> Ticket:
    found = await uow.tickets.get(1)
    assert found is not None
    return found


# -- getting a ticket to a point -----------------------------------------------------------


async def reach(uow: FakeUnitOfWork, desk: Desk, step: Step) -> None:
    """Answer the intake's questions one by one, up to `step`."""
    await customer_writes(uow, desk, "你好")
    if step is not Step.CATEGORY:
        await customer_taps(uow, desk, "花材质量")
    if step not in (Step.CATEGORY, Step.ORDER):
        await customer_writes(uow, desk, "FS2026112301")
    if step in (Step.PHOTOS, Step.CONTACT, Step.CONFIRM):
        await customer_writes(uow, desk, STORY)
    if step in (Step.CONTACT, Step.CONFIRM):
        await customer_writes(uow, desk, photo("p1"))
        await customer_taps(uow, desk, "✅ 照片发完了")
    if step is Step.CONFIRM:
        await customer_writes(uow, desk, "13800138000")
    assert next_step(await ticket_of(uow)) is step


async def submitted(uow: FakeUnitOfWork, desk: Desk) -> None:
    """A customer who said everything with their photo, and submitted."""
    await customer_writes(uow, desk, photo("p1", caption=EVERYTHING))
    await customer_taps(uow, desk, "✅ 提交")


async def resolved(uow: FakeUnitOfWork, desk: Desk) -> None:
    """Submitted, the manager offered the minor tier, the customer chose the voucher, done."""
    await submitted(uow, desk)
    await staff_taps(uow, desk, MANAGER, "补偿方案:轻微")
    await customer_taps(uow, desk, "¥10 无门槛优惠券")
    await staff_taps(uow, desk, STAFF, "✅ 已办妥,结案")


async def asked_to_rate(uow: FakeUnitOfWork, desk: Desk) -> None:
    await resolved(uow, desk)
    await deadline(uow, desk, DeadlineKind.FOLLOW_UP, NOW + timedelta(days=1))


# -- the first message ---------------------------------------------------------------------


async def test_the_first_message_greets_with_empathy_and_asks_the_category(
    uow: FakeUnitOfWork, desk: Desk
) -> None:
    """A hello is answered at once with empathy and the category question, one button each."""
    reply = one(to_customer(await customer_writes(uow, desk, "你好")))

    assert reply.urgency is Urgency.FIRST_REPLY
    assert "非常抱歉给您带来不好的体验" in reply.text
    assert "请问遇到的是哪一类问题" in reply.text
    assert reply.labels == [
        "配送延误",
        "包装破损",
        "花材质量",
        "错发漏发",
        "服务态度",
        "退款售后",
        "其他问题",
    ]
    ticket = await ticket_of(uow)
    assert ticket.status is Status.INTAKE and next_step(ticket) is Step.CATEGORY


async def test_a_first_message_that_says_everything_goes_straight_to_the_summary(
    uow: FakeUnitOfWork, desk: Desk
) -> None:
    """A photo captioned with the order number, phone and story skips every question."""
    reply = one(to_customer(await customer_writes(uow, desk, photo("p1", caption=EVERYTHING))))

    assert "非常抱歉" in reply.text
    assert "请问遇到的是哪一类问题" not in reply.text
    assert "请您核对一下投诉内容" in reply.text
    assert "问题类型:花材质量" in reply.text
    assert "订单号:FS2026112301" in reply.text
    assert "照片:1 张" in reply.text
    assert "联系方式:13800138000" in reply.text
    assert reply.labels == ["✅ 提交", "✏️ 修改", "✖️ 取消投诉"]


async def test_a_first_text_that_says_everything_asks_only_for_photos(
    uow: FakeUnitOfWork, desk: Desk
) -> None:
    """A text with the order number, phone and story is asked nothing but the photos."""
    reply = one(to_customer(await customer_writes(uow, desk, EVERYTHING)))

    assert "方便拍几张照片给我们看看吗" in reply.text
    assert reply.labels == ["没有照片,跳过"]
    ticket = await ticket_of(uow)
    assert (ticket.category, ticket.order_number, ticket.contact) == (
        "quality",
        "FS2026112301",
        "13800138000",
    )
    assert ticket.story == [EVERYTHING]


# -- the intake, step by step --------------------------------------------------------------


async def test_tapping_a_category_asks_for_the_order_number_with_an_example(
    uow: FakeUnitOfWork, desk: Desk
) -> None:
    """The chosen category is confirmed, the tapped buttons go, and the order number is asked."""
    await reach(uow, desk, Step.CATEGORY)

    answer, queued = await customer_taps(uow, desk, "花材质量")

    assert answer == Answer()
    reply = one(to_customer(queued))
    assert reply.text.startswith("好的:花材质量。")
    assert "请发一下您的订单号" in reply.text and "<code>FS2026112301</code>" in reply.text
    assert reply.labels == ["我没有订单号"]
    assert [q.message_ref for q in queued if q.kind == CLEAR] == ["m42"]
    assert (await ticket_of(uow)).category == "quality"


async def test_a_valid_order_number_is_kept_and_the_story_asked(
    uow: FakeUnitOfWork, desk: Desk
) -> None:
    """An order number in the shop's form (spaces and case forgiven) moves on to the story."""
    await reach(uow, desk, Step.ORDER)

    reply = one(to_customer(await customer_writes(uow, desk, "fs 2026 112301")))

    assert "方便和我具体说说发生了什么吗" in reply.text
    assert (await ticket_of(uow)).order_number == "FS2026112301"


async def test_an_invalid_order_number_is_asked_again_with_the_example(
    uow: FakeUnitOfWork, desk: Desk
) -> None:
    """A number of the wrong form is asked again politely, showing what one looks like."""
    await reach(uow, desk, Step.ORDER)

    reply = one(to_customer(await customer_writes(uow, desk, "12ab")))

    assert "格式不太一样" in reply.text and "<code>FS2026112301</code>" in reply.text
    assert reply.labels == ["我没有订单号"]
    ticket = await ticket_of(uow)
    assert ticket.order_number is None and next_step(ticket) is Step.ORDER


async def test_the_story_is_kept_and_photos_are_asked_for(uow: FakeUnitOfWork, desk: Desk) -> None:
    """The story is thanked for and kept; the photos question offers to skip."""
    await reach(uow, desk, Step.STORY)

    reply = one(to_customer(await customer_writes(uow, desk, STORY)))

    assert reply.text.startswith("收到,辛苦您说得这么详细。")
    assert "方便拍几张照片给我们看看吗" in reply.text
    assert reply.labels == ["没有照片,跳过"]
    assert (await ticket_of(uow)).story == [STORY]


async def test_a_photo_is_answered_once_the_album_window_has_passed(
    uow: FakeUnitOfWork, desk: Desk
) -> None:
    """One answer is queued for after the album window, under the ticket's photo key."""
    await reach(uow, desk, Step.PHOTOS)

    reply = one(to_customer(await customer_writes(uow, desk, photo("p1", album="a1"))))

    assert reply.collapse == "photos:1"
    assert reply.not_before == NOW + desk.album_window
    assert "已经收到 1 张照片" in reply.text
    assert reply.labels == ["✅ 照片发完了"]
    assert (await ticket_of(uow)).photos == ["p1"]


async def test_a_photo_with_more_of_the_customers_messages_behind_it_is_answered_later(
    uow: FakeUnitOfWork, desk: Desk
) -> None:
    """The rest of the album is already here, waiting to be handled: the answer waits longer
    than the album window (the next photo replaces it however long that takes)."""
    await reach(uow, desk, Step.PHOTOS)
    followed = replace(photo("p1", album="a1"), followed=True)

    reply = one(to_customer(await customer_writes(uow, desk, followed)))

    assert reply.not_before == NOW + desk.album_window + customer.FOLLOWED_HOLD
    assert reply.collapse == "photos:1"


async def test_a_later_photo_replaces_the_earlier_answer(uow: FakeUnitOfWork, desk: Desk) -> None:
    """The second photo of an album drops the first one's answer; one answer counts both."""
    await reach(uow, desk, Step.PHOTOS)
    first = one(to_customer(await customer_writes(uow, desk, photo("p1", album="a1"))))
    later = NOW + timedelta(milliseconds=300)

    second = one(to_customer(await customer_writes(uow, desk, photo("p2", album="a1"), later)))

    assert first.dropped and not second.dropped
    assert "已经收到 2 张照片" in second.text
    assert second.not_before == later + desk.album_window
    assert to_customer(uow.outbox.pending())[-1] is second
    assert (await ticket_of(uow)).photos == ["p1", "p2"]


async def test_photos_done_asks_how_to_reach_the_customer(uow: FakeUnitOfWork, desk: Desk) -> None:
    """Tapping "photos done" drops the pending photo answer and asks for a phone number."""
    await reach(uow, desk, Step.PHOTOS)
    ack = one(to_customer(await customer_writes(uow, desk, photo("p1"))))

    _, queued = await customer_taps(uow, desk, "✅ 照片发完了")

    assert ack.dropped
    reply = one(to_customer(queued))
    assert "我们怎么联系您比较方便" in reply.text
    assert reply.labels == ["📱 分享我的手机号", "跳过,就在这里联系我"]
    assert [c.kind for row in reply.say.choices for c in row] == ["phone", "reply"]
    assert (await ticket_of(uow)).photos_done


async def test_a_shared_contact_is_kept_and_the_summary_shown(
    uow: FakeUnitOfWork, desk: Desk
) -> None:
    """The shared number is confirmed (the ready answers go) and the summary shown."""
    await reach(uow, desk, Step.CONTACT)

    contact = said(kind="contact", phone="+8613800138000")
    saved, summary = to_customer(await customer_writes(uow, desk, contact))

    assert "联系方式记下了:+8613800138000" in saved.text and saved.say.clear_choices
    assert "联系方式:+8613800138000" in summary.text
    assert summary.labels == ["✅ 提交", "✏️ 修改", "✖️ 取消投诉"]
    assert (await ticket_of(uow)).contact == "+8613800138000"


async def test_skipping_the_contact_shows_the_summary(uow: FakeUnitOfWork, desk: Desk) -> None:
    """The "skip" ready answer means: reach me here; the summary says so."""
    await reach(uow, desk, Step.CONTACT)

    skipped, summary = to_customer(await customer_writes(uow, desk, "跳过,就在这里联系我"))

    assert "我们就在这里联系您" in skipped.text and skipped.say.clear_choices
    assert "联系方式:在这里联系" in summary.text
    ticket = await ticket_of(uow)
    assert ticket.contact_skipped and ticket.contact is None


async def test_an_invalid_phone_number_is_asked_again(uow: FakeUnitOfWork, desk: Desk) -> None:
    """Words where a phone number was asked are kept, and the number asked again."""
    await reach(uow, desk, Step.CONTACT)

    reply = one(to_customer(await customer_writes(uow, desk, "明天下午都在家")))

    assert "例如 13800138000" in reply.text
    assert reply.labels == ["📱 分享我的手机号", "跳过,就在这里联系我"]
    ticket = await ticket_of(uow)
    assert ticket.contact is None and next_step(ticket) is Step.CONTACT
    assert ticket.story[-1] == "明天下午都在家"


async def test_submit_posts_the_card_and_tells_the_customer_the_reference(
    uow: FakeUnitOfWork, desk: Desk
) -> None:
    """Submitting queues the ticket's card to the staff room and the reference to the customer."""
    await reach(uow, desk, Step.CONFIRM)

    answer, queued = await customer_taps(uow, desk, "✅ 提交")

    assert answer == Answer()
    card = one([q for q in queued if q.kind == CARD])
    assert card.lane == THREAD_LANE and card.ticket_id == 1
    assert "投诉单 T-000001" in card.text and "类型:花材质量" in card.text
    assert "建议等级:中等(关键词:蔫)" in card.text
    assert "🙋 我来跟进" in card.labels and "补偿方案:轻微" in card.labels
    reply = one(to_customer(queued))
    assert "您的投诉单号是 <b>T-000001</b>" in reply.text
    assert "10 分钟内" in reply.text
    ticket = await ticket_of(uow)
    assert ticket.status is Status.OPEN and ticket.submitted_at == NOW


# -- taps that mean nothing ----------------------------------------------------------------


@pytest.mark.parametrize(
    "key",
    [
        "i:cat:roses",  # no such category
        "i:submit:",  # not at the summary yet
        "i:bogus:",
        "o:1:minor:0",  # no options were offered
        "r:1:5",  # no rating was asked
        "t:take:1:",  # a staff button
        "garbage",
        pytest.param("i:" + "x" * 70, id="too-long"),  # longer than any key the desk makes
    ],
)
async def test_a_stale_or_forged_tap_answers_with_an_alert_and_queues_nothing(
    uow: FakeUnitOfWork, desk: Desk, key: str
) -> None:
    """A tap on a key the desk did not offer now gets the stale-button alert, nothing else."""
    await reach(uow, desk, Step.CATEGORY)
    before = await ticket_of(uow)

    answer, queued = await customer_taps_key(uow, desk, key)

    assert answer == Answer(STALE, alert=True)
    assert queued == []
    assert await ticket_of(uow) == before


async def test_cancel_during_the_intake_cancels_the_ticket(
    uow: FakeUnitOfWork, desk: Desk
) -> None:
    """/cancel ends the complaint being written, drops the pending photo answer, posts no card."""
    await reach(uow, desk, Step.PHOTOS)
    ack = one(to_customer(await customer_writes(uow, desk, photo("p1"))))

    queued = await customer_writes(uow, desk, "/cancel")

    reply = one(to_customer(queued))
    assert "这次的投诉已经取消" in reply.text and reply.say.clear_choices
    assert ack.dropped
    assert [q for q in queued if q.lane != CUSTOMER_LANE] == []
    assert (await ticket_of(uow)).status is Status.CANCELLED
    assert await uow.tickets.active_for_customer(CUSTOMER) is None


@pytest.mark.parametrize(
    ("label", "reply"),
    [("✅ 提交", "您的投诉单号是"), ("✖️ 取消投诉", "这次的投诉已经取消")],
    ids=["submit", "cancel"],
)
async def test_a_summary_tap_drops_the_photo_answer_still_waiting(
    uow: FakeUnitOfWork, desk: Desk, label: str, reply: str
) -> None:
    """Submit or cancel tapped while a late photo's answer waits for the album's end: that
    answer (a summary with a submit button) is not sent after the customer's decision."""
    await reach(uow, desk, Step.CONFIRM)
    summary = _message_with(uow, {CUSTOMER_LANE}, label)
    ack = one(to_customer(await customer_writes(uow, desk, photo("p2"))))

    await customer_taps(uow, desk, label, on=summary)

    assert ack.dropped
    assert reply in to_customer(uow.outbox.pending())[-1].text


# -- with staff ----------------------------------------------------------------------------


async def test_a_message_after_submit_is_relayed_to_the_tickets_thread(
    uow: FakeUnitOfWork, desk: Desk
) -> None:
    """The customer's words go to the ticket's thread under their name, escaped."""
    await submitted(uow, desk)

    queued = await customer_writes(uow, desk, "花瓶也裂了 <急>")

    relay = one(in_thread(queued, RELAY))
    assert relay.text == "💬 <b>T-000001</b> · 小明:\n花瓶也裂了 &lt;急&gt;"
    assert relay.urgency is Urgency.RELAY and relay.ticket_id == 1
    assert to_customer(queued) == []


async def test_a_staff_reply_reaches_the_customer_signed(uow: FakeUnitOfWork, desk: Desk) -> None:
    """The reply goes to the customer signed with the staff member's name and the shop's."""
    await submitted(uow, desk)

    reply = one(to_customer(await staff_replies(uow, desk, "非常抱歉,我马上核实")))

    assert reply.text == "<b>小王</b>(花语花店):\n非常抱歉,我马上核实"
    assert reply.answer_by == STAFF and reply.ticket_id == 1
    assert (await ticket_of(uow)).first_response_at is None  # not until it has arrived


async def test_a_delivered_answer_records_the_first_response_and_takes_the_ticket(
    uow: FakeUnitOfWork, desk: Desk
) -> None:
    """Once the answer arrives, its author is the first response and handles the ticket."""
    await submitted(uow, desk)
    await staff_replies(uow, desk, "非常抱歉,我马上核实")
    later = NOW + timedelta(minutes=2)

    await staff.answer_delivered(uow.typed, desk, 1, STAFF, later)

    ticket = await ticket_of(uow)
    assert ticket.first_response_at == later and ticket.first_response_by == STAFF
    assert ticket.taken_by == STAFF
    card = one(in_thread(uow.outbox.take(), CARD_EDIT))
    assert "负责人:小王" in card.text and "首次回复:小王" in card.text
    kinds = [e.kind for e in await uow.tickets.events(1)]
    assert EventKind.ANSWERED in kinds and EventKind.TAKEN in kinds


async def test_a_reply_with_a_banned_phrase_is_held_back_and_staff_told(
    uow: FakeUnitOfWork, desk: Desk
) -> None:
    """A reply with a never-say phrase does not reach the customer; staff hear why, and what
    to say instead."""
    await submitted(uow, desk)
    assert "公司的规定就是这样的" in desk.policy.banned_phrases

    queued = await staff_replies(uow, desk, "公司的规定就是这样的,没办法")

    assert to_customer(queued) == []
    note = one(in_thread(queued))
    assert note.reply_to == "901"
    assert "没有发给客户" in note.text and "「公司的规定就是这样的」" in note.text
    assert "我理解您的心情" in note.text
    held = [e for e in await uow.tickets.events(1) if e.kind is EventKind.HELD_BACK]
    assert [e.detail for e in held] == ["公司的规定就是这样的"]


async def test_only_a_manager_may_choose_a_remedy_tier(uow: FakeUnitOfWork, desk: Desk) -> None:
    """A staff member's tap on a tier is refused with an alert; nothing changes."""
    await submitted(uow, desk)

    answer, queued = await staff_taps(uow, desk, STAFF, "补偿方案:轻微")

    assert answer == Answer("只有店长可以决定补偿方案。", alert=True)
    assert queued == []
    assert (await ticket_of(uow)).status is Status.OPEN


async def test_the_managers_tier_offers_the_customer_its_options(
    uow: FakeUnitOfWork, desk: Desk
) -> None:
    """The manager's tier reaches the customer as one button per option; staff see the list."""
    await submitted(uow, desk)

    answer, queued = await staff_taps(uow, desk, MANAGER, "补偿方案:轻微")

    assert answer == Answer("已按「轻微」处理。")
    offer = one(to_customer(queued))
    assert "我们为您准备了下面的方案" in offer.text
    assert offer.labels == ["¥10 无门槛优惠券", "下次订花免费升级包装"]
    note = one(in_thread(queued))
    assert "陈店长 选择了「轻微」" in note.text
    assert "⏳ 等客户选方案" in one(in_thread(queued, CARD_EDIT)).text
    ticket = await ticket_of(uow)
    assert ticket.status is Status.REMEDY_OFFERED and ticket.tier == "minor"


async def test_the_customers_choice_asks_staff_to_carry_it_out(
    uow: FakeUnitOfWork, desk: Desk
) -> None:
    """The chosen option is confirmed with its due time; staff get the task and a done button."""
    await submitted(uow, desk)
    await staff_taps(uow, desk, MANAGER, "补偿方案:轻微")

    answer, queued = await customer_taps(uow, desk, "¥10 无门槛优惠券")

    assert answer == Answer()
    reply = one(to_customer(queued))
    assert "已经为您安排:<b>¥10 无门槛优惠券</b>" in reply.text
    assert "11月23日 14:00" in reply.text  # noon in Shanghai plus the option's 2 hours
    task = one(in_thread(queued))
    assert "客户选择了「¥10 无门槛优惠券」" in task.text
    assert "给客户发放一张 ¥10 无门槛优惠券" in task.text
    assert task.labels == ["✅ 已办妥,结案"] and task.urgency is Urgency.RELAY
    ticket = await ticket_of(uow)
    assert ticket.status is Status.REMEDY_CHOSEN and ticket.chosen_option == 0


async def test_done_resolves_the_ticket_and_tells_the_customer(
    uow: FakeUnitOfWork, desk: Desk
) -> None:
    """Staff's "done" resolves the ticket; the customer hears what was done."""
    await submitted(uow, desk)
    await staff_taps(uow, desk, MANAGER, "补偿方案:轻微")
    _, chosen = await customer_taps(uow, desk, "¥10 无门槛优惠券")
    task = one(in_thread(chosen))

    answer, queued = await staff_taps(uow, desk, STAFF, "✅ 已办妥,结案", on=task)

    assert answer == Answer("T-000001 已结案。")
    reply = one(to_customer(queued))
    assert "<b>T-000001</b> 已经处理好了:¥10 无门槛优惠券" in reply.text
    assert "已由 小王 结案" in one(in_thread(queued)).text
    # the tapped message's button goes; the card's give way to the card's new state
    assert [q.message_ref for q in queued if q.kind == CLEAR] == [room_ref(uow, task)]
    assert "✅ 已解决" in one(in_thread(queued, CARD_EDIT)).text
    ticket = await ticket_of(uow)
    assert ticket.status is Status.RESOLVED and ticket.resolved_at == NOW


# -- an intake left unfinished ---------------------------------------------------------------


@pytest.mark.parametrize("opening", ["/start", "你好"])
async def test_an_intake_that_holds_nothing_is_dropped_without_a_word(
    uow: FakeUnitOfWork, desk: Desk, opening: str
) -> None:
    """The customer only opened the chat (the start button, a greeting) and said nothing more:
    at the intake timeout staff get no card, the customer nothing more than the greeting, and
    the ticket ends cancelled, by the desk."""
    assert len(to_customer(await customer_writes(uow, desk, opening))) == 1  # the greeting

    queued = await deadline(uow, desk, DeadlineKind.INTAKE_TIMEOUT, NOW + timedelta(minutes=10))

    assert [q for q in queued if not q.dropped] == []
    assert (await ticket_of(uow)).status is Status.CANCELLED
    [cancelled] = [e for e in await uow.tickets.events(1) if e.kind is EventKind.CANCELLED]
    assert cancelled.actor.role == "bot" and cancelled.detail == "empty intake"


async def test_an_intake_with_one_answer_is_submitted_as_it_stands(
    uow: FakeUnitOfWork, desk: Desk
) -> None:
    """One real answer (the category tapped after a start) is something to pass on: at the
    intake timeout staff get a card marked incomplete and the customer hears it went."""
    await customer_writes(uow, desk, "/start")
    await customer_taps(uow, desk, "花材质量")

    queued = await deadline(uow, desk, DeadlineKind.INTAKE_TIMEOUT, NOW + timedelta(minutes=10))

    card = one([q for q in queued if q.kind == CARD])
    assert "超时自动提交" in card.text and "花材质量" in card.text
    assert "交给了店里的同事" in one(to_customer(queued)).text
    assert (await ticket_of(uow)).status is Status.OPEN


async def test_a_greeting_edited_into_a_complaint_is_not_dropped(
    uow: FakeUnitOfWork, desk: Desk
) -> None:
    """The customer's only message was a greeting, which they then changed into what went
    wrong: at the intake timeout the intake is not empty, and staff see the changed words."""
    await customer_writes(uow, desk, "你好")
    await customer.edited(uow.typed, desk, said("你好,花都蔫了,叶子也黄了"), NOW)

    queued = await deadline(uow, desk, DeadlineKind.INTAKE_TIMEOUT, NOW + timedelta(minutes=10))

    assert one([q for q in queued if q.kind == CARD])
    assert any("花都蔫了" in q.text for q in queued if q.lane.startswith("staff"))


# -- after the fix -------------------------------------------------------------------------


async def test_the_follow_up_deadline_asks_for_a_rating(uow: FakeUnitOfWork, desk: Desk) -> None:
    """A day after the fix the customer is asked for a score from 1 to 5."""
    await resolved(uow, desk)
    later = NOW + timedelta(days=1)

    question = one(to_customer(await deadline(uow, desk, DeadlineKind.FOLLOW_UP, later)))

    assert "问题解决得您还满意吗" in question.text
    assert question.labels == ["1 很不满意", "2 不满意", "3 一般", "4 满意", "5 非常满意"]
    assert (await ticket_of(uow)).follow_up_asked_at == later


async def test_a_follow_up_that_cannot_reach_the_customer_waits_for_them(
    uow: FakeUnitOfWork, desk: Desk
) -> None:
    """WeChat refuses the question (its window has closed): staff hear so, the ticket is not
    closed as accepted for the silence, and the customer's next message brings the question."""
    await asked_to_rate(uow, desk)
    later = NOW + timedelta(days=1)

    await customer.refused(uow.typed, desk, 1, "window: late", later)

    note = one(in_thread(uow.outbox.take()))
    assert "回访满意度的消息没能发给客户" in note.text and "48 小时已过" in note.text
    ticket = await ticket_of(uow)
    assert ticket.status is Status.RESOLVED and ticket.follow_up_missed
    assert plan(ticket, desk.sla, desk.policy.hours) == []  # no auto-close, no second ask
    assert EventKind.FOLLOW_UP_UNDELIVERED in [e.kind for e in await uow.tickets.events(1)]

    queued = await customer_writes(uow, desk, "在吗", at=later + timedelta(days=3))

    assert "在吗" in one(in_thread(queued, RELAY)).text
    question = one(to_customer(queued))
    assert "问题解决得您还满意吗" in question.text and "1 很不满意" in question.labels
    assert await uow.tickets.get(2) is None  # no new complaint opened
    ticket = await ticket_of(uow)
    assert ticket.follow_up_asked_at == later + timedelta(days=3)
    assert not ticket.follow_up_missed


async def test_a_low_rating_reopens_the_ticket_and_calls_the_manager(
    uow: FakeUnitOfWork, desk: Desk
) -> None:
    """A score of 1 reopens the ticket; the customer hears the manager will call, who is paged."""
    await asked_to_rate(uow, desk)

    answer, queued = await customer_taps(uow, desk, "1 很不满意")

    assert answer == Answer()
    reply = one(to_customer(queued))
    assert "重新打开了,店长会亲自跟进" in reply.text
    assert reply.labels == ["不用了,谢谢"]
    page = one(in_thread(queued))
    assert "打了 1 分,投诉已重新打开" in page.text
    assert '<a href="tg://user?id=4242">陈店长</a>' in page.text
    ticket = await ticket_of(uow)
    assert ticket.status is Status.OPEN and ticket.satisfaction == 1


async def test_a_comment_after_rating_is_kept_and_shown_to_staff(
    uow: FakeUnitOfWork, desk: Desk
) -> None:
    """The customer's next words after the score are their comment: kept, thanked, shown."""
    await asked_to_rate(uow, desk)
    await customer_taps(uow, desk, "4 满意")

    queued = await customer_writes(uow, desk, "送花小哥很有礼貌")

    comment = one(in_thread(queued))
    assert "客户的评价留言(4 分)" in comment.text and "送花小哥很有礼貌" in comment.text
    assert "您的意见我们都会认真看" in one(to_customer(queued)).text
    ticket = await ticket_of(uow)
    assert ticket.satisfaction_comment == "送花小哥很有礼貌"
    assert not ticket.awaiting_comment and ticket.status is Status.CLOSED
    assert await uow.tickets.get(2) is None  # no new complaint opened


async def test_an_alarm_word_in_the_comment_after_a_low_rating_pages_the_managers(
    uow: FakeUnitOfWork, desk: Desk
) -> None:
    """The reopened ticket turns critical when the customer's comment threatens the media."""
    await asked_to_rate(uow, desk)
    await customer_taps(uow, desk, "1 很不满意")

    queued = await customer_writes(uow, desk, "太差了,我要去媒体曝光")

    assert "客户的评价留言(1 分)" in in_thread(queued)[0].text
    alarm = [q for q in in_thread(queued) if "升级为重大投诉" in q.text]
    assert '<a href="tg://user?id=4242">陈店长</a>' in one(alarm).text
    assert (await ticket_of(uow)).priority == "critical"


# -- the clock and alarms ------------------------------------------------------------------


async def test_a_late_first_response_pages_the_managers(uow: FakeUnitOfWork, desk: Desk) -> None:
    """No human answer within the first-response time: the managers are paged in the thread and
    the customer reassured."""
    await submitted(uow, desk)

    queued = await deadline(uow, desk, DeadlineKind.FIRST_RESPONSE, NOW + timedelta(minutes=10))

    page = one(in_thread(queued))
    assert "客户已经等了 10 分钟,还没有人回复" in page.text
    assert '<a href="tg://user?id=4242">陈店长</a>' in page.text
    assert page.alert  # a WeCom staff group, where there is one, gets a copy
    assert "已经交到店长手上" in one(to_customer(queued)).text
    escalated = [e for e in await uow.tickets.events(1) if e.kind is EventKind.ESCALATED]
    assert [e.detail for e in escalated] == ["first_response"]


async def test_an_alarm_word_during_the_intake_alerts_the_staff_room_at_once(
    uow: FakeUnitOfWork, desk: Desk
) -> None:
    """A safety word while the customer is still writing pages the managers before any card."""
    await reach(uow, desk, Step.STORY)

    queued = await customer_writes(uow, desk, "孩子被花里的铁丝划得受伤了")

    alert = one([q for q in queued if q.kind == ROOM])
    assert alert.lane == "staff:room" and alert.ticket_id == 1
    assert alert.urgency is Urgency.RELAY
    assert "重大投诉预警 T-000001" in alert.text and "「受伤」" in alert.text
    assert '<a href="tg://user?id=4242">陈店长</a>' in alert.text
    assert "方便拍几张照片给我们看看吗" in one(to_customer(queued)).text  # the intake goes on
    ticket = await ticket_of(uow)
    assert ticket.priority == "critical" and ticket.priority_words == ["受伤"]
    assert ticket.status is Status.INTAKE


async def test_an_unreachable_customer_is_marked_and_staff_told(
    uow: FakeUnitOfWork, desk: Desk
) -> None:
    """When nothing reaches the customer, the card says so and staff are given the phone."""
    await submitted(uow, desk)

    await customer.unreachable(uow.typed, desk, CUSTOMER, "blocked the bot", NOW)

    queued = uow.outbox.take()
    assert to_customer(queued) == []
    note = one(in_thread(queued))
    assert "客户已屏蔽机器人" in note.text and "请用电话联系:13800138000" in note.text
    assert "⚠️ 客户已屏蔽机器人" in one(in_thread(queued, CARD_EDIT)).text
    assert (await ticket_of(uow)).customer_blocked


async def test_a_customer_who_blocks_the_bot_after_the_fix_is_marked_and_staff_told(
    uow: FakeUnitOfWork, desk: Desk
) -> None:
    """When the resolution (or the follow-up question) cannot reach the customer, the resolved
    ticket's card says so and staff are given the phone."""
    await resolved(uow, desk)

    await customer.unreachable(
        uow.typed,
        desk,
        CUSTOMER,
        "blocked the bot",
        NOW,
        ticket_id=1,  # the bounced message's
    )

    queued = uow.outbox.take()
    assert "请用电话联系:13800138000" in one(in_thread(queued)).text
    assert "⚠️ 客户已屏蔽机器人" in one(in_thread(queued, CARD_EDIT)).text
    assert (await ticket_of(uow)).customer_blocked


# -- what it is about, and why -------------------------------------------------------------


async def test_the_root_cause_is_two_taps_from_the_card(uow: FakeUnitOfWork, desk: Desk) -> None:
    """ "Record the root cause" puts the causes under a message in the thread; a tap records
    one, and the card shows it."""
    await submitted(uow, desk)

    answer, queued = await staff_taps(uow, desk, STAFF, "🔎 记录原因")
    assert answer == Answer()
    ask = one(in_thread(queued))
    assert ask.labels == ["产品缺陷", "服务失误", "流程缺失", "门店", "供应链", "配送"]

    answer, queued = await staff_taps(uow, desk, STAFF, "产品缺陷", on=ask)
    assert answer == Answer("已记录:产品缺陷")
    answer, queued = await staff_taps(uow, desk, STAFF, "供应链", on=ask)
    assert "🔎 原因:产品缺陷 · 供应链" in one(in_thread(queued, CARD_EDIT)).text
    ticket = await ticket_of(uow)
    assert (ticket.root_cause, ticket.responsible) == ("product_defect", "supply_chain")


async def _open_ticket(uow: FakeUnitOfWork, number: int, at: datetime) -> Ticket:
    ticket = Ticket(f"90{number}", f"客户{number}", "zh", at, channel="telegram")
    ticket.status = Status.OPEN
    ticket.submitted_at = at
    return await uow.tickets.add(ticket)


async def test_the_third_complaint_about_one_product_alerts_the_managers_once(
    uow: FakeUnitOfWork, desk: Desk
) -> None:
    """Policy: 3 within 24 hours. The third names the product and the tickets and pages the
    managers; a fourth the same day does not alert again; the next day's third does."""
    for number in range(1, 4):
        ticket = await _open_ticket(uow, number, NOW + timedelta(minutes=number))
        await staff.fact_command(
            uow.typed, desk, STAFF, ticket, "/product", " 红玫瑰 花束 ", NOW + timedelta(hours=1)
        )
    alerts = [q for q in uow.outbox.take() if q.kind == ROOM]
    alert = one(alerts)
    assert "商品「红玫瑰 花束」在 24 小时内已有 3 单投诉" in alert.text
    assert "T-000001" in alert.text and "T-000003" in alert.text
    assert '<a href="tg://user?id=4242">陈店长</a>' in alert.text and alert.alert

    fourth = await _open_ticket(uow, 4, NOW + timedelta(hours=2))
    await staff.fact_command(
        uow.typed, desk, STAFF, fourth, "/product", "红玫瑰 花束", NOW + timedelta(hours=2)
    )
    assert not [q for q in uow.outbox.take() if q.kind == ROOM]

    later = NOW + timedelta(days=2)
    for number in range(5, 8):
        ticket = await _open_ticket(uow, number, later)
        await staff.fact_command(uow.typed, desk, STAFF, ticket, "/product", "红玫瑰 花束", later)
    assert "已有 3 单投诉" in one([q for q in uow.outbox.take() if q.kind == ROOM]).text


async def test_a_fact_command_without_its_words_says_how(uow: FakeUnitOfWork, desk: Desk) -> None:
    await submitted(uow, desk)
    ticket = await ticket_of(uow)
    uow.outbox.take()

    await staff.fact_command(uow.typed, desk, STAFF, ticket, "/cause", "不知道", NOW)

    assert "/cause 产品 供应链" in one(in_thread(uow.outbox.take())).text
    assert (await ticket_of(uow)).root_cause is None


async def test_the_cause_may_be_written_as_one_phrase(uow: FakeUnitOfWork, desk: Desk) -> None:
    """ "/cause 产品缺陷，供应链" is understood; saying it again adds nothing to the thread."""
    await submitted(uow, desk)
    ticket = await ticket_of(uow)
    uow.outbox.take()

    await staff.fact_command(uow.typed, desk, STAFF, ticket, "/cause", "产品缺陷，供应链", NOW)
    assert "小王 记录了 产品缺陷、供应链" in one(in_thread(uow.outbox.take())).text

    again = await ticket_of(uow)
    await staff.fact_command(uow.typed, desk, STAFF, again, "/cause", "产品 供应链", NOW)
    assert not in_thread(uow.outbox.take())
    assert (again.root_cause, again.responsible) == ("product_defect", "supply_chain")


async def test_the_shops_order_endpoint_fills_the_card_after_the_commit(
    uow: FakeUnitOfWork,
) -> None:
    """An order the desk has not been given is asked of the shop's endpoint once the submit is
    committed (never inside it): the card goes at once, then shows the order; it is kept (not
    asked again)."""
    from bot.domain.orders import Order

    asked: list[str] = []

    async def lookup(number: str) -> Order | None:
        asked.append(number)
        return Order(number, product="红玫瑰花束", batch="B20261120", delivered_at="11-23 10:00")

    desk = fakes.desk(order_lookup=lookup)
    await submitted(uow, desk)

    card = one([q for q in uow.outbox.pending() if q.kind == CARD])
    assert "订单记录" not in card.text and asked == []  # nothing asked inside the unit of work
    await uow.commit()

    edit = one(in_thread(uow.outbox.take(), CARD_EDIT))
    assert (
        "订单记录" in edit.text
        and "商品 红玫瑰花束" in edit.text
        and "批次 B20261120" in edit.text
    )
    assert asked == ["FS2026112301"] and await uow.orders.get("FS2026112301") is not None
    assert (await ticket_of(uow)).product == "红玫瑰花束"
