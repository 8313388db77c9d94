"""The shop's policy file, the severity it suggests, and the settings."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from bot.config import BUNDLED_POLICY, SettingsError, load_settings, parse_duration
from bot.domain.signals import match_category, suggest_severity
from bot.policy import PolicyError, load_policy
from bot.text import split_text

POLICY = load_policy(BUNDLED_POLICY)


def test_the_bundled_policy_is_the_flower_shop_ladder() -> None:
    """Minor ¥10 voucher; medium remake or half refund; severe remake + ¥50; critical in person."""
    tiers = {t.key: t for t in POLICY.ladder.tiers}
    assert tiers["minor"].options[0].amount == 10
    assert [o.key for o in tiers["medium"].options] == ["remake_today", "refund_half"]
    assert tiers["severe"].options[0].amount == 50
    assert tiers["critical"].in_person and not tiers["critical"].options
    assert "一分钱一分货" in POLICY.banned_phrases


def test_severity_is_suggested_from_the_most_severe_words() -> None:
    """The last tier whose words appear wins, and the words are named."""
    suggestion = suggest_severity(["花蔫了", "孩子碰了过敏"], POLICY.ladder)
    assert suggestion is not None and suggestion.tier_key == "critical"
    assert suggestion.words == ("过敏",)
    assert suggest_severity(["一切都好"], POLICY.ladder) is None


def test_a_typed_category_matches_only_when_one_fits() -> None:
    """Labels and keywords name a category; ambiguous text names none."""
    assert match_category("配送延误", POLICY.intake.categories).key == "late"  # type: ignore
    assert match_category("花蔫了", POLICY.intake.categories).key == "quality"  # type: ignore
    assert match_category("你好", POLICY.intake.categories) is None


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("shop_name: {zh: a, en: b}\n", "order_number"),
        ("not: [valid", "not valid YAML"),
    ],
)
def test_a_broken_policy_names_the_problem(tmp_path: Path, body: str, message: str) -> None:
    """The start stops with a line naming the file and the entry."""
    path = tmp_path / "policy.yaml"
    path.write_text(body, encoding="utf-8")
    with pytest.raises(PolicyError, match=message):
        load_policy(path)


def test_a_tier_without_options_must_be_in_person(tmp_path: Path) -> None:
    """Options or in_person: a tier the manager could pick but offers nothing is refused."""
    text = BUNDLED_POLICY.read_text(encoding="utf-8").replace("in_person: true", "")
    path = tmp_path / "policy.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(PolicyError, match="critical"):
        load_policy(path)


def test_toml_policies_are_read_too(tmp_path: Path) -> None:
    """A TOML policy with the same fields loads."""
    path = tmp_path / "policy.toml"
    path.write_text(
        'shop_name = {zh = "店", en = "Shop"}\n'
        'order_number = {pattern = "\\\\d{6}", example = "123456"}\n'
        '[[categories]]\nkey = "other"\nlabel = {zh = "其他", en = "Other"}\n'
        '[[tiers]]\nkey = "minor"\nlabel = {zh = "轻微", en = "Minor"}\n'
        '[[tiers.options]]\nkey = "v5"\nlabel = {zh = "5元券", en = "A ¥5 voucher"}\n'
        'staff_action = {zh = "发券", en = "Send it"}\namount = 5\nwithin = "2h"\n',
        encoding="utf-8",
    )
    policy = load_policy(path)
    assert policy.ladder.tiers[0].options[0].within == timedelta(hours=2)


def test_durations_and_settings_are_read_with_clear_errors(clean_env: Path) -> None:
    """10m/2h/5d parse; a bad value and a missing token are named in one line each."""
    assert parse_duration("90s") == timedelta(seconds=90)
    assert parse_duration("5d") == timedelta(days=5)
    settings = load_settings(bot_token="1:abc", staff_chat_id="-100", manager_ids="1, 2")
    assert settings.manager_ids == (1, 2)
    with pytest.raises(SettingsError, match="SLA_FIRST_RESPONSE is malformed"):
        load_settings(bot_token="1:abc", staff_chat_id="-100", sla_first_response="soon")
    with pytest.raises(SettingsError, match="BotFather.*python -m bot demo"):
        load_settings(staff_chat_id="-100")


def test_long_texts_split_into_pieces_that_join_back() -> None:
    """Pieces stay within the limit and lose no character."""
    text = ("一段话。\n" * 3000) + "x" * 5000
    pieces = split_text(text, 4000)
    assert all(len(p) <= 4000 for p in pieces) and "".join(pieces) == text
