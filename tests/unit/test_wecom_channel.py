"""The WeCom customer channel's own rules: texts as WeChat shows them, cut at 2,048 bytes, and
the window of 5 messages within 48 hours of a customer's message."""

from __future__ import annotations

from bot.channels.wecom.adapter import BUDGET, WINDOW, Windows, plain_text, split_bytes


def test_the_desks_html_reads_as_plain_text_in_wechat() -> None:
    """Tags go, entities are read, line breaks stay."""
    text = plain_text("<b>投诉单 T-000001</b>:&lt;花&gt; &amp; 叶子<br>第二行\n<i>第三行</i>")
    assert text == "投诉单 T-000001:<花> & 叶子\n第二行\n第三行"


def test_a_long_text_is_cut_politely_under_2048_bytes() -> None:
    """Every piece fits WeCom's 2,048 bytes, cut at a sentence's end, and nothing is lost."""
    text = "花全蔫了,叶子也黄了。" * 300
    pieces = split_bytes(text)
    assert len(pieces) > 1
    assert all(len(p.encode()) <= 2048 for p in pieces)
    assert all(p.endswith("。") for p in pieces)
    assert "".join(pieces) == text


def test_the_window_opens_with_each_customer_message_and_holds_five() -> None:
    """Five messages after the customer's, none after 48 hours, five again when they write."""
    windows = Windows()
    window = windows.of("wm1")
    assert window.left(1000.0) == 0  # the customer never wrote
    windows.customer_wrote("wm1", 1000.0)
    assert window.left(1000.0) == BUDGET
    window.sent = BUDGET
    assert window.left(1001.0) == 0
    windows.customer_wrote("wm1", 2000.0)
    assert window.left(2001.0) == BUDGET
    assert window.left(2000.0 + WINDOW + 1) == 0  # 48 hours later
