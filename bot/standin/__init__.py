"""A local stand-in for the Telegram Bot API (tests and the demo)."""

from bot.standin.server import BotApiStandIn, Person, Sent

__all__ = ["BotApiStandIn", "Person", "Sent"]
