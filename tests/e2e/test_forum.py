"""A staff group with topics: one topic per ticket, and a deleted topic comes back."""

from __future__ import annotations

from bot.standin import BotApiStandIn
from tests.conftest import STAFF_CHAT
from tests.e2e.people import file_complaint, said


async def test_each_ticket_gets_its_topic_and_every_message_there_is_relayed(
    api: BotApiStandIn, start_bot
) -> None:
    """The card opens the ticket's topic; staff write there without replying; customers' words
    land there; a deleted topic is created again rather than swallowing messages."""
    api.groups[STAFF_CHAT].forum = True
    await start_bot()
    customer = api.person(7001, "小林", "zh")
    staff = api.person(7101, "小王", "zh")
    card = await file_complaint(api, customer)
    topic = card.thread_id
    assert topic is not None and api.groups[STAFF_CHAT].topics[topic] == "T-000001 · 小林"
    photos = [s for s in api.sent_to(STAFF_CHAT) if s.kind == "photo"]
    assert photos and all(p.thread_id == topic for p in photos)

    mark = len(api.sent)
    staff.say_in_group(STAFF_CHAT, "您好,我是小王,我来跟进", thread_id=topic)
    await said(api, customer, "我来跟进", mark)
    mark = len(api.sent)
    staff.say_in_group(STAFF_CHAT, "大家好")  # the General topic: not a ticket
    customer.send("好的谢谢")
    back = await api.wait_text(STAFF_CHAT, "好的谢谢", after=mark)
    assert back.thread_id == topic
    assert not any("大家好" in s.text for s in api.sent_to(customer.id))

    api.delete_topic(STAFF_CHAT, topic)
    mark = len(api.sent)
    customer.send("还有,花瓶也裂了")
    again = await api.wait_text(STAFF_CHAT, "花瓶也裂了", after=mark)
    assert again.thread_id not in (None, topic)
    repost = await api.wait_text(STAFF_CHAT, "投诉单 T-000001", after=mark)
    assert repost.thread_id == again.thread_id  # the card is in the new topic too
