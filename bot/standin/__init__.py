"""A local stand-in for the Telegram Bot API (tests, the demo and the benchmarks)."""

from bot.standin.limits import TelegramLimits
from bot.standin.server import BotApiStandIn, Person, Sent
from bot.standin.wecom import WeComStandIn

__all__ = ["BotApiStandIn", "Person", "Sent", "TelegramLimits", "WeComStandIn"]
