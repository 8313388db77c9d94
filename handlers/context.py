"""What every use case is given: the shop's policy, the texts, the clock's rules, and who the
managers are."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta

from bot.domain.clock import SlaPolicy
from bot.domain.orders import Order
from bot.domain.tickets import Actor
from bot.policy import Policy
from bot.render import Render


def no_managers() -> list[Actor]:
    return []


def no_link(reference: str) -> str | None:
    return None


@dataclass(frozen=True)
class Desk:
    """The app-lifetime things a use case needs, built once in `bot.app`."""

    policy: Policy
    render: Render
    sla: SlaPolicy
    staff_language: str = "zh"
    # the managers to mention, with their names, as the staff room's adapter already knows
    # them: answered at once (the adapter asks its messenger outside any unit of work)
    managers: Callable[[], list[Actor]] = no_managers
    album_window: timedelta = timedelta(seconds=1)
    group_per_minute: int = 20
    # the shop's order endpoint (when the policy names one): an order number -> the order;
    # asked only after a commit (`UnitOfWork.after_commit`), never inside a unit of work
    order_lookup: Callable[[str], Awaitable[Order | None]] | None = None
    # a link that opens a ticket's card for staff (the staff room's adapter makes it)
    ticket_link: Callable[[str], str | None] = no_link
    # the words that tell staff how to answer a customer in their room (a template the room
    # names: reply to the card in a group, write to the app in WeCom)
    how_to_answer: str = "staff/how_to_answer_group.html"
    # the manager's dashboard (PUBLIC_URL/dashboard); None: PUBLIC_URL is not set
    dashboard_url: str | None = None
