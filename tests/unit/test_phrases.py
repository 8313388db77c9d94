"""The shop's phrases in the policy file: checked at start, filled with a ticket's facts."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from bot.config import BUNDLED_POLICY
from bot.domain.guard import find_banned
from bot.domain.phrases import fill, find
from bot.policy import PolicyError, load_policy

POLICY = load_policy(BUNDLED_POLICY)


def with_phrases(tmp_path: Path, phrases: list[dict[str, object]]) -> Path:
    data = yaml.safe_load(BUNDLED_POLICY.read_text(encoding="utf-8"))
    data["phrases"] = phrases
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


def test_the_bundled_shop_has_a_dozen_phrases_the_guard_lets_through() -> None:
    """At least 12 phrases, each in Chinese and English, none with a banned phrase."""
    assert len(POLICY.phrases) >= 12
    for phrase in POLICY.phrases:
        for language in ("zh", "en"):
            text = phrase.text.in_(language)
            assert text.strip(), (phrase.name, language)
            assert find_banned(text, POLICY.banned) is None, (phrase.name, language)
    assert {"道歉", "要照片", "问花艺师", "问配送", "进展", "方案", "延误", "感谢"} <= {
        p.name for p in POLICY.phrases
    }


@pytest.mark.parametrize(
    ("phrase", "message"),
    [
        (
            {"name": "查单", "text": {"zh": "订单 {orderr} 已查", "en": "Order {order} checked"}},
            "phrase '查单' (zh): unknown fact {orderr}",
        ),
        ({"name": "查单", "text": {"zh": "订单 {order} 已查"}}, "phrases.'查单'.text.en"),
        (
            {"name": "规定", "text": {"zh": "公司的规定就是这样的", "en": "Rules are rules."}},
            "phrase '规定' (zh): it says '公司的规定就是这样的'",
        ),
    ],
)
def test_a_broken_phrase_stops_the_start_naming_it(
    tmp_path: Path, phrase: dict[str, object], message: str
) -> None:
    """An unknown fact, a missing language, a text the guard stops: one line naming the phrase."""
    with pytest.raises(PolicyError) as raised:
        load_policy(with_phrases(tmp_path, [phrase]))
    assert message in str(raised.value)
    assert "\n" not in str(raised.value)


def test_two_phrases_may_not_share_a_name(tmp_path: Path) -> None:
    """A duplicate name stops the start, naming it."""
    one = {"name": "稍等", "text": {"zh": "请稍等", "en": "One moment"}}
    with pytest.raises(PolicyError, match="phrase '稍等': two phrases share this name"):
        load_policy(with_phrases(tmp_path, [one, one]))


def test_a_phrase_is_filled_with_the_tickets_facts() -> None:
    """{order} and the others become the ticket's values; a name is found whatever its case."""
    phrase = find(POLICY.phrases, " 问配送 ")
    assert phrase is not None
    text = fill(phrase.text.zh, {"order": "FS2026112301"})
    assert "FS2026112301" in text and "{" not in text
    assert find(POLICY.phrases, "nope") is None
