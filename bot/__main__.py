"""`python -m bot` runs the desk (long polling); `python -m bot demo` shows it without a token."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

from bot.config import SettingsError, load_settings
from bot.policy import PolicyError, load_policy


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bot", description=__doc__)
    sub = parser.add_subparsers(dest="command")
    demo = sub.add_parser("demo", help="watch a scripted complaint, no token or network needed")
    demo.add_argument("--lang", choices=["zh", "en"], default="zh")
    demo.add_argument(
        "--channel",
        choices=["telegram", "wechat"],
        default=None,
        help="wechat: the customer writes from WeChat (through the WeCom stand-in)",
    )
    demo.add_argument(
        "--staff",
        choices=["telegram", "wecom"],
        default="telegram",
        help="wecom: staff and the manager work in the shop's WeCom app (no Telegram at all; "
        "the customer is on WeChat)",
    )
    args = parser.parse_args(argv)

    if args.command == "demo":
        if args.staff == "wecom":
            if args.channel == "telegram":
                demo.error("--staff wecom plays an all-WeCom shop: its customer is on WeChat")
            from bot.demo import run_all_wecom

            return asyncio.run(run_all_wecom(args.lang))
        from bot.demo import run_demo

        return asyncio.run(run_demo(args.lang, args.channel or "telegram"))

    try:
        settings = load_settings()
        policy = load_policy(settings.shop_policy)
    except (SettingsError, PolicyError) as exc:
        print(exc, file=sys.stderr)
        return 2
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)

    from storage.migrate import begin_migration

    # the child is forked before the desk is imported (a cheap fork), and migrates while this
    # process imports the desk: the two share the start-up time
    migrated = begin_migration(settings.database_url)
    from bot.app import build, serve

    problem = migrated()
    if problem:  # one line, not a traceback, for a bad URL
        print(f"DATABASE_URL: cannot prepare the database: {problem}", file=sys.stderr)
        return 2

    async def run() -> None:
        await serve(build(settings, policy))

    asyncio.run(run())
    return 0


if __name__ == "__main__":
    sys.exit(main())
