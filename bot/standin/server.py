"""A local stand-in for the Telegram Bot API, for the tests and `python -m bot demo`.

It speaks the Bot API over HTTP (`/bot<token>/<method>`), keeps updates for getUpdates with
Telegram's offset rules, checks HTML as Telegram does ("can't parse entities", 4096/1024
limits), records everything the bot sends, and lets scripted people act: write, send photos
and albums, share a contact, tap buttons by their labels, reply in the staff group, block the
bot. As Telegram, it will not let the bot write first to someone who never started a chat with
it (`person(..., started=False)`), and it takes a Mini App button (`web_app`) only in a private
chat, with an https address. Faults can be injected (429 with retry_after, 5xx) to see that the
bot recovers, and Telegram's flood limits switched on (`limits = TelegramLimits()`), answering
429 past them.

With `setWebhook` it delivers the updates as Telegram does to a webhook instead: POSTed one chat
at a time, in order, retried with back-off until a 2xx comes back (getUpdates answers 409 then).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from aiohttp import web

from bot.standin import webhook as hooks
from bot.standin.limits import TelegramLimits
from bot.standin.waiting import until
from bot.standin.webhook import Webhook, WebhookRefused

BOT_USER = {"id": 777000111, "is_bot": True, "first_name": "Desk", "username": "desk_bot"}
TEXT_LIMIT = 4096
CAPTION_LIMIT = 1024
ALLOWED_TAGS = {
    "b",
    "strong",
    "i",
    "em",
    "u",
    "ins",
    "s",
    "strike",
    "del",
    "a",
    "code",
    "pre",
    "tg-spoiler",
    "span",
    "blockquote",
    "tg-emoji",
}
# fields whose form value is always a plain string, never JSON
STRING_FIELDS = {
    "text",
    "caption",
    "parse_mode",
    "callback_query_id",
    "name",
    "title",
    "description",
    "emoji",
    "url",
    "photo",
    "voice",
    "video",
    "document",
    "audio",
    "animation",
    "sticker",
    "video_note",
    "inline_message_id",
    "icon_custom_emoji_id",
    "phone_number",
    "first_name",
    "secret_token",
    "ip_address",
}


# what Telegram says of an administrator's rights (every field the Bot API requires)
ADMIN_RIGHTS = {
    "can_be_edited": False,
    "is_anonymous": False,
    "can_manage_chat": True,
    "can_delete_messages": True,
    "can_manage_video_chats": False,
    "can_restrict_members": False,
    "can_promote_members": False,
    "can_change_info": False,
    "can_invite_users": True,
    "can_post_stories": False,
    "can_edit_stories": False,
    "can_delete_stories": False,
    "can_manage_topics": True,
}


class EntityError(ValueError):
    pass


class _Html(HTMLParser):
    """Parses Telegram's HTML subset: plain text out, links and mentions kept."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.stack: list[str] = []
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in ALLOWED_TAGS:
            raise EntityError(f'can\'t parse entities: unsupported start tag "{tag}"')
        if tag == "a":
            self.links.append(dict(attrs).get("href") or "")
        self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack[-1] != tag:
            raise EntityError(f"can't parse entities: can't find end tag corresponding to {tag}")
        self.stack.pop()

    def handle_data(self, data: str) -> None:
        self.parts.append(data)


_TAG = re.compile(r"</?[a-zA-Z][a-zA-Z-]*(\s[^<>]*)?>")
_ENTITY = re.compile(r"&(lt|gt|amp|quot|#\d+|#x[0-9a-fA-F]+);")


def parse_html(text: str) -> tuple[str, list[str]]:
    """The text a person sees and the links in it; raises EntityError like Telegram."""
    if "<" not in text and "&" not in text:
        return text, []
    for index, char in enumerate(text):
        if char == "<" and not _TAG.match(text, index):
            raise EntityError(f'can\'t parse entities: unexpected "<" at byte offset {index}')
        if char == "&" and not _ENTITY.match(text, index):
            raise EntityError(f"can't parse entities: unsupported entity at byte offset {index}")
    parser = _Html()
    parser.feed(text)
    parser.close()
    if parser.stack:
        raise EntityError(f"can't parse entities: unclosed tag {parser.stack[-1]}")
    return "".join(parser.parts), parser.links


class ApiError(Exception):
    def __init__(self, status: int, description: str, retry_after: int | None = None) -> None:
        super().__init__(description)
        self.status = status
        self.description = description
        self.retry_after = retry_after


@dataclass
class SlowAnswer:
    """The next `count` calls of `method` take effect at once (people see the message) but
    the bot hears back only `seconds` later, like a slow network on the way back."""

    method: str
    seconds: float
    count: int = 1
    chat_id: int | None = None


@dataclass
class Fault:
    """An injected failure: the next `count` calls of `method` answer with it."""

    method: str
    status: int
    description: str
    retry_after: int | None = None
    count: int = 1
    chat_id: int | None = None  # only calls to this chat
    answered: int = 0  # how many calls it has answered so far

    def lift(self) -> None:
        """The outage is over: the next calls go through."""
        self.count = 0


@dataclass
class Sent:
    """A message the bot sent (as the person in that chat sees it)."""

    chat_id: int
    message_id: int
    kind: str
    text: str  # plain text or caption, entities parsed
    html: str
    links: list[str]
    reply_markup: dict[str, Any] | None
    thread_id: int | None
    reply_to: int | None
    file_id: str | None
    method: str
    at: float
    edits: int = 0

    def buttons(self) -> list[str]:
        if not self.reply_markup:
            return []
        rows = self.reply_markup.get("inline_keyboard") or self.reply_markup.get("keyboard") or []
        return [button["text"] for row in rows for button in row]


@dataclass
class Person:
    """Someone who talks to the bot: a customer in private, or staff in the group."""

    api: BotApiStandIn
    id: int
    first_name: str
    language_code: str = "zh"
    last_name: str | None = None
    username: str | None = None

    @property
    def user(self) -> dict[str, Any]:
        user: dict[str, Any] = {
            "id": self.id,
            "is_bot": False,
            "first_name": self.first_name,
            "language_code": self.language_code,
        }
        if self.last_name:
            user["last_name"] = self.last_name
        if self.username:
            user["username"] = self.username
        return user

    @property
    def chat(self) -> dict[str, Any]:
        chat: dict[str, Any] = {"id": self.id, "type": "private", "first_name": self.first_name}
        if self.username:
            chat["username"] = self.username
        return chat

    # -- in the private chat ---------------------------------------------------------------

    def send(self, text: str, **extra: Any) -> dict[str, Any]:
        return self.api.user_message(self, self.chat, text=text, **extra)

    def edit(self, message: dict[str, Any], text: str) -> dict[str, Any]:
        """Change a message this person sent (Telegram sends an `edited_message` update)."""
        edited = {**message, "text": text, "edit_date": int(time.time())}
        self.api.messages[(message["chat"]["id"], message["message_id"])] = edited
        self.api._push({"edited_message": edited})
        return edited

    def send_photo(
        self, file_id: str, caption: str | None = None, media_group_id: str | None = None
    ) -> dict[str, Any]:
        photo = [
            {
                "file_id": f"{file_id}-s",
                "file_unique_id": f"{file_id}-su",
                "width": 90,
                "height": 90,
            },
            {"file_id": file_id, "file_unique_id": f"{file_id}-u", "width": 1280, "height": 960},
        ]
        extra: dict[str, Any] = {"photo": photo}
        if caption:
            extra["caption"] = caption
        if media_group_id:
            extra["media_group_id"] = media_group_id
        return self.api.user_message(self, self.chat, **extra)

    def send_album(self, file_ids: list[str], caption: str | None = None) -> list[dict[str, Any]]:
        group = f"album-{next(self.api.ids)}"
        return [
            self.send_photo(f, caption if i == 0 else None, media_group_id=group)
            for i, f in enumerate(file_ids)
        ]

    def send_sticker(self, file_id: str = "sticker-1") -> dict[str, Any]:
        sticker = {
            "file_id": file_id,
            "file_unique_id": f"{file_id}-u",
            "type": "regular",
            "width": 512,
            "height": 512,
            "is_animated": False,
            "is_video": False,
            "emoji": "😡",
        }
        return self.api.user_message(self, self.chat, sticker=sticker)

    def send_voice(self, file_id: str = "voice-1", duration: int = 7) -> dict[str, Any]:
        voice = {"file_id": file_id, "file_unique_id": f"{file_id}-u", "duration": duration}
        return self.api.user_message(self, self.chat, voice=voice)

    def send_document(self, file_id: str = "doc-1", name: str = "receipt.pdf") -> dict[str, Any]:
        document = {"file_id": file_id, "file_unique_id": f"{file_id}-u", "file_name": name}
        return self.api.user_message(self, self.chat, document=document)

    def send_video(self, file_id: str = "video-1") -> dict[str, Any]:
        video = {
            "file_id": file_id,
            "file_unique_id": f"{file_id}-u",
            "width": 640,
            "height": 480,
            "duration": 5,
        }
        return self.api.user_message(self, self.chat, video=video)

    def share_contact(self, phone: str) -> dict[str, Any]:
        contact = {"phone_number": phone, "first_name": self.first_name, "user_id": self.id}
        return self.api.user_message(self, self.chat, contact=contact)

    def tap(self, label: str, chat_id: int | None = None, data: str | None = None) -> str:
        """Tap the inline button with this label on the newest bot message in the chat that
        has it; return the callback query id. `data` forges the button's data."""
        return self.api.tap(self, label, chat_id if chat_id is not None else self.id, data)

    def block_bot(self) -> None:
        self.api.block(self)

    # -- in a group ------------------------------------------------------------------------

    def say_in_group(
        self,
        chat_id: int,
        text: str | None = None,
        reply_to: int | None = None,
        thread_id: int | None = None,
        **extra: Any,
    ) -> dict[str, Any]:
        chat = self.api.group_chat(chat_id)
        if text is not None:
            extra["text"] = text
        return self.api.user_message(self, chat, reply_to=reply_to, thread_id=thread_id, **extra)

    def photo_in_group(
        self,
        chat_id: int,
        file_id: str,
        caption: str | None = None,
        reply_to: int | None = None,
        thread_id: int | None = None,
    ) -> dict[str, Any]:
        photo = [
            {"file_id": file_id, "file_unique_id": f"{file_id}-u", "width": 800, "height": 600}
        ]
        extra: dict[str, Any] = {"photo": photo}
        if caption:
            extra["caption"] = caption
        return self.say_in_group(chat_id, reply_to=reply_to, thread_id=thread_id, **extra)


@dataclass
class Group:
    id: int
    title: str
    forum: bool = False
    admins: set[int] = field(default_factory=set)
    members: set[int] = field(default_factory=set)  # and everyone who wrote in it
    # restricted people: True while still in the group, False once they left
    restricted: dict[int, bool] = field(default_factory=dict)
    topics: dict[int, str] = field(default_factory=dict)
    deleted_topics: set[int] = field(default_factory=set)


_RESTRICTED_RIGHTS = (
    "can_send_messages can_send_audios can_send_documents can_send_photos can_send_videos "
    "can_send_video_notes can_send_voice_notes can_send_polls can_send_other_messages "
    "can_add_web_page_previews can_change_info can_invite_users can_pin_messages "
    "can_manage_topics can_edit_tag can_react_to_messages"
).split()


class BotApiStandIn:
    """The stand-in server and the world it keeps: chats, messages, updates."""

    def __init__(self, token: str = "123456:TEST-token", first_update_id: int = 1) -> None:
        self.token = token
        self.ids = itertools.count(1)
        # Telegram's update ids only grow: a bot's database never sees one twice
        self._update_ids = itertools.count(first_update_id)
        self._message_ids: dict[int, itertools.count[int]] = {}
        self.updates: list[dict[str, Any]] = []
        self.confirmed = 0  # the highest update id a getUpdates call has confirmed (offset - 1)
        self.sent: list[Sent] = []
        self.messages: dict[tuple[int, int], dict[str, Any]] = {}
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.callback_answers: dict[str, dict[str, Any]] = {}
        self.groups: dict[int, Group] = {}
        self.people: dict[int, Person] = {}
        self.blocked: set[int] = set()
        self.not_started: set[int] = set()  # people who never opened a private chat with the bot
        self.faults: list[Fault] = []
        self.slow_answers: list[SlowAnswer] = []
        self.limits: TelegramLimits | None = None  # Telegram's flood limits, when switched on
        self.latency = 0.0  # seconds each send takes (to keep handlers in flight)
        self.listeners: list[Callable[[str, Any], None]] = []
        self._changed = asyncio.Condition()
        self._runner: web.AppRunner | None = None
        self._closing = False
        self.base_url = ""
        self.files: dict[str, bytes] = {}  # what a file_id holds (getFile)
        self.uploads: list[tuple[str, bytes]] = []  # files the bot uploaded (name, bytes)
        self.last_update_id = first_update_id - 1
        # the webhook, while one is set (setWebhook): updates are POSTed to it, not polled
        self.webhook: Webhook | None = None
        self.deliveries: list[tuple[int, int | None]] = []  # (update_id, status; None: no answer)
        self.webhook_backoff = 0.2  # seconds before a failed delivery is tried again, doubling
        self.webhook_backoff_max = 2.0
        self.webhook_timeout = 10.0  # seconds a delivery waits for its answer
        self._delivered: dict[int, dict[str, Any]] = {}  # what was delivered, for deliver_again
        self._lanes: dict[object, asyncio.Task[None]] = {}  # one per chat with updates to send
        self._connections = asyncio.Semaphore(40)
        self._client: aiohttp.ClientSession | None = None

    # -- the server ------------------------------------------------------------------------

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/bot{token}/{method}", self._endpoint)
        app.router.add_get("/file/bot{token}/{path:.+}", self._file)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        server = site._server
        assert server is not None and server.sockets
        real_port = server.sockets[0].getsockname()[1]
        self.base_url = f"http://{host}:{real_port}"
        return self.base_url

    async def stop(self) -> None:
        self._closing = True
        await self._stop_lanes()
        if self._client is not None:
            await self._client.close()
        async with self._changed:
            self._changed.notify_all()
        if self._runner is not None:
            await self._runner.cleanup()

    async def _endpoint(self, request: web.Request) -> web.Response:
        if request.match_info["token"] != self.token:
            return web.json_response(
                {"ok": False, "error_code": 401, "description": "Unauthorized"}, status=401
            )
        method = request.match_info["method"]
        params = await self._params(request)
        self.calls.append((method, params))
        await self._wake()  # a test may wait for a call (the bot's first getUpdates)
        try:
            self._maybe_fault(method, params.get("chat_id"))
            self._maybe_too_many(method, params)
            handler = getattr(self, f"api_{method}", None)
            result = await handler(params) if handler else True
            await self._maybe_slow(method, params.get("chat_id"))
        except ApiError as exc:
            body: dict[str, Any] = {
                "ok": False,
                "error_code": exc.status,
                "description": exc.description,
            }
            if exc.retry_after is not None:
                body["parameters"] = {"retry_after": exc.retry_after}
            return web.json_response(body, status=exc.status)
        return web.json_response({"ok": True, "result": result})

    async def _file(self, request: web.Request) -> web.Response:
        """A file's bytes (getFile's file_path), as Telegram serves them to bots."""
        if request.match_info["token"] != self.token:
            return web.Response(status=401)
        file_id = request.match_info["path"].removeprefix("files/")
        return web.Response(body=self.files.get(file_id, f"stand-in file {file_id}".encode()))

    async def api_getFile(self, params: dict[str, Any]) -> dict[str, Any]:
        file_id = str(params["file_id"])
        body = self.files.get(file_id, f"stand-in file {file_id}".encode())
        return {
            "file_id": file_id,
            "file_unique_id": f"u-{file_id}",
            "file_size": len(body),
            "file_path": f"files/{file_id}",
        }

    async def _params(self, request: web.Request) -> dict[str, Any]:
        if request.content_type == "application/json":
            return dict(await request.json())
        form = await request.post()
        params: dict[str, Any] = {}
        for key, value in form.items():
            if not isinstance(value, str):
                name = getattr(value, "filename", key)
                params[key] = f"upload:{name}"
                data = value.file.read() if hasattr(value, "file") else b""
                self.uploads.append((name, data))
                continue
            if key in STRING_FIELDS:
                params[key] = value
                continue
            try:
                params[key] = json.loads(value)
            except ValueError:
                params[key] = value
        params.update({k: v for k, v in request.query.items() if k not in params})
        return params

    def _maybe_fault(self, method: str, chat_id: object) -> None:
        for fault in self.faults:
            if fault.chat_id is not None and str(fault.chat_id) != str(chat_id):
                continue
            if fault.method == method and fault.count > 0:
                fault.count -= 1
                fault.answered += 1
                raise ApiError(fault.status, fault.description, fault.retry_after)

    def _maybe_too_many(self, method: str, params: dict[str, Any]) -> None:
        if self.limits is None or not self.limits.counts(method):
            return
        try:
            chat_id = int(params["chat_id"])
        except (KeyError, TypeError, ValueError):
            return
        media = params.get("media")
        count = len(media) if method == "sendMediaGroup" and isinstance(media, list) else 1
        wait = self.limits.admit(chat_id, count)
        if wait:
            retry_after = self.limits.retry_after(wait)
            raise ApiError(429, f"Too Many Requests: retry after {retry_after}", retry_after)

    async def _maybe_slow(self, method: str, chat_id: object) -> None:
        for slow in self.slow_answers:
            if slow.chat_id is not None and str(slow.chat_id) != str(chat_id):
                continue
            if slow.method == method and slow.count > 0:
                slow.count -= 1
                await asyncio.sleep(slow.seconds)
                return

    def slow_answer(
        self, method: str, seconds: float, count: int = 1, chat_id: int | None = None
    ) -> SlowAnswer:
        """Let the next `count` answers to `method` (to `chat_id`) reach the bot late."""
        slow = SlowAnswer(method, seconds, count, chat_id)
        self.slow_answers.append(slow)
        return slow

    def inject(
        self,
        method: str,
        status: int,
        description: str = "",
        retry_after: int | None = None,
        count: int = 1,
        chat_id: int | None = None,
    ) -> Fault:
        description = description or {
            429: f"Too Many Requests: retry after {retry_after}",
            500: "Internal Server Error",
            502: "Bad Gateway",
        }.get(status, "Bad Request")
        fault = Fault(method, status, description, retry_after, count, chat_id)
        self.faults.append(fault)
        return fault

    # -- people and chats ------------------------------------------------------------------

    def person(
        self,
        user_id: int,
        first_name: str,
        language_code: str = "zh",
        started: bool = True,
        **extra: Any,
    ) -> Person:
        """Someone Telegram knows. `started`: they have a private chat with the bot already
        (False: the bot cannot write to them until they write to it, `/start` or anything)."""
        person = Person(self, user_id, first_name, language_code, **extra)
        self.people[user_id] = person
        if not started:
            self.not_started.add(user_id)
        return person

    def add_group(
        self,
        chat_id: int,
        title: str = "Staff",
        forum: bool = False,
        admins: set[int] | None = None,
    ) -> Group:
        group = Group(chat_id, title, forum, admins or set())
        self.groups[chat_id] = group
        return group

    def group_chat(self, chat_id: int) -> dict[str, Any]:
        group = self.groups.get(chat_id)
        chat: dict[str, Any] = {
            "id": chat_id,
            "type": "supergroup",
            "title": group.title if group else "Unknown group",
        }
        if group and group.forum:
            chat["is_forum"] = True
        return chat

    def block(self, person: Person) -> None:
        self.blocked.add(person.id)
        self._push(
            {
                "my_chat_member": {
                    "chat": person.chat,
                    "from": person.user,
                    "date": int(time.time()),
                    "old_chat_member": {"status": "member", "user": BOT_USER},
                    "new_chat_member": {"status": "kicked", "user": BOT_USER, "until_date": 0},
                }
            }
        )

    def add_bot_to_group(
        self, person: Person, chat_id: int, status: str = "administrator"
    ) -> None:
        """`person` adds the bot to the group (as an administrator, as the README asks)."""
        self._push(
            {
                "my_chat_member": {
                    "chat": self.group_chat(chat_id),
                    "from": person.user,
                    "date": int(time.time()),
                    "old_chat_member": {"status": "left", "user": BOT_USER},
                    "new_chat_member": {"status": status, "user": BOT_USER, **ADMIN_RIGHTS}
                    if status == "administrator"
                    else {"status": status, "user": BOT_USER},
                }
            }
        )

    def delete_topic(self, chat_id: int, thread_id: int) -> None:
        self.groups[chat_id].deleted_topics.add(thread_id)

    def _next_message_id(self, chat_id: int) -> int:
        counter = self._message_ids.setdefault(chat_id, itertools.count(1))
        return next(counter)

    def user_message(
        self,
        person: Person,
        chat: dict[str, Any],
        reply_to: int | None = None,
        thread_id: int | None = None,
        **content: Any,
    ) -> dict[str, Any]:
        message: dict[str, Any] = {
            "message_id": self._next_message_id(chat["id"]),
            "date": int(time.time()),
            "chat": chat,
            "from": person.user,
            **content,
        }
        if "text" in content and content["text"].startswith("/"):
            command = content["text"].split()[0]
            message["entities"] = [{"type": "bot_command", "offset": 0, "length": len(command)}]
        if thread_id is not None:
            message["message_thread_id"] = thread_id
            message["is_topic_message"] = True
        if reply_to is not None:
            replied = self.messages.get((chat["id"], reply_to))
            if replied is not None:
                message["reply_to_message"] = replied
        elif thread_id is not None:
            # in a topic, Telegram sets the topic's first message as the reply
            pass
        self.messages[(chat["id"], message["message_id"])] = message
        if chat["id"] in self.groups:
            self.groups[chat["id"]].members.add(person.id)
        elif chat.get("type") == "private":  # the chat with the bot exists from now on
            self.not_started.discard(person.id)
        self._notify("user", message)
        self._push({"message": message})
        return message

    def tap(self, person: Person, label: str, chat_id: int, data: str | None) -> str:
        for sent in reversed(self.sent):
            if sent.chat_id != chat_id or not sent.reply_markup:
                continue
            for row in sent.reply_markup.get("inline_keyboard", []):
                for button in row:
                    if button["text"] == label:
                        return self._callback(person, sent, data or button["callback_data"])
        raise LookupError(f"no button {label!r} in chat {chat_id}")

    def tap_data(self, person: Person, chat_id: int, message_id: int, data: str) -> str:
        """A callback with any data on any message (forged or stale buttons)."""
        sent = next(s for s in self.sent if s.chat_id == chat_id and s.message_id == message_id)
        return self._callback(person, sent, data)

    def _callback(self, person: Person, sent: Sent, data: str) -> str:
        query_id = str(next(self.ids))
        message = self.messages[(sent.chat_id, sent.message_id)]
        self._notify("tap", {"person": person, "data": data, "message": sent})
        self._push(
            {
                "callback_query": {
                    "id": query_id,
                    "from": person.user,
                    "chat_instance": str(sent.chat_id),
                    "message": message,
                    "data": data,
                }
            }
        )
        return query_id

    def _push(self, update: dict[str, Any]) -> None:
        update["update_id"] = self.last_update_id = next(self._update_ids)
        self.updates.append(update)
        asyncio.get_running_loop().create_task(self._wake())
        if self.webhook is not None:
            self._open_lane(hooks.chat_of(update))

    async def _wake(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    def _notify(self, kind: str, payload: Any) -> None:
        for listener in self.listeners:
            listener(kind, payload)

    # -- the webhook -----------------------------------------------------------------------

    async def api_setWebhook(self, params: dict[str, Any]) -> bool:
        url = str(params.get("url") or "")
        if not url:  # Telegram: an empty URL removes the webhook
            return await self.api_deleteWebhook(params)
        try:
            url = hooks.checked_url(url)
            secret = hooks.checked_secret(params.get("secret_token"))
            connections = hooks.checked_max_connections(params.get("max_connections"))
            kinds = hooks.allowed_updates(params.get("allowed_updates"))
        except WebhookRefused as exc:
            raise ApiError(400, str(exc)) from None
        previous = self.webhook
        if kinds is None and previous is not None:
            kinds = previous.allowed_updates  # "if not specified, the previous setting is used"
        self.webhook = Webhook(url, secret, connections, kinds)
        if previous is not None and previous.url == url:  # the same webhook, set once more
            self.webhook.last_error_date = previous.last_error_date
            self.webhook.last_error_message = previous.last_error_message
        if previous is None or previous.max_connections != connections:
            self._connections = asyncio.Semaphore(connections)
        if _flag(params.get("drop_pending_updates")):
            self.updates.clear()
        for update in self.updates:
            self._open_lane(hooks.chat_of(update))
        await self._wake()  # a long poll under way ends with 409
        return True

    async def api_deleteWebhook(self, params: dict[str, Any]) -> bool:
        self.webhook = None
        await self._stop_lanes()  # what was not delivered stays for getUpdates
        if _flag(params.get("drop_pending_updates")):
            self.updates.clear()
        await self._wake()
        return True

    async def api_getWebhookInfo(self, params: dict[str, Any]) -> dict[str, Any]:
        info: dict[str, Any] = {
            "url": "",
            "has_custom_certificate": False,
            "pending_update_count": len(self.updates),
        }
        hook = self.webhook
        if hook is None:
            return info
        info.update(url=hook.url, max_connections=hook.max_connections, ip_address="127.0.0.1")
        if hook.allowed_updates:
            info["allowed_updates"] = hook.allowed_updates
        if hook.last_error_date is not None:
            info["last_error_date"] = hook.last_error_date
            info["last_error_message"] = hook.last_error_message
        return info

    async def wait_delivered(self, up_to: int | None = None, timeout: float = 10) -> None:
        """Until every update queued so far (or up to update id `up_to`) has been answered
        2xx by the webhook: its barrier, as `wait_confirmed` is getUpdates'."""
        target = self.last_update_id if up_to is None else up_to

        def delivered() -> bool:
            return not any(u["update_id"] <= target for u in self.updates)

        def pending() -> str:
            hook = self.webhook
            error = hook.last_error_message if hook else "no webhook is set"
            return f"{len(self.updates)} updates not delivered (last error: {error})"

        await until(self._changed, delivered, timeout, pending)

    async def deliver_again(self, update_id: int) -> int | None:
        """Send a delivered update once more, as Telegram does when it did not see the answer
        (at least once); the status it got (None: no answer)."""
        hook = self.webhook
        if hook is None:
            raise LookupError("no webhook is set")
        update = self._delivered[update_id]
        async with self._connections:
            status, error = await hooks.post(self._http(), hook, update, self.webhook_timeout)
        self.deliveries.append((update_id, status))
        if error is not None:
            hook.failed(error)
        await self._wake()
        return status

    def _open_lane(self, chat: object) -> None:
        """Start sending this chat's updates, unless they are under way already."""
        if chat not in self._lanes and not self._closing:
            self._lanes[chat] = asyncio.get_running_loop().create_task(self._lane(chat))

    async def _lane(self, chat: object) -> None:
        """One chat's updates, one at a time and in order: the next only after a 2xx for the
        one before; a failure is tried again after a back-off that doubles."""
        backoff = self.webhook_backoff
        try:
            while (hook := self.webhook) is not None:
                update = next((u for u in self.updates if hooks.chat_of(u) == chat), None)
                if update is None:
                    return
                if hook.takes(update):
                    async with self._connections:
                        status, error = await hooks.post(
                            self._http(), hook, update, self.webhook_timeout
                        )
                    self.deliveries.append((update["update_id"], status))
                    if error is not None:
                        hook.failed(error)
                        await self._wake()
                        await asyncio.sleep(backoff)  # Telegram's retry timer, shortened
                        backoff = min(backoff * 2, self.webhook_backoff_max)
                        continue
                    self._delivered[update["update_id"]] = update
                backoff = self.webhook_backoff
                self.updates = [u for u in self.updates if u is not update]
                await self._wake()
        finally:
            if self._lanes.get(chat) is asyncio.current_task():
                del self._lanes[chat]

    async def _stop_lanes(self) -> None:
        lanes = list(self._lanes.values())
        self._lanes.clear()
        for lane in lanes:
            lane.cancel()
        if lanes:
            await asyncio.gather(*lanes, return_exceptions=True)

    def _http(self) -> aiohttp.ClientSession:
        if self._client is None or self._client.closed:
            self._client = aiohttp.ClientSession()
        return self._client

    # -- what tests look at ----------------------------------------------------------------

    def sent_to(self, chat_id: int) -> list[Sent]:
        return [s for s in self.sent if s.chat_id == chat_id]

    async def wait_for(
        self,
        predicate: Callable[[Sent], bool],
        timeout: float = 10.0,
        after: int = 0,
    ) -> Sent:
        """The first message sent (from index `after` on) that matches; waits for it."""
        found: list[Sent] = []

        def matched() -> bool:
            found[:] = [s for s in self.sent[after:] if predicate(s)][:1]
            return bool(found)

        def seen() -> str:
            lines = "\n".join(f"  [{s.chat_id}] {s.text[:120]!r}" for s in self.sent[after:])
            return f"no matching message; sent:\n{lines}\n"

        await until(self._changed, matched, timeout, seen)
        return found[0]

    async def until(self, condition: Callable[[], bool], timeout: float = 15.0) -> None:
        """Until `condition()` holds, looked at each time the bot calls or a message arrives
        (a barrier on what the people see, not a sleep)."""
        await until(self._changed, condition, timeout)

    async def wait_calls(self, method: str, count: int, timeout: float = 120.0) -> None:
        """Until the bot has called `method` at least `count` times (a barrier, not a sleep)."""
        await until(
            self._changed,
            lambda: sum(1 for m, _ in self.calls if m == method) >= count,
            timeout,
            lambda: f"{method} was not called {count} times",
        )

    async def wait_text(
        self, chat_id: int, needle: str, timeout: float = 10.0, after: int = 0
    ) -> Sent:
        return await self.wait_for(
            lambda s: s.chat_id == chat_id and needle in s.text, timeout, after
        )

    async def wait_answer(self, query_id: str, timeout: float = 10.0) -> dict[str, Any]:
        await until(
            self._changed,
            lambda: query_id in self.callback_answers,
            timeout,
            lambda: f"callback {query_id} was not answered",
        )
        return self.callback_answers[query_id]

    async def wait_confirmed(self, up_to: int | None = None, timeout: float = 10) -> None:
        """Until getUpdates has confirmed every update pushed so far, or up to update id
        `up_to` (each call wakes it); with a webhook set, until each has been delivered
        (`wait_delivered`)."""
        if self.webhook is not None:
            await self.wait_delivered(up_to, timeout)
            return
        target = self.last_update_id if up_to is None else up_to
        await until(
            self._changed,
            lambda: self.confirmed >= target,
            timeout,
            lambda: "updates not confirmed",
        )

    # -- Bot API methods -------------------------------------------------------------------

    async def api_getMe(self, params: dict[str, Any]) -> dict[str, Any]:
        return {
            **BOT_USER,
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
        }

    async def api_getUpdates(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        if self.webhook is not None:
            raise ApiError(
                409,
                "Conflict: can't use getUpdates method while webhook is active; "
                "use deleteWebhook to delete the webhook first",
            )
        offset = int(params.get("offset") or 0)
        timeout = float(params.get("timeout") or 0)
        limit = int(params.get("limit") or 100)
        if offset:
            self.confirmed = max(self.confirmed, offset - 1)
            self.updates = [u for u in self.updates if u["update_id"] >= offset]
        deadline = time.monotonic() + timeout
        async with self._changed:
            while not self.updates and time.monotonic() < deadline and not self._closing:
                if self.webhook is not None:  # as Telegram ends a long poll it no longer serves
                    raise ApiError(409, "Conflict: terminated by setWebhook request")
                try:
                    await asyncio.wait_for(
                        self._changed.wait(), timeout=deadline - time.monotonic()
                    )
                except TimeoutError:
                    break
        return self.updates[:limit]

    async def api_getChat(self, params: dict[str, Any]) -> dict[str, Any]:
        chat_id = int(params["chat_id"])
        full = {
            "accent_color_id": 0,
            "max_reaction_count": 11,
            "accepted_gift_types": {
                "unlimited_gifts": False,
                "limited_gifts": False,
                "unique_gifts": False,
                "premium_subscription": False,
                "gifts_from_channels": False,
            },
        }
        if chat_id in self.groups:
            return {**self.group_chat(chat_id), **full}
        if chat_id in self.people:
            return {**self.people[chat_id].chat, **full}
        raise ApiError(400, "Bad Request: chat not found")

    async def api_getChatAdministrators(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        group = self.groups.get(int(params["chat_id"]))
        if group is None:
            raise ApiError(400, "Bad Request: chat not found")
        admins = [{"status": "administrator", "user": BOT_USER, **_ADMIN_RIGHTS}]
        for user_id in sorted(group.admins):  # as Telegram: whether or not they ever wrote
            person = self.people.get(user_id)
            user = person.user if person else {"id": user_id, "is_bot": False, "first_name": "?"}
            admins.append({"status": "administrator", "user": user, **_ADMIN_RIGHTS})
        return admins

    async def api_getChatMember(self, params: dict[str, Any]) -> dict[str, Any]:
        group = self.groups.get(int(params["chat_id"]))
        if group is None:
            raise ApiError(400, "Bad Request: chat not found")
        user_id = int(params["user_id"])
        person = self.people.get(user_id)
        user = person.user if person else {"id": user_id, "is_bot": False, "first_name": "?"}
        if user_id in group.admins:
            return {"status": "administrator", "user": user, **_ADMIN_RIGHTS}
        if user_id in group.restricted:
            return {
                "status": "restricted",
                "user": user,
                "is_member": group.restricted[user_id],
                "until_date": 0,
                **{right: False for right in _RESTRICTED_RIGHTS},
            }
        if user_id in group.members:
            return {"status": "member", "user": user}
        return {"status": "left", "user": user}

    async def api_createForumTopic(self, params: dict[str, Any]) -> dict[str, Any]:
        chat_id = int(params["chat_id"])
        group = self.groups.get(chat_id)
        if group is None or not group.forum:
            raise ApiError(400, "Bad Request: the chat is not a forum")
        thread_id = self._next_message_id(chat_id)
        group.topics[thread_id] = params["name"]
        self._notify("topic", {"chat_id": chat_id, "thread_id": thread_id, "name": params["name"]})
        return {"message_thread_id": thread_id, "name": params["name"], "icon_color": 7322096}

    async def api_answerCallbackQuery(self, params: dict[str, Any]) -> bool:
        self.callback_answers[str(params["callback_query_id"])] = params
        self._notify("answer", params)
        await self._wake()
        return True

    async def api_sendMessage(self, params: dict[str, Any]) -> dict[str, Any]:
        return await self._send(params, "sendMessage", "text", params.get("text", ""))

    async def api_sendPhoto(self, params: dict[str, Any]) -> dict[str, Any]:
        return await self._send(params, "sendPhoto", "photo", params.get("caption", ""))

    async def api_sendVoice(self, params: dict[str, Any]) -> dict[str, Any]:
        return await self._send(params, "sendVoice", "voice", params.get("caption", ""))

    async def api_sendVideo(self, params: dict[str, Any]) -> dict[str, Any]:
        return await self._send(params, "sendVideo", "video", params.get("caption", ""))

    async def api_sendDocument(self, params: dict[str, Any]) -> dict[str, Any]:
        return await self._send(params, "sendDocument", "document", params.get("caption", ""))

    async def api_sendAudio(self, params: dict[str, Any]) -> dict[str, Any]:
        return await self._send(params, "sendAudio", "audio", params.get("caption", ""))

    async def api_sendAnimation(self, params: dict[str, Any]) -> dict[str, Any]:
        return await self._send(params, "sendAnimation", "animation", params.get("caption", ""))

    async def api_sendSticker(self, params: dict[str, Any]) -> dict[str, Any]:
        return await self._send(params, "sendSticker", "sticker", "")

    async def api_sendVideoNote(self, params: dict[str, Any]) -> dict[str, Any]:
        return await self._send(params, "sendVideoNote", "video_note", "")

    async def api_copyMessage(self, params: dict[str, Any]) -> dict[str, Any]:
        source = self.messages.get((int(params["from_chat_id"]), int(params["message_id"])))
        if source is None:
            raise ApiError(400, "Bad Request: message to copy not found")
        kind = next((k for k in _KINDS if k in source), "text")
        body = dict(params)
        body.pop("from_chat_id")
        body.pop("message_id")
        body.setdefault("text", source.get("text", ""))
        if kind != "text":
            body[kind] = _file_id(source, kind)
            body.setdefault("caption", source.get("caption", ""))
        result = await self._send(
            body, "copyMessage", kind, body.get("caption") or body.get("text") or ""
        )
        return {"message_id": result["message_id"]}

    async def api_sendMediaGroup(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        media = params["media"]
        if not 2 <= len(media) <= 10:
            raise ApiError(400, "Bad Request: wrong number of media in the album")
        group_id = f"bot-album-{next(self.ids)}"
        results = []
        for item in media:
            body = {k: v for k, v in params.items() if k != "media"}
            body[item["type"]] = item["media"]
            if item.get("caption"):
                body["caption"] = item["caption"]
                body["parse_mode"] = item.get("parse_mode") or params.get("parse_mode")
            result = await self._send(
                body,
                "sendMediaGroup",
                item["type"],
                item.get("caption", ""),
                media_group_id=group_id,
            )
            results.append(result)
        return results

    async def api_editMessageText(self, params: dict[str, Any]) -> dict[str, Any]:
        chat_id, message_id = int(params["chat_id"]), int(params["message_id"])
        sent = self._find(chat_id, message_id)
        text, links = self._parsed(params.get("text", ""), params.get("parse_mode"), TEXT_LIMIT)
        markup = params.get("reply_markup")
        _check_buttons(chat_id, markup)
        if text == sent.text and markup == sent.reply_markup:
            raise ApiError(
                400,
                "Bad Request: message is not modified: specified new message "
                "content and reply markup are exactly the same",
            )
        sent.text, sent.html, sent.links = text, params.get("text", ""), links
        sent.reply_markup = markup
        sent.edits += 1
        message = self.messages[(chat_id, message_id)]
        message["text"] = text
        if markup:
            message["reply_markup"] = markup
        else:
            message.pop("reply_markup", None)
        self._notify("edit", sent)
        await self._wake()
        return message

    async def api_editMessageReplyMarkup(self, params: dict[str, Any]) -> dict[str, Any]:
        chat_id, message_id = int(params["chat_id"]), int(params["message_id"])
        sent = self._find(chat_id, message_id)
        markup = params.get("reply_markup")
        _check_buttons(chat_id, markup)
        if markup == sent.reply_markup or (not markup and not sent.reply_markup):
            raise ApiError(400, "Bad Request: message is not modified")
        sent.reply_markup = markup
        sent.edits += 1
        message = self.messages[(chat_id, message_id)]
        if markup:
            message["reply_markup"] = markup
        else:
            message.pop("reply_markup", None)
        await self._wake()
        return message

    def _find(self, chat_id: int, message_id: int) -> Sent:
        for sent in self.sent:
            if sent.chat_id == chat_id and sent.message_id == message_id:
                return sent
        raise ApiError(400, "Bad Request: message to edit not found")

    def _parsed(self, text: str, parse_mode: str | None, limit: int) -> tuple[str, list[str]]:
        if parse_mode == "HTML":
            try:
                plain, links = parse_html(text)
            except EntityError as exc:
                raise ApiError(400, f"Bad Request: {exc}") from None
        else:
            plain, links = text, []
        if len(plain) > limit:
            what = "message is too long" if limit == TEXT_LIMIT else "message caption is too long"
            raise ApiError(400, f"Bad Request: {what}")
        return plain, links

    async def _send(
        self,
        params: dict[str, Any],
        method: str,
        kind: str,
        text: str,
        media_group_id: str | None = None,
    ) -> dict[str, Any]:
        chat_id = int(params["chat_id"])
        if self.latency:
            await asyncio.sleep(self.latency)
        if chat_id in self.blocked:
            raise ApiError(403, "Forbidden: bot was blocked by the user")
        if chat_id in self.not_started:
            raise ApiError(403, "Forbidden: bot can't initiate conversation with a user")
        if chat_id < 0 and chat_id not in self.groups:
            raise ApiError(400, "Bad Request: chat not found")
        _check_buttons(chat_id, params.get("reply_markup"))
        if kind == "text" and not text:
            raise ApiError(400, "Bad Request: message text is empty")
        limit = TEXT_LIMIT if kind == "text" else CAPTION_LIMIT
        plain, links = self._parsed(text, params.get("parse_mode"), limit)
        thread_id = params.get("message_thread_id")
        group = self.groups.get(chat_id)
        if thread_id is not None and group is not None:
            if int(thread_id) in group.deleted_topics or int(thread_id) not in group.topics:
                raise ApiError(400, "Bad Request: message thread not found")
        reply_to = None
        reply = params.get("reply_parameters")
        if isinstance(reply, dict):
            reply_to = int(reply["message_id"])
            if (chat_id, reply_to) not in self.messages and not reply.get(
                "allow_sending_without_reply"
            ):
                raise ApiError(400, "Bad Request: message to be replied not found")
        message_id = self._next_message_id(chat_id)
        chat = (
            self.group_chat(chat_id)
            if chat_id < 0
            else (
                self.people[chat_id].chat
                if chat_id in self.people
                else {"id": chat_id, "type": "private", "first_name": "?"}
            )
        )
        message: dict[str, Any] = {
            "message_id": message_id,
            "date": int(time.time()),
            "chat": chat,
            "from": BOT_USER,
        }
        file_id = None
        if kind == "text":
            message["text"] = plain
        else:
            file_id = str(params.get(kind))
            message.update(_media(kind, file_id))
            if plain:
                message["caption"] = plain
        if params.get("reply_markup") and "inline_keyboard" in params["reply_markup"]:
            message["reply_markup"] = params["reply_markup"]
        if thread_id is not None:
            message["message_thread_id"] = int(thread_id)
            message["is_topic_message"] = True
        if reply_to is not None and (chat_id, reply_to) in self.messages:
            message["reply_to_message"] = self.messages[(chat_id, reply_to)]
        if media_group_id:
            message["media_group_id"] = media_group_id
        self.messages[(chat_id, message_id)] = message
        sent = Sent(
            chat_id=chat_id,
            message_id=message_id,
            kind=kind,
            text=plain,
            html=text,
            links=links,
            reply_markup=params.get("reply_markup"),
            thread_id=int(thread_id) if thread_id is not None else None,
            reply_to=reply_to,
            file_id=file_id,
            method=method,
            at=time.monotonic(),
        )
        self.sent.append(sent)
        self._notify("sent", sent)
        await self._wake()
        return message


def _check_buttons(chat_id: int, markup: object) -> None:
    """Inline buttons as Telegram takes them: a Mini App button (`web_app`) only in a private
    chat (elsewhere BUTTON_TYPE_INVALID) and only with an https address; a link button with an
    http(s) or tg address. The stand-in also takes a Mini App's plain http:// on a loopback
    address, where the tests' desk listens (Telegram itself never does)."""
    if not isinstance(markup, dict):
        return
    for row in markup.get("inline_keyboard") or []:
        for button in row:
            web_app = button.get("web_app")
            if web_app is not None:
                if chat_id < 0:
                    raise ApiError(400, "Bad Request: BUTTON_TYPE_INVALID")
                url = str(web_app.get("url") or "") if isinstance(web_app, dict) else ""
                if not _https_or_loopback(url):
                    raise ApiError(
                        400,
                        f"Bad Request: inline keyboard button Web App URL '{url}' is invalid: "
                        "Only HTTPS links are allowed",
                    )
            if "url" in button:
                url = str(button.get("url") or "")
                if urlsplit(url).scheme not in ("http", "https", "tg") or "://" not in url:
                    raise ApiError(
                        400, f"Bad Request: inline keyboard button URL '{url}' is invalid"
                    )


def _https_or_loopback(url: str) -> bool:
    parts = urlsplit(url)
    if not parts.hostname:
        return False
    if parts.scheme == "https":
        return True
    return parts.scheme == "http" and (
        parts.hostname == "localhost" or parts.hostname.startswith("127.")
    )


def _flag(value: object) -> bool:
    """A Bot API boolean, as JSON or as a form field."""
    return value is True or str(value).lower() in ("true", "1")


_KINDS = ("photo", "video", "document", "voice", "audio", "animation", "sticker", "video_note")
_ADMIN_RIGHTS = {
    "can_be_edited": False,
    "is_anonymous": False,
    "can_manage_chat": True,
    "can_delete_messages": True,
    "can_manage_video_chats": True,
    "can_restrict_members": True,
    "can_promote_members": False,
    "can_change_info": True,
    "can_invite_users": True,
    "can_post_stories": False,
    "can_edit_stories": False,
    "can_delete_stories": False,
    "can_manage_topics": True,
    "can_send_welcome_messages": False,
}


def _file_id(message: dict[str, Any], kind: str) -> str:
    item = message[kind]
    if isinstance(item, list):
        return str(item[-1]["file_id"])
    return str(item["file_id"])


def _media(kind: str, file_id: str) -> dict[str, Any]:
    unique = f"{file_id}-u"
    if kind == "photo":
        return {
            "photo": [{"file_id": file_id, "file_unique_id": unique, "width": 800, "height": 600}]
        }
    if kind in ("video", "animation"):
        return {
            kind: {
                "file_id": file_id,
                "file_unique_id": unique,
                "width": 640,
                "height": 480,
                "duration": 5,
            }
        }
    if kind == "sticker":
        return {
            "sticker": {
                "file_id": file_id,
                "file_unique_id": unique,
                "type": "regular",
                "width": 512,
                "height": 512,
                "is_animated": False,
                "is_video": False,
            }
        }
    if kind == "video_note":
        return {
            "video_note": {
                "file_id": file_id,
                "file_unique_id": unique,
                "length": 240,
                "duration": 5,
            }
        }
    if kind in ("voice", "audio"):
        return {kind: {"file_id": file_id, "file_unique_id": unique, "duration": 5}}
    return {kind: {"file_id": file_id, "file_unique_id": unique}}
