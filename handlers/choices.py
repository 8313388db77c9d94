"""The choices the desk offers, as labels and keys. A key comes back in a tap, whatever the
messenger, and the use cases check it: short prefixes, ids only (Telegram allows 64 bytes)."""

from __future__ import annotations

from dataclasses import dataclass

from bot.domain.insight import Responsible, RootCause
from bot.domain.intake import Step
from bot.domain.messages import Choice
from bot.domain.phrases import Phrase
from bot.domain.remedies import Ladder, Tier
from bot.domain.tickets import Status, Ticket, reference
from bot.labels import label
from bot.policy import Policy

Rows = tuple[tuple[Choice, ...], ...]
MANAGER = "manager"  # a choice only managers may use (the core checks it again on the tap)


@dataclass(frozen=True)
class Key:
    """A tapped key, split: `prefix:action:...`. Unknown or malformed: prefix is ""."""

    prefix: str
    parts: tuple[str, ...]

    @classmethod
    def parse(cls, key: str) -> Key:
        pieces = key.split(":")
        if len(pieces) < 2 or len(key) > 64:
            return cls("", ())
        return cls(pieces[0], tuple(pieces[1:]))

    def part(self, index: int) -> str:
        return self.parts[index] if index < len(self.parts) else ""

    def number(self, index: int) -> int | None:
        value = self.part(index)
        return int(value) if value.isdigit() else None


def intake(action: str, value: str = "") -> str:
    return f"i:{action}:{value}"


def card_key(action: str, ticket_id: int, tier: str = "") -> str:
    return f"t:{action}:{ticket_id}:{tier}"


def option_key(ticket_id: int, tier: str, option: int) -> str:
    return f"o:{ticket_id}:{tier}:{option}"


def rate_key(ticket_id: int, score: int) -> str:
    return f"r:{ticket_id}:{score}"


def _pairs(choices: list[Choice]) -> Rows:
    return tuple(tuple(choices[i : i + 2]) for i in range(0, len(choices), 2))


def categories(policy: Policy, language: str) -> Rows:
    return _pairs(
        [Choice(c.label.in_(language), intake("cat", c.key)) for c in policy.intake.categories]
    )


def order_number(language: str) -> Rows:
    return ((Choice(label(language, "no_order"), intake("noorder")),),)


def photos(language: str, have_photos: bool) -> Rows:
    if have_photos:
        return ((Choice(label(language, "photos_done"), intake("photosdone")),),)
    return ((Choice(label(language, "no_photos"), intake("nophotos")),),)


def contact(language: str) -> Rows:
    return (
        (Choice(label(language, "share_contact"), kind="phone"),),
        (Choice(label(language, "skip_contact"), kind="reply"),),
    )


def confirm(language: str) -> Rows:
    return (
        (Choice(label(language, "submit"), intake("submit")),),
        (
            Choice(label(language, "change"), intake("change")),
            Choice(label(language, "cancel"), intake("cancel")),
        ),
    )


def change(language: str) -> Rows:
    fields = [
        Choice(label(language, f"field_{step.value}"), intake("edit", step.value))
        for step in (Step.CATEGORY, Step.ORDER, Step.STORY, Step.PHOTOS, Step.CONTACT)
    ]
    return (
        tuple(fields[0:2]),
        tuple(fields[2:4]),
        (fields[4], Choice(label(language, "back"), intake("back"))),
    )


def card(ticket: Ticket, ladder: Ladder, language: str) -> Rows:
    """The buttons on a ticket's card: take it, and the manager's remedy choices."""
    assert ticket.id is not None
    tid = ticket.id
    cause = (  # and the shop's ready phrases (`/p`)
        Choice(label(language, "cause"), card_key("cause", tid)),
        Choice(label(language, "phrases"), card_key("phrases", tid)),
    )
    if ticket.status in (Status.RESOLVED, Status.CLOSED):
        reopen = Choice(label(language, "reopen"), card_key("reopen", tid), for_role=MANAGER)
        return ((reopen,), cause)
    if ticket.status not in (Status.OPEN, Status.REMEDY_OFFERED, Status.REMEDY_CHOSEN):
        return ()
    rows: list[tuple[Choice, ...]] = [(Choice(label(language, "take"), card_key("take", tid)),)]
    if ticket.status is Status.REMEDY_CHOSEN:
        rows.append((Choice(label(language, "done"), card_key("done", tid)),))
    else:
        tiers = [
            Choice(
                label(language, "tier", label=tier.label.in_(language)),
                card_key("tier", tid, tier.key),
                for_role=MANAGER,
            )
            for tier in ladder.tiers
        ]
        rows.extend(_pairs(tiers))
    close = Choice(label(language, "resolve_plain"), card_key("close", tid), for_role=MANAGER)
    rows.append((close,))
    rows.append(cause)
    return tuple(rows)


def causes(ticket_id: int, language: str) -> Rows:
    """Why it happened, and where: one tap each (the card shows what was chosen)."""
    why = [
        Choice(label(language, f"cause_{c.value}"), card_key("rc", ticket_id, c.value))
        for c in RootCause
    ]
    where = [
        Choice(label(language, f"where_{r.value}"), card_key("rs", ticket_id, r.value))
        for r in Responsible
    ]
    return (tuple(why), tuple(where))


def phrases(ticket_id: int, known: tuple[Phrase, ...]) -> Rows:
    """The shop's phrases, by name, three a row: a tap sends one (by its place in the policy)."""
    buttons = [Choice(p.name, card_key("ph", ticket_id, str(i))) for i, p in enumerate(known)]
    return tuple(tuple(buttons[i : i + 3]) for i in range(0, len(buttons), 3))


def history(ticket_id: int, others: list[int]) -> Rows:
    """The customer's other tickets, by reference, three a row: a tap shows that one's card."""
    buttons = [Choice(reference(i), card_key("hist", ticket_id, str(i))) for i in others[:12]]
    return tuple(tuple(buttons[i : i + 3]) for i in range(0, len(buttons), 3))


def done(ticket_id: int, language: str) -> Rows:
    return ((Choice(label(language, "done"), card_key("done", ticket_id)),),)


def options(ticket_id: int, tier: Tier, language: str) -> Rows:
    return tuple(
        (Choice(o.label.in_(language), option_key(ticket_id, tier.key, i)),)
        for i, o in enumerate(tier.options)
    )


def rating(ticket_id: int, language: str) -> Rows:
    """The satisfaction question's one-tap answers, 1 to 5."""
    buttons = [
        Choice(label(language, f"rate_{score}"), rate_key(ticket_id, score))
        for score in range(1, 6)
    ]
    return (tuple(buttons[:3]), tuple(buttons[3:]))


def no_comment(ticket_id: int, language: str) -> Rows:
    return ((Choice(label(language, "no_comment"), rate_key(ticket_id, 0)),),)
