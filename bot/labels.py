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
        "cause": "🔎 记录原因",
        "phrases": "💬 常用话术",
        "cause_product_defect": "产品缺陷",
        "cause_service_mistake": "服务失误",
        "cause_process_gap": "流程缺失",
        "where_store": "门店",
        "where_supply_chain": "供应链",
        "where_courier": "配送",
        "row_order": "订单号",
        "row_contact": "联系方式",
        "row_channel": "渠道",
        "row_taken": "负责人",
        "row_history": "历史",
        "no_order_row": "无",
        "no_contact_row": "未留电话",
        "nobody_yet": "待认领",
        "taking": "{name} 跟进中",
        # what staff may type instead of tapping (a chat where buttons do not show)
        "typed_take": "跟进",
        "typed_tier": "方案",
        "typed_done": "结案",
        "open_dashboard": "📊 打开投诉看板",
        "start_dashboard": "💬 私聊机器人,打开看板",
        "open_card": "打开看板",  # a WeCom textcard's button: at most 4 characters
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
        "row_order": "Order",
        "row_contact": "Contact",
        "row_channel": "Channel",
        "row_taken": "Handled by",
        "row_history": "History",
        "no_order_row": "none",
        "no_contact_row": "no phone",
        "nobody_yet": "nobody yet",
        "taking": "{name} has it",
        "typed_take": "take",
        "typed_tier": "remedy",
        "typed_done": "resolve",
        "rate_1": "1 Very unhappy",
        "rate_2": "2 Unhappy",
        "rate_3": "3 OK",
        "rate_4": "4 Happy",
        "rate_5": "5 Very happy",
        "no_comment": "No, thank you",
        "cause": "🔎 Record the root cause",
        "phrases": "💬 Phrases",
        "cause_product_defect": "Product defect",
        "cause_service_mistake": "Service mistake",
        "cause_process_gap": "Process gap",
        "where_store": "Store",
        "where_supply_chain": "Supply chain",
        "where_courier": "Courier",
        "open_dashboard": "📊 Open the dashboard",
        "start_dashboard": "💬 Open it in a private chat with the bot",
        "open_card": "Open",  # a WeCom textcard's button: at most 4 characters
    },
}


def label(language: str, key: str, **values: str) -> str:
    return LABELS.get(language, LABELS["en"])[key].format(**values)


def skip_contact_texts() -> set[str]:
    """What a customer may type (or tap) to skip the phone number."""
    return {labels["skip_contact"] for labels in LABELS.values()} | {"跳过", "skip"}


# the complaint record's columns (the export), by the keys of bot.reports.workbook
RECORD_HEADERS: dict[str, dict[str, str]] = {
    "zh": {
        "reference": "投诉单号",
        "time": "投诉时间", "channel": "渠道", "customer": "客户", "contact": "联系方式",
        "order": "订单号", "product": "商品", "batch": "批次", "store": "门店", "region": "区域",
        "category": "问题类型", "severity": "严重程度", "story": "经过", "photos": "照片数",
        "first_answer_at": "首次回复时间", "first_answer_minutes": "首次回复用时(分钟)",
        "actions": "处理过程", "remedy": "补偿方案", "result": "结果", "satisfaction": "满意度",
        "root_cause": "原因", "responsible": "责任环节",
    },
    "en": {
        "reference": "Ticket",
        "time": "Submitted", "channel": "Channel", "customer": "Customer", "contact": "Contact",
        "order": "Order", "product": "Product", "batch": "Batch", "store": "Store",
        "region": "Region", "category": "Category", "severity": "Severity",
        "story": "What happened", "photos": "Photos", "first_answer_at": "First answer",
        "first_answer_minutes": "Minutes to first answer", "actions": "Actions",
        "remedy": "Remedy", "result": "Result", "satisfaction": "Satisfaction",
        "root_cause": "Root cause", "responsible": "Where",
    },
}  # fmt: skip

CHANNELS = {"zh": {"telegram": "Telegram", "wecom": "微信"}, "en": {"wecom": "WeChat"}}

STATUSES: dict[str, dict[str, str]] = {
    "zh": {
        "open": "待处理", "remedy_offered": "等客户选方案", "remedy_chosen": "待执行方案",
        "resolved": "已解决", "closed": "已结案", "cancelled": "已取消", "intake": "填写中",
    },
    "en": {
        "open": "open", "remedy_offered": "customer choosing", "remedy_chosen": "remedy to do",
        "resolved": "resolved", "closed": "closed", "cancelled": "cancelled",
        "intake": "in intake",
    },
}  # fmt: skip

# a ticket's timeline (`/ticket`, the dashboard): what each event and each kind of message is
TIMELINE: dict[str, dict[str, str]] = {
    "zh": {
        "received": "收到投诉", "in_intake": "填写中", "submitted": "提交给员工",
        "auto_submitted": "超时自动提交", "taken": "认领", "answered": "首次回复",
        "remedy_offered": "给出补偿方案", "remedy_chosen": "客户选择方案", "resolved": "结案",
        "reopened": "重新打开", "cancelled": "客户取消", "undeliverable": "消息无法送达",
        "escalated": "超时提醒", "flagged": "重大投诉", "follow_up_asked": "回访",
        "follow_up_undelivered": "回访没送达", "rated": "客户评分", "closed": "关闭",
        "held_back": "拦下不当回复", "facts_set": "记录原因/商品",
        "text": "文字", "photo": "照片", "video": "视频", "voice": "语音", "document": "文件",
        "sticker": "表情",
    },
    "en": {
        "received": "received", "in_intake": "in intake", "submitted": "submitted to staff",
        "auto_submitted": "submitted on time-out", "taken": "taken", "answered": "first answer",
        "remedy_offered": "remedy offered", "remedy_chosen": "remedy chosen",
        "resolved": "resolved", "reopened": "reopened", "cancelled": "cancelled by the customer",
        "undeliverable": "undeliverable", "escalated": "escalated", "flagged": "flagged critical",
        "follow_up_asked": "follow-up asked", "follow_up_undelivered": "follow-up undelivered",
        "rated": "rated", "closed": "closed", "held_back": "reply held back",
        "facts_set": "facts recorded",
        "text": "text", "photo": "photo", "video": "video", "voice": "voice",
        "document": "file", "sticker": "sticker",
    },
}  # fmt: skip
