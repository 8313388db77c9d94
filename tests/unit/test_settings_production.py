"""The settings of a production desk (issue 15), read from the environment as a shop writes
them: the HTTP server, webhook mode, Redis; a bad one stops the start with one line."""

from __future__ import annotations

import pytest

from bot.config import SettingsError, load_settings

TOKEN = "123456:ABC-def"


NAMES = ("HTTP_HOST", "HTTP_PORT", "WECOM_CALLBACK_PORT", "WEBHOOK_URL", "WEBHOOK_SECRET")


def from_env(monkeypatch: pytest.MonkeyPatch, **env: str):  # type: ignore[no-untyped-def]
    """The settings from exactly this environment (the names above cleared first)."""
    for name in (*NAMES, "REDIS_URL", "INSTANCE_NAME"):
        monkeypatch.delenv(name, raising=False)
    for name, value in {"BOT_TOKEN": TOKEN, **env}.items():
        monkeypatch.setenv(name, value)
    return load_settings(_env_file=None)


def test_the_old_name_of_the_port_is_still_read(monkeypatch: pytest.MonkeyPatch) -> None:
    assert from_env(monkeypatch).http_port == 8080
    assert from_env(monkeypatch, WECOM_CALLBACK_PORT="9090").http_port == 9090
    assert from_env(monkeypatch, HTTP_PORT="7070").http_port == 7070
    assert from_env(monkeypatch).http_host == "127.0.0.1"


def test_webhook_mode_needs_https_and_a_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = from_env(
        monkeypatch, WEBHOOK_URL="https://desk.example.com/telegram", WEBHOOK_SECRET="s3cret_-x"
    )
    assert settings.webhook_path == "/telegram"
    with pytest.raises(SettingsError, match="WEBHOOK_SECRET"):
        from_env(monkeypatch, WEBHOOK_URL="https://desk.example.com/telegram")
    with pytest.raises(SettingsError, match="WEBHOOK_URL is malformed: the public https://"):
        from_env(monkeypatch, WEBHOOK_URL="http://desk.example.com/telegram", WEBHOOK_SECRET="x")
    with pytest.raises(SettingsError, match="WEBHOOK_SECRET is malformed"):
        from_env(monkeypatch, WEBHOOK_URL="https://desk.example.com/t", WEBHOOK_SECRET="a b")
    local = from_env(monkeypatch, WEBHOOK_URL="http://127.0.0.1:8443/t", WEBHOOK_SECRET="x")
    assert local.webhook_url == "http://127.0.0.1:8443/t"  # plain http only on loopback


def test_redis_and_the_instance(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = from_env(monkeypatch, REDIS_URL="redis://cache:6379/0", INSTANCE_NAME="desk-1")
    assert settings.instance == "desk-1" and settings.redis_url is not None
    assert "-" in from_env(monkeypatch).instance  # the host's name and the process id
    with pytest.raises(SettingsError, match="REDIS_URL is malformed"):
        from_env(monkeypatch, REDIS_URL="cache:6379")
