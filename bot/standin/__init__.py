"""Local stand-ins for the Telegram Bot API and WeCom (tests, the demo and the benchmarks),
and a round-robin proxy to put several instances behind one address."""

from bot.standin.limits import TelegramLimits
from bot.standin.proxy import RoundRobin
from bot.standin.server import BotApiStandIn, Person, Sent
from bot.standin.wecom import WeComStandIn

__all__ = [
    "BotApiStandIn",
    "Person",
    "RoundRobin",
    "Sent",
    "TelegramLimits",
    "WeComStandIn",
]
