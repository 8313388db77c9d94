"""A shop owner's first start, as the README tells it: a token only, the set-up mode, /whoami,
the staff group, then the desk."""

from __future__ import annotations

from pathlib import Path

from bot.standin import BotApiStandIn
from tests.conftest import BotProcess
from tests.e2e.people import said

GROUP = -1009876543210
SETTINGS_IN_DOTENV = ("BOT_TOKEN", "TELEGRAM_API_URL", "DATABASE_URL")


async def test_readme_steps_one_to_four_from_a_token_to_the_first_card(
    api: BotApiStandIn, sqlite_url: str, tmp_path: Path
) -> None:
    """With only BOT_TOKEN in .env the bot starts in set-up mode: added to a group it says the
    line for .env there and on the console, /whoami answers the ids, a customer is told the
    desk is not open yet; with the group's id filled in, complaints reach the group."""
    owner = api.person(9901, "陈店长", "zh")
    customer = api.person(9902, "小李", "zh")
    api.add_group(GROUP, "花店售后群")
    dotenv = tmp_path / ".env"
    process = BotProcess(api, sqlite_url, tmp_path)
    for name in ("STAFF_CHAT_ID", "MANAGER_IDS", *SETTINGS_IN_DOTENV):
        value = process.env.pop(name)
        if name in SETTINGS_IN_DOTENV:  # step 3: the token (and this test's stand-ins) in .env
            with dotenv.open("a") as env:
                env.write(f"{name}={value}\n")
    try:
        await process.start()  # it starts: nothing stops a newcomer at step 3
        api.add_bot_to_group(owner, GROUP)
        told = await api.wait_text(GROUP, f"STAFF_CHAT_ID={GROUP}", timeout=30)
        assert "管理员" in told.text
        await api.until(lambda: f"STAFF_CHAT_ID={GROUP}" in process.output(), timeout=30)

        mark = len(api.sent)
        owner.say_in_group(GROUP, "/whoami")
        group_ids = await api.wait_text(GROUP, str(GROUP), after=mark)
        assert "STAFF_CHAT_ID" in group_ids.text
        owner.send("/whoami")
        mine = await said(api, owner, str(owner.id), mark)
        assert "MANAGER_IDS" in mine.text
        customer.send("你好,我的花蔫了")
        closed = await said(api, customer, "还在准备中", mark)
        assert "抱歉" in closed.text
    finally:
        await process.stop()

    with dotenv.open("a") as env:  # step 4
        env.write(f"STAFF_CHAT_ID={GROUP}\nMANAGER_IDS={owner.id}\n")
    again = BotProcess(api, sqlite_url, tmp_path)
    for name in ("STAFF_CHAT_ID", "MANAGER_IDS", *SETTINGS_IN_DOTENV):
        again.env.pop(name)
    try:
        await again.start()
        mark = len(api.sent)
        customer.send("订单 FS2026112301 的花全蔫了,一半都不能看,电话 13800138000")
        await said(api, customer, "照片", mark)
        customer.tap("没有照片,跳过")
        await said(api, customer, "请您核对", mark)
        customer.tap("✅ 提交")
        card = await api.wait_text(GROUP, "投诉单 T-000001", timeout=30, after=mark)
        assert "小李" in card.text and "补充方案" not in card.text
        assert "补偿方案:中等" in card.buttons()
    finally:
        await again.stop()
