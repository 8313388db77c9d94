"""What the desk says and hears, whatever the messenger.

Incoming: a customer's message (`Said`), a tap on one of the choices the desk offered (`Tap`), a
staff member's message in the staff room (`StaffSaid`). Outgoing: `Say` (text, choices and
attachments) for a customer or a ticket's thread in the staff room. Adapters translate both
ways; the use cases in `handlers/` see only these.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import IntEnum
from typing import Any

from bot.domain.tickets import Actor, CustomerRef


class Urgency(IntEnum):
    """Who waits least when messages queue: a customer's first answer, then answers and relays
    between people, then cards and reminders, then reports."""

    FIRST_REPLY = 0
    RELAY = 1
    CARD = 2
    REPORT = 3


# kinds of message a customer or staff member can send
TEXT = "text"
PHOTO = "photo"
FILE_KINDS = ("photo", "video", "document", "voice", "audio", "animation", "sticker", "video_note")
KINDS = ("text", *FILE_KINDS, "contact", "location")


@dataclass(frozen=True)
class Attachment:
    """A file as the channel that received it stores it (a Telegram file_id, a WeCom media id)."""

    kind: str  # one of FILE_KINDS
    ref: str
    channel: str = "telegram"  # or "desk": a file the desk made (a chart, an export)
    name: str = ""  # the file's name, where it matters (an export)

    def to_json(self) -> dict[str, str]:
        data = {"kind": self.kind, "ref": self.ref, "channel": self.channel}
        if self.name:
            data["name"] = self.name
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Attachment:
        return cls(
            data["kind"], data["ref"], data.get("channel", "telegram"), data.get("name", "")
        )


@dataclass(frozen=True)
class Choice:
    """Something the person can tap. `key` comes back in a `Tap` and the core checks it.

    `kind`: "tap" (a button under the message), "phone" (share the phone number), "reply" (a
    ready answer that comes back as the label's text), "page" (a button that opens the desk's
    own page at the URL in `key` inside the messenger, which tells the page who opened it:
    Telegram's Mini App, WeCom's signed-in link; only in a person's own chat with the desk),
    "link" (a button that opens the URL in `key`)."""

    label: str
    key: str = ""
    kind: str = "tap"
    # who may use it ("manager"; "": anyone): a room that shows each person their own copy
    # (WeCom's 1:1 chats) leaves it off the others'; a shared group shows it to all
    for_role: str = ""

    def to_json(self) -> list[str]:
        data = [self.label, self.key, self.kind]
        return [*data, self.for_role] if self.for_role else data

    @classmethod
    def from_json(cls, data: list[str]) -> Choice:
        return cls(*data[:4])


@dataclass(frozen=True)
class CardSummary:
    """A ticket's card for rooms whose cards are not free text (a title, a few key-value rows)
    and one line that says how to act by typing, where buttons may not show."""

    title: str
    rows: tuple[tuple[str, str], ...] = ()
    how: str = ""
    state: str = ""  # where the ticket stands, in a line (said plainly where a card cannot change)

    def to_json(self) -> dict[str, Any]:
        return {
            "title": self.title,
            "rows": [list(r) for r in self.rows],
            "how": self.how,
            "state": self.state,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CardSummary:
        rows = tuple((str(k), str(v)) for k, v in data.get("rows", []))
        return cls(
            str(data.get("title", "")),
            rows,
            str(data.get("how", "")),
            str(data.get("state", "")),
        )


@dataclass(frozen=True)
class Say:
    """One message: rendered text (HTML: <b>, <i>, <a>), rows of choices, attachments.
    `clear_choices`: earlier ready answers (a reply keyboard) no longer apply."""

    text: str = ""
    choices: tuple[tuple[Choice, ...], ...] = ()
    attachments: tuple[Attachment, ...] = ()
    clear_choices: bool = False
    summary: CardSummary | None = None  # a ticket's card: its structured form

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "text": self.text,
            "choices": [[c.to_json() for c in row] for row in self.choices],
            "attachments": [a.to_json() for a in self.attachments],
            "clear_choices": self.clear_choices,
        }
        if self.summary is not None:
            data["summary"] = self.summary.to_json()
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Say:
        return cls(
            text=data.get("text", ""),
            choices=tuple(
                tuple(Choice.from_json(choice) for choice in row)
                for row in data.get("choices", [])
            ),
            attachments=tuple(Attachment.from_json(a) for a in data.get("attachments", [])),
            clear_choices=bool(data.get("clear_choices", False)),
            summary=CardSummary.from_json(data["summary"]) if data.get("summary") else None,
        )


@dataclass(frozen=True)
class Said:
    """A customer's message, as the desk keeps it."""

    who: CustomerRef
    name: str
    language: str
    kind: str = TEXT
    text: str | None = None
    attachment: Attachment | None = None
    album: str | None = None  # messages sent together (an album) share this
    phone: str | None = None  # a shared contact's number
    ref: str | None = None  # the channel's id for this message
    username: str | None = None
    followed: bool = False  # more of their messages are already here, waiting to be handled

    @property
    def actor(self) -> Actor:
        return Actor(self.who.id, self.name, "customer")

    @property
    def is_start(self) -> bool:
        """The messenger's "start" (Telegram's /start): a greeting, not the story."""
        return (self.text or "").startswith("/start")


@dataclass(frozen=True)
class Tap:
    """A tap on a choice: its key, and the message it was under (its choices are used up)."""

    who: CustomerRef
    key: str
    message_ref: str | None = None
    language: str = "en"


@dataclass(frozen=True)
class StaffSaid:
    """A staff member's message in a ticket's thread of the staff room."""

    actor: Actor
    ticket_id: int
    kind: str = TEXT
    text: str | None = None
    attachment: Attachment | None = None
    ref: str | None = None  # its id in the staff room


@dataclass(frozen=True)
class Answer:
    """What the person who tapped sees at once (a short toast or alert); None: nothing."""

    text: str | None = None
    alert: bool = False


@dataclass(frozen=True)
class Outgoing:
    """A queued message as the sender hands it to an adapter (a row of the outbox)."""

    id: int
    channel: str
    recipient: str
    lane: str
    ticket_id: int | None
    kind: str
    urgency: Urgency
    payload: dict[str, Any]
    created_at: datetime
    not_before: datetime | None
    collapse: str | None

    @property
    def say(self) -> Say:
        return Say.from_json(self.payload.get("say", {}))
