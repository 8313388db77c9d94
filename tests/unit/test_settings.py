"""The settings of a WeCom staff room (STAFF_ROOM=wecom): read as the README names them, and a
missing or malformed one stops the start with one line that names it."""

from __future__ import annotations

from typing import Any

import pytest

from bot.config import SettingsError, load_settings

AES = "4qOQr1YJMPJ3BD5Rv92u7pvF5fO1rz27T8x9neCt2Ck"
APP = {
    "staff_room": "wecom",
    "wecom_corp_id": "ww0123456789",
    "wecom_agent_id": "1000002",
    "wecom_app_secret": "app-secret",
    "wecom_app_token": "app-token",
    "wecom_app_aes_key": AES,
    "wecom_manager_ids": "chenmanager",
}
KF = {
    "wecom_secret": "kf-secret",
    "wecom_token": "kf-token",
    "wecom_aes_key": AES,
    "wecom_open_kfid": "wk0001",
}


def settings(**values: Any) -> Any:
    return load_settings(**values, _env_file=None)


def test_an_all_wecom_shop_needs_no_telegram() -> None:
    """WeChat customers and WeCom staff: no BOT_TOKEN, the ids read as lists, the app's path
    its default."""
    read = settings(**APP, **KF, wecom_staff_ids="zhangsan, lisi")
    assert read.staff_room == "wecom" and not read.telegram and read.wecom
    assert read.wecom_staff_ids == ("zhangsan", "lisi")
    assert read.wecom_manager_ids == ("chenmanager",)
    assert read.wecom_app_callback_path == "/wecom/app" and read.wecom_agent_id == 1000002


def test_telegram_customers_with_a_wecom_staff_room() -> None:
    """Telegram customers may be served by WeCom staff: the bot token, and the app."""
    read = settings(**APP, bot_token="1:abc")
    assert read.telegram and not read.wecom


@pytest.mark.parametrize(
    ("values", "named"),
    [
        ({**APP, "wecom_app_secret": None, **KF}, "WECOM_APP_SECRET"),
        ({**APP, "wecom_manager_ids": "", **KF}, "WECOM_MANAGER_IDS"),
        ({**APP, "wecom_staff_ids": "张三 有空格;", **KF}, "WECOM_STAFF_IDS is malformed"),
        ({**APP, "wecom_app_aes_key": "short", **KF}, "WECOM_APP_AES_KEY is malformed"),
        ({**APP, "wecom_agent_id": "app", **KF}, "WECOM_AGENT_ID is malformed"),
        (APP, "no customer can reach the desk"),
        ({"staff_room": "teams", "bot_token": "1:abc"}, "STAFF_ROOM is malformed"),
        ({"staff_chat_id": "-100"}, "BOT_TOKEN is not set"),
    ],
)
def test_a_wecom_staff_room_missing_a_setting_names_it(values: dict[str, Any], named: str) -> None:
    """Each missing or malformed setting stops the start with a line that names it."""
    given = {k: v for k, v in values.items() if v is not None}
    with pytest.raises(SettingsError, match=named):
        settings(**given)
