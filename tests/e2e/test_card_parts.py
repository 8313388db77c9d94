"""A card is several messages (the card, its photos, the rest of the story): one that fails is
tried again on its own, so the card is never posted twice, nor its topic made twice; and a send
whose answer never came is not sent again."""

from __future__ import annotations

from typing import Any

from bot.standin import BotApiStandIn
from tests.conftest import STAFF_CHAT
from tests.e2e.people import file_complaint

LONG_STORY = "花送到的时候一半都蔫了," * 200  # more than the card holds


def cards(api: BotApiStandIn) -> list[Any]:
    return [s for s in api.sent_to(STAFF_CHAT) if "📋 投诉单" in s.text]


async def test_photos_that_fail_for_a_while_do_not_post_the_card_again(
    api: BotApiStandIn, start_bot: Any
) -> None:
    """Telegram refuses the card's album with 502 more often than one send retries: the card
    stays one card, and the photos and the full story arrive once Telegram takes them."""
    bot = await start_bot()
    bot.app.telegram.api.backoff_first = bot.app.telegram.api.backoff_most = 0.01
    bot.app.sender.retry_first = bot.app.sender.retry_most = 0.02
    api.inject("sendMediaGroup", 502, count=9, chat_id=STAFF_CHAT)
    await file_complaint(api, api.person(7401, "小唐", "zh"), story=LONG_STORY)
    await bot.settled()
    assert len(cards(api)) == 1
    assert len([s for s in api.sent_to(STAFF_CHAT) if s.kind == "photo"]) == 2
    assert sum("经过全文" in s.text for s in api.sent_to(STAFF_CHAT)) == 1


async def test_in_a_forum_a_card_that_fails_after_its_topic_keeps_that_topic(
    api: BotApiStandIn, start_bot: Any
) -> None:
    """With topics on, the topic is made, then the card fails for a while: once it goes, it
    goes into that same topic, and no second topic is made."""
    api.groups[STAFF_CHAT].forum = True
    bot = await start_bot()
    bot.app.telegram.api.backoff_first = bot.app.telegram.api.backoff_most = 0.01
    bot.app.sender.retry_first = bot.app.sender.retry_most = 0.02
    api.inject("sendMessage", 502, count=9, chat_id=STAFF_CHAT)
    await file_complaint(api, api.person(7402, "小宋", "zh"), photos=())
    await bot.settled()
    [card] = cards(api)
    assert list(api.groups[STAFF_CHAT].topics) == [card.thread_id]


async def test_a_card_whose_answer_never_came_is_not_posted_again(
    api: BotApiStandIn, start_bot: Any
) -> None:
    """Telegram takes the card but its answer comes too late for the bot: the card may have
    arrived, so it is recorded as unsure and not posted a second time."""
    bot = await start_bot()
    api.slow_answer("sendMessage", 8.0, chat_id=STAFF_CHAT)  # past the bot's read timeout
    await file_complaint(api, api.person(7403, "小韩", "zh"), photos=())
    await bot.settled()
    assert len(cards(api)) == 1


async def test_a_staff_answer_whose_answer_never_came_is_not_sent_twice(
    api: BotApiStandIn, start_bot: Any
) -> None:
    """Telegram takes a staff member's answer to the customer but answers too late: the
    customer has it once, and its writer hears it may not have arrived."""
    from tests.e2e.people import in_group, said

    bot = await start_bot()
    customer = api.person(7404, "小赵", "zh")
    card = await file_complaint(api, customer, photos=())
    staff = api.person(7504, "小王", "zh")
    api.slow_answer("sendMessage", 8.0, chat_id=customer.id)  # past the bot's read timeout
    mark = len(api.sent)
    staff.say_in_group(STAFF_CHAT, "您好,我们马上为您重做", reply_to=card.message_id)
    await said(api, customer, "马上为您重做", mark)
    doubt = await in_group(api, "没等到消息平台的回音", mark, timeout=30)
    assert "小王" in doubt.text and "T-000001" in doubt.text
    await bot.settled()
    assert sum("马上为您重做" in s.text for s in api.sent_to(customer.id)) == 1
