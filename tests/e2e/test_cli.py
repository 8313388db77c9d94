"""Starting the desk: clear one-line errors for bad settings, and the demo a shop owner runs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT


def run_bot(
    args: list[str], env: dict[str, str], cwd: Path, timeout: float = 120
) -> tuple[int, str]:
    clean = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("BOT_", "STAFF_", "MANAGER_", "DATABASE_", "SHOP_", "TELEGRAM_"))
    }
    result = subprocess.run(
        [sys.executable, "-m", "bot", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env={**clean, "PYTHONPATH": str(ROOT), **env},
        timeout=timeout,
    )
    return result.returncode, result.stdout + result.stderr


def test_no_token_says_how_to_get_one_and_that_the_demo_needs_none(tmp_path: Path) -> None:
    """One line, no traceback, pointing at @BotFather and `python -m bot demo`."""
    code, output = run_bot([], {"STAFF_CHAT_ID": "-100"}, tmp_path)
    assert code == 2 and "Traceback" not in output
    assert "BOT_TOKEN" in output and "@BotFather" in output and "python -m bot demo" in output
    assert len(output.strip().splitlines()) == 1


def test_malformed_settings_are_named(tmp_path: Path) -> None:
    """A bad MANAGER_IDS, duration or policy stops the start with a line naming it."""
    base = {"BOT_TOKEN": "123:abc", "STAFF_CHAT_ID": "-100"}
    code, output = run_bot([], {**base, "MANAGER_IDS": "boss"}, tmp_path)
    assert code == 2 and "MANAGER_IDS is malformed" in output and "Traceback" not in output
    code, output = run_bot([], {**base, "SLA_RESOLUTION": "tomorrow"}, tmp_path)
    assert code == 2 and "SLA_RESOLUTION is malformed" in output
    bad = tmp_path / "policy.yaml"
    bad.write_text("categories: []\n", encoding="utf-8")
    code, output = run_bot([], {**base, "SHOP_POLICY": str(bad)}, tmp_path)
    assert code == 2 and "SHOP_POLICY" in output and "Traceback" not in output


def test_settings_come_from_a_dot_env_file(tmp_path: Path) -> None:
    """A .env in the working folder is read (here with a policy error, to stop early)."""
    (tmp_path / ".env").write_text(
        "BOT_TOKEN=123:abc\nSTAFF_CHAT_ID=-100\nSHOP_POLICY=/nonexistent.yaml\n", encoding="utf-8"
    )
    code, output = run_bot([], {}, tmp_path)
    assert code == 2 and "cannot read /nonexistent.yaml" in output


def test_the_demo_settles_a_complaint_in_chinese_without_a_token(tmp_path: Path) -> None:
    """`python -m bot demo` prints both sides of one complaint from intake to resolution."""
    code, output = run_bot(["demo"], {}, tmp_path)
    assert code == 0, output
    for line in (
        "非常抱歉给您带来不好的体验",
        "投诉单 T-000001",
        "小王(花语花店)",
        "陈店长 点了 [补偿方案:中等]",
        "已经处理好了",
        "✅ 已解决",
        "演示结束",
    ):
        assert line in output


def test_the_demo_speaks_english_when_asked(tmp_path: Path) -> None:
    """`--lang en` runs the same story in English."""
    code, output = run_bot(["demo", "--lang", "en"], {}, tmp_path)
    assert code == 0, output
    for line in (
        "truly sorry",
        "Complaint T-000001",
        "Sam (Flower Whisper)",
        "Remedy: Medium",
        "is resolved",
        "End of the demo",
    ):
        assert line in output


def test_the_demo_files_the_same_complaint_from_wechat(tmp_path: Path) -> None:
    """`--channel wechat`: a WeChat customer (through the WeCom stand-in) taps menus, staff
    answer in the Telegram group, the photo crosses over, and the card says WeChat."""
    code, output = run_bot(["demo", "--channel", "wechat"], {}, tmp_path)
    assert code == 0, output
    for line in (
        "(WeChat): 你好",
        "非常抱歉给您带来不好的体验",
        "[photo upload:photo.jpg]",  # fetched from WeCom, posted to the staff group
        "小王(花语花店)",
        "[今天下午重做并送达]",
        "已经处理好了",
        "(微信)",
        "演示结束",
    ):
        assert line in output


def test_the_demo_runs_an_all_wecom_shop_without_telegram(tmp_path: Path) -> None:
    """`--channel wechat --staff wecom`: the WeChat customer's card reaches both staff and the
    manager in the WeCom app (only the manager's with the tiers), a member takes it and everyone's
    card shows who has it, answers from the app, the manager taps a tier, the customer chooses,
    and the member resolves it; no Telegram at all."""
    code, output = run_bot(
        ["demo", "--channel", "wechat", "--staff", "wecom"], {"BOT_TOKEN": "123:abc"}, tmp_path
    )
    assert code == 0, output
    for line in (
        "(WeChat): 你好",
        "🤖 → 小王, 小李 (企业微信应用):",  # the staff's card, without the tiers
        "▌T-000001 · 中等 · 花材质量",
        "[补偿方案:中等]",  # on the manager's card
        "小王 点了 [🙋 我来跟进] (企业微信应用)",
        "按钮已变灰: 小王 跟进中",  # the member as WeCom names them
        "✅ 已发给 T-000001 的客户",
        "小王(花语花店)",  # the answer from the app, as the customer sees it
        "陈店长 点了 [补偿方案:中等]",
        "[今天下午重做并送达]",
        "小王 点了 [✅ 已办妥,结案]",
        "已经处理好了",
        "演示结束",
    ):
        assert line in output
    assert "api.telegram.org" not in output and "getUpdates" not in output


def test_the_all_wecom_demo_speaks_english_and_needs_a_wechat_customer(tmp_path: Path) -> None:
    """`--staff wecom --lang en` plays the same in English; with `--channel telegram` it says
    that an all-WeCom shop's customer is on WeChat."""
    code, output = run_bot(["demo", "--staff", "wecom", "--lang", "en"], {}, tmp_path)
    assert code == 0, output
    for line in ("Sam taps [🙋 I'll handle it]", "Sam has it", "is resolved", "End of"):
        assert line in output
    code, output = run_bot(["demo", "--staff", "wecom", "--channel", "telegram"], {}, tmp_path)
    assert code == 2 and "customer is on WeChat" in output
