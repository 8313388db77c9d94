"""Every button label the desk shows, in each language, looked up by key: the same words on
every messenger."""

from __future__ import annotations

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


def skip_contact_texts() -> set[str]:
    """What a customer may type (or tap) to skip the phone number."""
    return {labels["skip_contact"] for labels in LABELS.values()} | {"跳过", "skip"}
