"""Every button the bot shows, with its label in each language."""

from __future__ import annotations

from aiogram.types import (
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    KeyboardButton,
    ReplyKeyboardMarkup,
)

from bot.callbacks import CardCb, IntakeCb, OptionCb, RateCb
from bot.domain.intake import Step
from bot.domain.remedies import Ladder, Tier
from bot.domain.tickets import Status, Ticket
from bot.policy import Policy

LABELS: dict[str, dict[str, str]] = {
    "zh": {
        "no_order": "我没有订单号",
        "photos_done": "✅ 照片发完了",
        "no_photos": "没有照片,跳过",
        "share_contact": "📱 分享我的手机号",
        "skip_contact": "跳过,就在这里联系我",
        "submit": "✅ 提交",
        "change": "✏️ 修改",
        "cancel": "✖️ 取消投诉",
        "back": "↩️ 返回",
        "field_category": "问题类型",
        "field_order": "订单号",
        "field_story": "问题经过",
        "field_photos": "照片",
        "field_contact": "联系方式",
        "take": "🙋 我来跟进",
        "resolve_plain": "✅ 直接结案(不补偿)",
        "reopen": "↩️ 重新打开",
        "done": "✅ 已办妥,结案",
        "tier": "补偿方案:{label}",
        "rate_1": "1 很不满意",
        "rate_2": "2 不满意",
        "rate_3": "3 一般",
        "rate_4": "4 满意",
        "rate_5": "5 非常满意",
        "no_comment": "不用了,谢谢",
    },
    "en": {
        "no_order": "I don't have an order number",
        "photos_done": "✅ That's all the photos",
        "no_photos": "No photos, skip",
        "share_contact": "📱 Share my phone number",
        "skip_contact": "Skip, reach me here",
        "submit": "✅ Submit",
        "change": "✏️ Change something",
        "cancel": "✖️ Cancel the complaint",
        "back": "↩️ Back",
        "field_category": "Problem type",
        "field_order": "Order number",
        "field_story": "What happened",
        "field_photos": "Photos",
        "field_contact": "Contact",
        "take": "🙋 I'll handle it",
        "resolve_plain": "✅ Resolve without compensation",
        "reopen": "↩️ Reopen",
        "done": "✅ Done, resolve the ticket",
        "tier": "Remedy: {label}",
        "rate_1": "1 Very unhappy",
        "rate_2": "2 Unhappy",
        "rate_3": "3 OK",
        "rate_4": "4 Happy",
        "rate_5": "5 Very happy",
        "no_comment": "No, thank you",
    },
}


def label(language: str, key: str, **values: str) -> str:
    return LABELS.get(language, LABELS["en"])[key].format(**values)


def _inline(rows: list[list[tuple[str, str]]]) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        inline_keyboard=[
            [InlineKeyboardButton(text=text, callback_data=data) for text, data in row]
            for row in rows
        ]
    )


def categories(policy: Policy, language: str) -> InlineKeyboardMarkup:
    buttons = [
        (c.label.in_(language), IntakeCb(action="cat", value=c.key).pack())
        for c in policy.intake.categories
    ]
    return _inline([buttons[i : i + 2] for i in range(0, len(buttons), 2)])


def order_number(language: str) -> InlineKeyboardMarkup:
    return _inline([[(label(language, "no_order"), IntakeCb(action="noorder").pack())]])


def photos(language: str, have_photos: bool) -> InlineKeyboardMarkup:
    if have_photos:
        return _inline([[(label(language, "photos_done"), IntakeCb(action="photosdone").pack())]])
    return _inline([[(label(language, "no_photos"), IntakeCb(action="nophotos").pack())]])


def contact(language: str) -> ReplyKeyboardMarkup:
    return ReplyKeyboardMarkup(
        keyboard=[
            [KeyboardButton(text=label(language, "share_contact"), request_contact=True)],
            [KeyboardButton(text=label(language, "skip_contact"))],
        ],
        resize_keyboard=True,
        one_time_keyboard=True,
    )


def skip_contact_texts() -> set[str]:
    return {labels["skip_contact"] for labels in LABELS.values()} | {"跳过", "skip"}


def confirm(language: str) -> InlineKeyboardMarkup:
    return _inline(
        [
            [(label(language, "submit"), IntakeCb(action="submit").pack())],
            [
                (label(language, "change"), IntakeCb(action="change").pack()),
                (label(language, "cancel"), IntakeCb(action="cancel").pack()),
            ],
        ]
    )


def change(language: str) -> InlineKeyboardMarkup:
    fields = [
        (label(language, f"field_{step.value}"), IntakeCb(action="edit", value=step.value).pack())
        for step in (Step.CATEGORY, Step.ORDER, Step.STORY, Step.PHOTOS, Step.CONTACT)
    ]
    return _inline(
        [
            fields[0:2],
            fields[2:4],
            [fields[4], (label(language, "back"), IntakeCb(action="back").pack())],
        ]
    )


def card(ticket: Ticket, ladder: Ladder, language: str) -> InlineKeyboardMarkup | None:
    """The buttons on a ticket's card: take it, and the manager's remedy choices."""
    assert ticket.id is not None
    tid = ticket.id
    if ticket.status in (Status.RESOLVED, Status.CLOSED):
        return _inline(
            [[(label(language, "reopen"), CardCb(action="reopen", ticket_id=tid).pack())]]
        )
    if ticket.status not in (Status.OPEN, Status.REMEDY_OFFERED, Status.REMEDY_CHOSEN):
        return None
    rows: list[list[tuple[str, str]]] = []
    rows.append([(label(language, "take"), CardCb(action="take", ticket_id=tid).pack())])
    if ticket.status is Status.REMEDY_CHOSEN:
        rows.append([(label(language, "done"), CardCb(action="done", ticket_id=tid).pack())])
    else:
        tiers = [
            (
                label(language, "tier", label=tier.label.in_(language)),
                CardCb(action="tier", ticket_id=tid, tier=tier.key).pack(),
            )
            for tier in ladder.tiers
        ]
        rows.extend(tiers[i : i + 2] for i in range(0, len(tiers), 2))
    rows.append([(label(language, "resolve_plain"), CardCb(action="close", ticket_id=tid).pack())])
    return _inline(rows)


def done(ticket_id: int, language: str) -> InlineKeyboardMarkup:
    return _inline(
        [[(label(language, "done"), CardCb(action="done", ticket_id=ticket_id).pack())]]
    )


def options(ticket_id: int, tier: Tier, language: str) -> InlineKeyboardMarkup:
    return _inline(
        [
            [
                (
                    o.label.in_(language),
                    OptionCb(ticket_id=ticket_id, tier=tier.key, option=i).pack(),
                )
            ]
            for i, o in enumerate(tier.options)
        ]
    )


def rating(ticket_id: int, language: str) -> InlineKeyboardMarkup:
    """The satisfaction question's one-tap answers, 1 to 5."""
    buttons = [
        (label(language, f"rate_{score}"), RateCb(ticket_id=ticket_id, score=score).pack())
        for score in range(1, 6)
    ]
    return _inline([buttons[:3], buttons[3:]])


def no_comment(ticket_id: int, language: str) -> InlineKeyboardMarkup:
    return _inline(
        [[(label(language, "no_comment"), RateCb(ticket_id=ticket_id, score=0).pack())]]
    )
