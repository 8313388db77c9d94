"""A local stand-in for WeCom's customer-service API (微信客服, "kf"), for the tests and the demo.

It speaks WeCom's HTTP API under `{base}/cgi-bin/...` (JSON in and out, errors as `errcode`):
the access token, kf/sync_msg (one ordered log per account, an opaque cursor, `has_more`
paging, the callback's msg token checked), kf/send_msg inside WeCom's window (5 messages within
48 hours of each customer message, 2048 bytes of text, no sends to an ended session or one a
servicer has taken), kf/send_msg_on_event (a welcome code, once, within 20 s), media upload and
download, kf/customer/batchget, kf/service_state and a group robot's webhook (20 a minute).

Scripted customers act (write, tap menu items, send photos, voice, files and places, enter the
session); each action is put in the log and WeCom's encrypted, signed callback is posted to the
bot in the background, retried like WeCom when the bot does not answer in time. Everything runs
on an injectable clock (`clock`, `travel`) so a test can step past 48 hours; the callbacks'
timestamps come from `callback_clock` (the real time), as the bot checks them against its own.

The same server stands in for the shop's self-built app (自建应用), where staff and managers
work: its own secret and access token (a kf token is refused on the app's calls and the app's on
kf's), message/send to members (text cut past 2048 bytes without an error; button cards with a
unique task_id, at most 6 buttons, unique keys; 30 messages a minute and 1000 an hour per member,
the excess dropped silently and counted), message/update_template_card with a response_code
(once, within 72 hours), media shared with kf, and the trusted-IP refusal (60020). Scripted staff
write, send photos and tap card buttons; each is posted to the app's callback URL, encrypted and
signed with the app's Token and EncodingAESKey, and retried like WeCom when not answered in 5 s.

It also plays WeCom's web sign-in for the app's links (connect/oauth2/authorize, 91022): it acts
as the member's phone, signed in as the member a test names (`sign_in_as`), checks the link as
WeCom does (the corp id, response_type, scope, the app's agentid, a redirect within the app's
trusted domain) and redirects to it with a code; auth/getuserinfo (91023) tells the app's token
whom a code names, once, within 5 minutes (40029 otherwise).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import copy
import itertools
import json
import re
import secrets
import string
import time
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import quote, urlencode, urlsplit, urlunsplit

import aiohttp
from aiohttp import web

from bot.channels.wecom.crypto import WeComCrypto, signature
from bot.standin.waiting import until

T = TypeVar("T")

AES_KEY = "4qOQr1YJMPJ3BD5Rv92u7pvF5fO1rz27T8x9neCt2Ck"  # a valid 43-character EncodingAESKey
APP_AES_KEY = "3yt3VhrVLnXhy7jAERqXhTPGrjUSfbjLsW6VZB4VT10"  # the app's own callback key

TOKEN_TTL = 7200  # an access token's life
MSG_TOKEN_TTL = 600  # a callback's token is good for kf/sync_msg for 10 minutes
KEEP_MESSAGES = 3 * 24 * 3600  # kf/sync_msg returns the last 3 days
WINDOW = 48 * 3600  # after a customer's message, the account may answer for 48 hours...
WINDOW_BUDGET = 5  # ...at most 5 messages
WELCOME_TTL = 20  # a welcome code (send_msg_on_event) is good for 20 seconds, once
MEDIA_TTL = 3 * 24 * 3600  # a temporary media file lives 3 days
TEXT_BYTES = 2048
MENU_TEXT_BYTES = 1024  # a menu's head_content and tail_content
MENU_ITEM_BYTES = 128  # a click item's id and content
MENU_ITEMS = 10
MARKDOWN_BYTES = 4096  # a group robot's markdown
WEBHOOK_PER_MINUTE = 20
SYNC_LIMIT = 1000
MSGID = re.compile(r"[0-9a-zA-Z_-]{1,32}")  # a sender's own msgid, as WeCom allows it
KF, APP, ANY = "kf", "app", "any"  # whose access token a call needs

# kf/service_state: 0 new, 1 the API's (智能助手), 2 waiting for a servicer, 3 a servicer's,
# 4 ended
NEW, BOT, QUEUED, SERVICER, ENDED = 0, 1, 2, 3, 4

# upload size limits, and the errcode past them
MEDIA_LIMITS = {
    "image": (10 * 1024 * 1024, 40009),
    "voice": (2 * 1024 * 1024, 40010),
    "video": (10 * 1024 * 1024, 40011),
    "file": (20 * 1024 * 1024, 40006),
}
CONTENT_TYPES = {
    "image": "image/jpeg",
    "voice": "audio/amr",
    "video": "video/mp4",
    "file": "application/octet-stream",
}
SAMPLES = {  # what a customer sends when a test names no media
    "image": b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01stand-in photo\xff\xd9",
    "voice": b"#!AMR\n" + bytes(32),
    "video": b"\x00\x00\x00\x18ftypmp42stand-in video",
    "file": b"%PDF-1.4\n% stand-in receipt\n%%EOF\n",
}
SEND_TYPES = {
    "text",
    "image",
    "voice",
    "video",
    "file",
    "link",
    "miniprogram",
    "msgmenu",
    "location",
    "business_card",
    "ca_link",
}
EVENT_SEND_TYPES = {"text", "msgmenu"}
MEDIA_TYPES = {"image", "voice", "video", "file"}

# The self-built app (message/send 90236, update_template_card 94888, callbacks 90240/90930;
# error codes as WeCom's list 90313 names them)
APP_SEND_TYPES = {"text", "image", "file", "template_card", "textcard"}
TEXTCARD_BUTTON_CHARS = 4  # a textcard's btntxt is cut past these ("不超过4个文字")
TEXTCARD_TITLE_BYTES = 128  # a textcard's title and description are cut past these
TEXTCARD_DESCRIPTION_BYTES = 512
TEXTCARD_URL_BYTES = 2048
# The web sign-in (connect/oauth2/authorize 91022, auth/getuserinfo 91023)
OAUTH_CODE_TTL = 300  # a code is good for 5 minutes, once
INVALID_CODE = 40029
OAUTH_STATE = re.compile(r"[A-Za-z0-9]{0,128}")
APP_TEXT_BYTES = 2048  # longer text is cut, not refused
APP_PER_MINUTE = 30  # messages from the app to one member; the excess is dropped silently
APP_PER_HOUR = 1000
RESPONSE_CODE_TTL = 72 * 3600  # a response_code updates a card once, within 72 hours
CARD_BUTTONS = 6
BUTTON_KEY_BYTES = 1024
TASK_ID = re.compile(r"[0-9A-Za-z_\-@]{1,128}")  # unique within the app
INVALID_TASK_ID = 42014  # 任务卡片消息的task_id不合法
INVALID_BUTTON_KEY = 42018  # 按钮key值不合法
NO_BUTTON_KEY = 42019
NO_BUTTON_NAME = 42020
INVALID_RESPONSE_CODE = 60140  # 无效的response_code (used, or past 72 hours)
IP_NOT_ALLOWED = 60020  # 不安全的访问IP: not among the app's trusted IPs (企业可信IP)
ALL_INVALID = 81013  # no recipient is a member the app can reach


class Refusal(Exception):
    """WeCom's answer to a call it does not take: `{"errcode": ..., "errmsg": ...}` (and, for
    some, more fields, such as message/send's `invaliduser`)."""

    def __init__(self, errcode: int, errmsg: str, **extra: Any) -> None:
        super().__init__(f"{errcode} {errmsg}")
        self.errcode = errcode
        self.errmsg = errmsg
        self.extra = extra


@dataclass
class SentMessage:
    """A message the bot sent a customer (kf/send_msg or kf/send_msg_on_event)."""

    touser: str
    open_kfid: str
    msgtype: str
    text: str  # a text's content; a menu's lines (head, items, tail) joined by newlines
    menu: dict[str, Any] | None  # a msgmenu as sent
    media_id: str | None
    msgid: str
    at: float  # the stand-in's clock
    via: str = "send_msg"  # or "send_msg_on_event"
    body: dict[str, Any] = field(default_factory=dict)

    def buttons(self) -> list[str]:
        """The labels of a menu's click items."""
        return [item["click"]["content"] for item in _items(self.menu) if item["type"] == "click"]

    def menu_ids(self) -> list[str]:
        return [item["click"]["id"] for item in _items(self.menu) if item["type"] == "click"]


@dataclass
class WebhookMessage:
    """A message the bot sent through a group robot's webhook."""

    key: str
    msgtype: str
    content: str
    body: dict[str, Any]
    at: float


@dataclass
class CallbackAttempt:
    """One attempt to post a callback to the bot."""

    callback: int  # the callback (its retries share the number)
    attempt: int  # 1, 2, 3
    token: str  # the msg token it carried
    status: int | None  # None: no answer in time, or no connection
    body: str
    seconds: float
    error: str | None = None


@dataclass
class Media:
    kind: str
    data: bytes
    filename: str
    created_at: float


@dataclass
class Session:
    """A customer's session with an account: its state and WeCom's window."""

    state: int = NEW
    servicer_userid: str = ""
    last_customer_at: float | None = None
    sent_since: int = 0  # messages sent since the customer's last message
    welcomed_at: float | None = None


@dataclass
class EventCode:
    """A welcome code (enter_session) or a service_state msg_code, for send_msg_on_event."""

    open_kfid: str
    external_userid: str
    issued_at: float
    used: bool = False


@dataclass
class Fault:
    """An injected failure: the next `count` calls of `path` answer `errcode` (or, with
    `http_status`, a bare HTTP error page, as a proxy in front of WeCom may)."""

    path: str
    errcode: int
    errmsg: str
    count: int = 1
    http_status: int | None = None


class HttpFault(Exception):
    """An injected HTTP error: the endpoint answers this status with an HTML page."""

    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


@dataclass
class Customer:
    """A WeChat user writing to a customer-service account. Each action is put in the account's
    log and the bot is called back (in the background); each returns the message as
    kf/sync_msg will show it."""

    api: WeComStandIn
    external_userid: str
    name: str = "小李"
    open_kfid: str = ""

    def say(self, text: str) -> dict[str, Any]:
        return self.api.customer_message(self, "text", {"content": text})

    def tap_menu(self, menu_id: str, content: str | None = None) -> dict[str, Any]:
        """Tap a menu item: a text with the item's `menu_id`. Without `content`, the item's own
        label is looked up in the menus sent to this customer."""
        if content is None:
            content = self.api.menu_item(self.external_userid, menu_id=menu_id)[1]
        return self.api.customer_message(self, "text", {"content": content, "menu_id": menu_id})

    def tap(self, label: str) -> dict[str, Any]:
        """Tap the click item with this label on the newest menu sent to this customer."""
        menu_id, content = self.api.menu_item(self.external_userid, label=label)
        return self.tap_menu(menu_id, content)

    def send_image(self, media_id: str | None = None) -> dict[str, Any]:
        return self._media("image", media_id)

    def send_voice(self, media_id: str | None = None) -> dict[str, Any]:
        return self._media("voice", media_id)

    def send_video(self, media_id: str | None = None) -> dict[str, Any]:
        return self._media("video", media_id)

    def send_file(self, media_id: str | None = None) -> dict[str, Any]:
        return self._media("file", media_id)

    def send_location(
        self,
        latitude: float = 31.2304,
        longitude: float = 121.4737,
        name: str = "人民广场",
        address: str = "上海市黄浦区人民大道",
    ) -> dict[str, Any]:
        location = {"latitude": latitude, "longitude": longitude, "name": name, "address": address}
        return self.api.customer_message(self, "location", location)

    def enter_session(
        self, scene: str = "", scene_param: str | None = None, welcome: bool | None = None
    ) -> dict[str, Any]:
        """The customer opens the chat (an enter_session event). It carries a fresh welcome_code
        when WeCom would give one (no welcome in the last 48 h and no message from the customer
        in them), or as `welcome` says."""
        return self.api.enter_session(self, scene, scene_param, welcome)

    def sent(self) -> list[SentMessage]:
        """What the bot has sent this customer."""
        return self.api.sent_to(self.external_userid)

    def _media(self, kind: str, media_id: str | None) -> dict[str, Any]:
        if media_id is None:
            media_id = self.api.add_media(SAMPLES[kind], kind)
        return self.api.customer_message(self, kind, {"media_id": media_id})


@dataclass
class OAuthCode:
    """A code the web sign-in gave (in the redirect): whom it names, when, for which app."""

    userid: str | None  # a member of the corp
    openid: str | None  # someone outside it
    issued_at: float
    agent_id: int | None


@dataclass
class AppMessage:
    """What one member received from the app (message/send): a text as they see it (cut at
    2048 bytes), an image or a file, or a button card as it now stands after any updates."""

    touser: str
    msgtype: str
    msgid: str  # message/send's msgid (shared by the members of one send)
    at: float  # the stand-in's clock
    text: str = ""
    cut: bool = False  # WeCom cut the text at 2048 bytes (and said nothing)
    media_id: str | None = None
    card: dict[str, Any] | None = None  # the template_card the member now sees
    replaced_name: str | None = None  # update_template_card greyed the buttons out with this
    updates: int = 0
    body: dict[str, Any] = field(default_factory=dict)  # the send, as the bot posted it
    link: str | None = None  # a textcard's url (its text: the description)

    @property
    def task_id(self) -> str | None:
        return None if self.card is None else str(self.card.get("task_id") or "") or None

    @property
    def clickable(self) -> bool:
        """The member can still tap the card's buttons (no update has greyed them out)."""
        return self.card is not None and self.replaced_name is None

    def buttons(self) -> list[str]:
        """The labels on the card's buttons (all showing `replaced_name` once greyed out)."""
        labels = [str(b.get("text") or "") for b in _buttons(self.card)]
        return labels if self.replaced_name is None else [self.replaced_name] * len(labels)

    def keys(self) -> list[str]:
        return [str(b.get("key") or "") for b in _buttons(self.card)]

    @property
    def link_button(self) -> str | None:
        """A textcard's link as the member sees it: its `btntxt`, cut past 4 characters, or
        WeCom's 详情 ("details") when there is none."""
        if self.msgtype != "textcard":
            return None
        given = str((self.body.get("textcard") or {}).get("btntxt") or "")
        return given[:TEXTCARD_BUTTON_CHARS] or "详情"

    @property
    def title(self) -> str:
        if self.msgtype == "textcard":
            return str((self.body.get("textcard") or {}).get("title") or "")
        main = (self.card or {}).get("main_title") or {}
        return str(main.get("title") or "") if isinstance(main, dict) else ""


@dataclass
class AppCallbackAttempt:
    """One attempt to post a staff member's message or tap to the app's callback URL."""

    callback: int  # the callback (its retries share the number, and the very same body)
    attempt: int  # 1, 2, 3
    kind: str  # "text", "image" or the event ("template_card_event")
    from_user: str
    msg_id: str | None  # a message's MsgId; events have none (FromUserName + CreateTime)
    create_time: int
    status: int | None  # None: no answer in time, or no connection
    body: str
    seconds: float
    error: str | None = None


@dataclass
class ResponseCode:
    """A response_code: from message/send (the card of every recipient) or from a tap (that
    member's card). It updates the task's cards once, within 72 hours of its issue."""

    task_id: str
    issued_at: float
    userid: str | None = None  # the member who tapped; None: the send's
    used: bool = False


@dataclass
class Staff:
    """A member of the shop's WeCom who uses the app (staff, a manager). Each action is posted
    to the app's callback URL in the background; each returns the fields of the callback's
    plain XML, as the desk will read them."""

    api: WeComStandIn
    userid: str
    name: str = "张三"

    def say(self, text: str) -> dict[str, str]:
        return self.api.staff_text(self, text)

    def send_image(self, media: bytes | str | None = None) -> dict[str, str]:
        """A photo: its bytes, a media_id WeCom keeps, or (None) a sample."""
        return self.api.staff_image(self, media)

    def send_file(self, data: bytes, filename: str) -> dict[str, str]:
        """A file sent to the app (MsgType file: MediaId and FileName; WeCom's documented
        message formats for an app list no file, so this is the desk's assumption)."""
        return self.api.staff_file(self, data, filename)

    def tap(self, card: AppMessage | str, key: str) -> dict[str, str]:
        """Tap the button with `key` on this member's card (an AppMessage, or its task_id): a
        template_card_event with a fresh ResponseCode for this member's card."""
        return self.api.staff_tap(self, card, key)

    def received(self) -> list[AppMessage]:
        """Everything the app delivered to this member (nothing that was dropped)."""
        return self.api.app_received(self.userid)

    def card(self, task_id: str) -> AppMessage:
        """This member's card for `task_id`, as it now stands."""
        return self.api.member_card(self.userid, task_id)

    @property
    def dropped(self) -> int:
        """Messages to this member WeCom dropped (over 30 a minute or 1000 an hour)."""
        return self.api.app_dropped.get(self.userid.lower(), 0)


Handler = Callable[[web.Request, dict[str, str], dict[str, Any]], Awaitable[Any]]


class WeComStandIn:
    """The stand-in server and the world it keeps: accounts, customers, messages, media."""

    def __init__(
        self,
        corp_id: str = "wwstandin0000001",
        secret: str = "kf-secret",
        token: str = "kf-token",
        aes_key: str = AES_KEY,
        open_kfid: str = "wkSTANDIN000001",
        agent_id: int = 1000002,
        app_secret: str = "app-secret",
        app_token: str = "app-token",
        app_aes_key: str = APP_AES_KEY,
    ) -> None:
        self.corp_id = corp_id
        self.secret = secret
        self.token = token  # the callback Token (signatures)
        self.aes_key = aes_key
        self.open_kfid = open_kfid
        self.crypto = WeComCrypto(token, aes_key, corp_id)
        self.clock: Callable[[], float] = time.time
        # the callbacks' timestamps: the bot checks them against its own clock (five minutes
        # either way), which `travel` does not move, so they stay the real time
        self.callback_clock: Callable[[], float] = time.time
        self.require_token = True  # kf/sync_msg wants a callback's msg token
        self.page_size = SYNC_LIMIT  # kf/sync_msg's pages hold at most this many
        self.callback_url: str | None = None
        self.callback_timeout = 5.0  # WeCom gives up on an answer after 5 s...
        self.callback_attempts = 3  # ...and posts the same callback 3 times in all
        self.callback_delay = 0.0  # seconds before a callback is posted
        self.coalesce_callbacks = False  # actions while a callback waits share it
        self.latency = 0.0  # seconds each API call takes
        self.webhook_keys: set[str] | None = None  # None: any key is a robot's
        self.accounts: set[str] = {open_kfid}
        self.logs: dict[str, list[dict[str, Any]]] = {open_kfid: []}
        self.customers: dict[str, Customer] = {}
        self.sessions: dict[tuple[str, str], Session] = {}
        self.sent: list[SentMessage] = []
        self.webhook_sent: list[WebhookMessage] = []
        self.callbacks: list[CallbackAttempt] = []
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.media: dict[str, Media] = {}
        self.faults: list[Fault] = []
        self.token_fetches = 0  # gettoken calls answered with a token
        self.last_echo = ""  # the plain echostr of the last verify_url
        self._access_tokens: dict[str, float] = {}  # token -> when it expires
        self._msg_tokens: dict[str, tuple[str, float]] = {}  # token -> (open_kfid, issued)
        self._codes: dict[str, EventCode] = {}
        self._by_msgid: dict[str, SentMessage] = {}
        self._webhook_times: dict[str, deque[float]] = {}
        self._ids = itertools.count(1)
        self._callback_ids = itertools.count(1)
        self._queued: set[str] = set()  # accounts with a callback waiting to be posted
        self._tasks: set[asyncio.Task[None]] = set()
        self._changed = asyncio.Condition()
        self._runner: web.AppRunner | None = None
        self._client: aiohttp.ClientSession | None = None
        self.base_url = ""
        # the self-built app: its id, secret, callback Token and EncodingAESKey (the receive id
        # of its callbacks is the corp id, as for kf)
        self.agent_id = agent_id
        self.app_secret = app_secret
        self.app_token = app_token  # the app's callback Token (signatures)
        self.app_aes_key = app_aes_key
        self.app_crypto = WeComCrypto(app_token, app_aes_key, corp_id)
        self.app_callback_url: str | None = None
        self.trusted_ips = False  # on: the app's calls answer 60020, as from an untrusted IP
        self.outgoing_ip = "203.0.113.7"  # the address WeCom names in that refusal
        self.staff_members: dict[str, Staff] = {}  # by lower-cased userid (WeCom ignores case)
        self.app_sent: list[AppMessage] = []  # every message delivered, one per member
        self.app_dropped: dict[str, int] = {}  # lower-cased userid -> messages dropped
        self.app_cut: list[AppMessage] = []  # texts WeCom cut at 2048 bytes
        self.app_callbacks: list[AppCallbackAttempt] = []
        self.app_token_fetches = 0
        self._app_tokens: dict[str, float] = {}  # the app's access tokens -> when they expire
        self._app_send_times: dict[str, deque[float]] = {}  # per member, the last hour's
        self._task_ids: set[str] = set()  # every task_id the app has used
        self._response_codes: dict[str, ResponseCode] = {}
        self._event_times: dict[str, int] = {}  # per member, the last event's CreateTime
        self._app_callback_ids = itertools.count(1)
        # the web sign-in: whom the phone that follows a link is signed in as, the app's trusted
        # domain (可信域名: a redirect elsewhere is refused), the codes given
        self.signed_in: str | None = None  # a member's userid
        self.signed_in_outsider: str | None = None  # or someone outside the corp (an openid)
        self.trusted_domain = "127.0.0.1"
        self.oauth_codes: dict[str, OAuthCode] = {}
        self.authorized: list[tuple[int, str]] = []  # each authorize: its status, and why

    # -- the server ------------------------------------------------------------------------

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        routes: list[tuple[str, str, Handler, str | None, bool]] = [
            # method, path, handler, whose access token it needs, has a JSON body
            ("GET", "gettoken", self._gettoken, None, False),
            ("POST", "kf/sync_msg", self._sync_msg, KF, True),
            ("POST", "kf/send_msg", self._send_msg, KF, True),
            ("POST", "kf/send_msg_on_event", self._send_msg_on_event, KF, True),
            ("POST", "kf/customer/batchget", self._customer_batchget, KF, True),
            ("POST", "kf/service_state/get", self._service_state_get, KF, True),
            ("POST", "kf/service_state/trans", self._service_state_trans, KF, True),
            # media ids are shared by every app of the corp (90253, 90254)
            ("POST", "media/upload", self._media_upload, ANY, False),
            ("GET", "media/get", self._media_get, ANY, False),
            ("POST", "message/send", self._message_send, APP, True),
            ("POST", "message/update_template_card", self._update_template_card, APP, True),
            ("GET", "user/get", self._user_get, APP, False),
            ("GET", "auth/getuserinfo", self._getuserinfo, APP, False),
            ("POST", "webhook/send", self._webhook_send, None, True),
        ]
        for method, path, handler, auth, has_json in routes:
            app.router.add_route(
                method, f"/cgi-bin/{path}", self._endpoint(path, handler, auth, has_json)
            )
        app.router.add_get("/standin/pic/{media_id}", self._pic)  # a staff photo's PicUrl
        app.router.add_get("/connect/oauth2/authorize", self._authorize)  # open.weixin.qq.com
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
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        if self._client is not None:
            await self._client.close()
        await self._wake()
        if self._runner is not None:
            await self._runner.cleanup()

    def _endpoint(
        self, path: str, handler: Handler, auth: str | None, has_json: bool
    ) -> Callable[[web.Request], Coroutine[Any, Any, web.StreamResponse]]:
        async def endpoint(request: web.Request) -> web.StreamResponse:
            query = dict(request.query)
            try:
                body: dict[str, Any] = {}
                if has_json:
                    try:
                        body = json.loads(await request.read() or b"{}")
                    except ValueError:
                        raise Refusal(47001, "data format error") from None
                    if not isinstance(body, dict):
                        raise Refusal(47001, "data format error")
                self.calls.append((path, {**_public(query), **body}))
                await self._wake()
                if auth:
                    self._check_access(query.get("access_token"), auth)
                if self.latency:
                    await asyncio.sleep(self.latency)
                self._maybe_fault(path)
                result = await handler(request, query, body)
            except Refusal as exc:
                return web.json_response(
                    {"errcode": exc.errcode, "errmsg": exc.errmsg, **exc.extra}
                )
            except HttpFault as exc:
                page = f"<html><body>{exc.status} error</body></html>"
                return web.Response(status=exc.status, text=page, content_type="text/html")
            if isinstance(result, web.StreamResponse):
                return result
            return web.json_response({"errcode": 0, "errmsg": "ok", **result})

        return endpoint

    def _check_access(self, token: str | None, needs: str = ANY) -> None:
        """The token is one gettoken gave, still alive, and the right one for the call: the
        customer-service secret's for kf/*, the app's for message/* (each is 40014 on the
        other's calls); media/* takes either. The app's calls come from an untrusted IP while
        `trusted_ips` is on."""
        if not token:
            raise Refusal(41001, "access_token missing")
        owner = KF if token in self._access_tokens else APP if token in self._app_tokens else None
        if owner is None:
            raise Refusal(40014, "invalid access_token")
        expires = (self._access_tokens if owner == KF else self._app_tokens)[token]
        if self.clock() >= expires:
            raise Refusal(42001, "access_token expired")
        if needs != ANY and owner != needs:
            raise Refusal(40014, "invalid access_token")
        if owner == APP and self.trusted_ips:
            hint = _random(24, string.digits)
            raise Refusal(
                IP_NOT_ALLOWED,
                f"not allow to access from your ip, hint: [{hint}], from ip: {self.outgoing_ip},"
                f" more info at https://open.work.weixin.qq.com/devtool/query?e={IP_NOT_ALLOWED}",
            )

    def _maybe_fault(self, path: str) -> None:
        for fault in self.faults:
            if fault.path == path and fault.count > 0:
                fault.count -= 1
                if fault.http_status is not None:
                    raise HttpFault(fault.http_status)
                raise Refusal(fault.errcode, fault.errmsg)

    def inject(self, path: str, errcode: int, errmsg: str = "", count: int = 1) -> Fault:
        """The next `count` calls of `path` ("kf/send_msg", ...) answer `errcode`
        (-1 is WeCom's "system busy")."""
        fault = Fault(
            path, errcode, errmsg or ("system busy" if errcode == -1 else "error"), count
        )
        self.faults.append(fault)
        return fault

    def inject_http(self, path: str, status: int = 500, count: int = 1) -> Fault:
        """The next `count` calls of `path` ("webhook/send", ...) answer HTTP `status` with an
        HTML page instead of WeCom's JSON."""
        fault = Fault(path, 0, "", count, http_status=status)
        self.faults.append(fault)
        return fault

    def expire_token(self, whose: str | None = None) -> None:
        """The access tokens given so far (`whose`: "kf" or "app" only) are no longer valid
        (40014): the bot must fetch one."""
        if whose in (None, KF):
            self._access_tokens.clear()
        if whose in (None, APP):
            self._app_tokens.clear()

    def travel(self, seconds: float) -> None:
        """Move the stand-in's clock forward (windows, welcome codes, tokens, the webhook)."""
        base = self.clock
        self.clock = lambda: base() + seconds

    # -- the API ---------------------------------------------------------------------------

    async def _gettoken(
        self, request: web.Request, query: dict[str, str], body: dict[str, Any]
    ) -> dict[str, Any]:
        if query.get("corpid") != self.corp_id:
            raise Refusal(40013, "invalid corpid")
        secret = query.get("corpsecret")
        if secret == self.secret:
            self.token_fetches += 1
            tokens = self._access_tokens
        elif secret == self.app_secret:  # each secret has its own token
            self.app_token_fetches += 1
            tokens = self._app_tokens
        else:
            raise Refusal(40001, "invalid credential")
        now = self.clock()
        for token, expires in tokens.items():
            if expires > now:  # within its life WeCom gives the same token again
                return {"access_token": token, "expires_in": int(expires - now)}
        token = _random(64, string.ascii_letters + string.digits + "-_")
        tokens[token] = now + TOKEN_TTL
        return {"access_token": token, "expires_in": TOKEN_TTL}

    async def _sync_msg(
        self, request: web.Request, query: dict[str, str], body: dict[str, Any]
    ) -> dict[str, Any]:
        open_kfid = str(body.get("open_kfid") or "")
        if open_kfid not in self.accounts:
            raise Refusal(95004, "open_kfid not exist")
        now = self.clock()
        if self.require_token:
            issued = self._msg_tokens.get(str(body.get("token") or ""))
            if issued is None or issued[0] != open_kfid or now - issued[1] > MSG_TOKEN_TTL:
                raise Refusal(95007, "invalid msg token")
        try:
            limit = int(body.get("limit") or SYNC_LIMIT)
        except (TypeError, ValueError):
            raise Refusal(40058, "invalid limit") from None
        if not 1 <= limit <= SYNC_LIMIT:
            raise Refusal(40058, f"invalid limit: 1 to {SYNC_LIMIT}")
        log = self.logs[open_kfid]
        position = self._position(body.get("cursor"), open_kfid)
        while position < len(log) and log[position]["send_time"] < now - KEEP_MESSAGES:
            position += 1
        page = log[position : position + min(limit, self.page_size)]
        position += len(page)
        return {
            "next_cursor": _cursor(open_kfid, position),
            "has_more": 1 if position < len(log) else 0,
            "msg_list": copy.deepcopy(page),
        }

    def _position(self, cursor: object, open_kfid: str) -> int:
        if not cursor:
            return 0
        try:
            padded = str(cursor) + "=" * (-len(str(cursor)) % 4)
            account, _, position = base64.urlsafe_b64decode(padded).decode().rpartition("|")
            number = int(position)
        except (ValueError, binascii.Error, UnicodeDecodeError):
            raise Refusal(40058, "invalid cursor") from None
        if account != f"kf:{open_kfid}" or not 0 <= number <= len(self.logs[open_kfid]):
            raise Refusal(40058, "invalid cursor")
        return number

    async def _send_msg(
        self, request: web.Request, query: dict[str, str], body: dict[str, Any]
    ) -> dict[str, Any]:
        open_kfid = str(body.get("open_kfid") or "")
        if open_kfid not in self.accounts:
            raise Refusal(95004, "open_kfid not exist")
        touser = str(body.get("touser") or "")
        msgid = self._own_msgid(body)
        if msgid in self._by_msgid:  # the sender's retry: the same answer, nothing new
            return {"msgid": msgid}
        content = self._content(body, SEND_TYPES)
        now = self.clock()
        session = self.sessions.get((open_kfid, touser))
        if session is not None and session.state == ENDED:
            raise Refusal(95013, "session already ended")
        if session is not None and session.state == SERVICER:
            raise Refusal(95013, "session is with a servicer")
        if session is None or session.last_customer_at is None:
            raise Refusal(95002, "no message from the customer: cannot send")
        if now - session.last_customer_at > WINDOW:
            raise Refusal(95002, "more than 48 hours since the customer's last message")
        if session.sent_since >= WINDOW_BUDGET:
            raise Refusal(95001, "send msg count out of limit")
        session.sent_since += 1
        if session.state == NEW:
            session.state = BOT
        sent = self._record(touser, open_kfid, msgid, content, body, "send_msg")
        return {"msgid": sent.msgid}

    async def _send_msg_on_event(
        self, request: web.Request, query: dict[str, str], body: dict[str, Any]
    ) -> dict[str, Any]:
        msgid = self._own_msgid(body)
        if msgid in self._by_msgid:
            return {"msgid": msgid}
        code = self._codes.get(str(body.get("code") or ""))
        now = self.clock()
        if code is None or code.used or now - code.issued_at > WELCOME_TTL:
            raise Refusal(95016, "invalid code: unknown, used or expired")
        content = self._content(body, EVENT_SEND_TYPES)
        code.used = True
        self._session(code.open_kfid, code.external_userid).welcomed_at = now
        sent = self._record(
            code.external_userid, code.open_kfid, msgid, content, body, "send_msg_on_event"
        )
        return {"msgid": sent.msgid}

    def _own_msgid(self, body: dict[str, Any]) -> str:
        msgid = body.get("msgid")
        if msgid is None or msgid == "":
            return _random(32, string.ascii_letters + string.digits)
        if not isinstance(msgid, str) or not MSGID.fullmatch(msgid):
            raise Refusal(40058, "invalid msgid: at most 32 of [0-9a-zA-Z_-]")
        return msgid

    def _content(
        self, body: dict[str, Any], kinds: set[str]
    ) -> tuple[str, str, dict[str, Any] | None, str | None]:
        """(msgtype, text, menu, media_id) of a message to send, checked as WeCom does."""
        msgtype = str(body.get("msgtype") or "")
        if msgtype not in kinds:
            raise Refusal(40008, f"invalid message type {msgtype!r}")
        item = body.get(msgtype)
        if not isinstance(item, dict):
            raise Refusal(40058, f"{msgtype} is missing")
        if msgtype == "text":
            content = str(item.get("content") or "")
            if not content:
                raise Refusal(44004, "empty content")
            if _bytes(content) > TEXT_BYTES:
                raise Refusal(45002, f"content size out of limit: {TEXT_BYTES} bytes")
            return msgtype, content, None, None
        if msgtype in MEDIA_TYPES:
            media_id = str(item.get("media_id") or "")
            if self._media_of(media_id) is None:
                raise Refusal(40007, "invalid media_id")
            return msgtype, "", None, media_id
        if msgtype == "msgmenu":
            return msgtype, _check_menu(item), item, None
        return msgtype, str(item.get("title") or item.get("name") or ""), None, None

    def _record(
        self,
        touser: str,
        open_kfid: str,
        msgid: str,
        content: tuple[str, str, dict[str, Any] | None, str | None],
        body: dict[str, Any],
        via: str,
    ) -> SentMessage:
        msgtype, text, menu, media_id = content
        sent = SentMessage(
            touser=touser,
            open_kfid=open_kfid,
            msgtype=msgtype,
            text=text,
            menu=copy.deepcopy(menu),
            media_id=media_id,
            msgid=msgid,
            at=self.clock(),
            via=via,
            body=copy.deepcopy(body),
        )
        self.sent.append(sent)
        self._by_msgid[msgid] = sent
        return sent

    async def _customer_batchget(
        self, request: web.Request, query: dict[str, str], body: dict[str, Any]
    ) -> dict[str, Any]:
        wanted = [str(u) for u in body.get("external_userid_list") or []]
        if not 1 <= len(wanted) <= 100:
            raise Refusal(40058, "external_userid_list: 1 to 100")
        known = [self.customers[u] for u in wanted if u in self.customers]
        return {
            "customer_list": [
                {
                    "external_userid": c.external_userid,
                    "nickname": c.name,
                    "avatar": "",
                    "gender": 0,
                    "unionid": "",
                }
                for c in known
            ],
            "invalid_external_userid": [u for u in wanted if u not in self.customers],
        }

    async def _service_state_get(
        self, request: web.Request, query: dict[str, str], body: dict[str, Any]
    ) -> dict[str, Any]:
        open_kfid = str(body.get("open_kfid") or "")
        if open_kfid not in self.accounts:
            raise Refusal(95004, "open_kfid not exist")
        session = self.sessions.get((open_kfid, str(body.get("external_userid") or "")))
        state = session.state if session else NEW
        return {
            "service_state": state,
            "servicer_userid": session.servicer_userid if session else "",
        }

    async def _service_state_trans(
        self, request: web.Request, query: dict[str, str], body: dict[str, Any]
    ) -> dict[str, Any]:
        open_kfid = str(body.get("open_kfid") or "")
        if open_kfid not in self.accounts:
            raise Refusal(95004, "open_kfid not exist")
        user = str(body.get("external_userid") or "")
        state = body.get("service_state")
        if state not in (NEW, BOT, QUEUED, SERVICER, ENDED):
            raise Refusal(95016, "state change not allowed")
        servicer = str(body.get("servicer_userid") or "")
        if state == SERVICER and not servicer:
            raise Refusal(40058, "servicer_userid is needed")
        session = self._session(open_kfid, user)
        session.state, session.servicer_userid = state, servicer
        answer: dict[str, Any] = {}
        if state in (QUEUED, SERVICER, ENDED):  # a code for one message on the change
            answer["msg_code"] = self._new_code(open_kfid, user)
        return answer

    async def _media_upload(
        self, request: web.Request, query: dict[str, str], body: dict[str, Any]
    ) -> dict[str, Any]:
        kind = query.get("type", "")
        if kind not in MEDIA_LIMITS:
            raise Refusal(40004, "invalid media type")
        form = await request.post()
        upload = form.get("media")
        if upload is None or isinstance(upload, str):
            raise Refusal(41005, "media data missing")
        data = upload.file.read()
        limit, errcode = MEDIA_LIMITS[kind]
        if len(data) <= 5:
            raise Refusal(44001, "empty media data: more than 5 bytes")
        if len(data) > limit:
            raise Refusal(errcode, f"{kind} size out of limit: {limit} bytes")
        media_id = self.add_media(data, kind, upload.filename)
        return {
            "type": kind,
            "media_id": media_id,
            "created_at": str(int(self.media[media_id].created_at)),
        }

    async def _media_get(
        self, request: web.Request, query: dict[str, str], body: dict[str, Any]
    ) -> web.Response:
        media = self._media_of(query.get("media_id", ""))
        if media is None:
            raise Refusal(40007, "invalid media_id")
        return web.Response(
            body=media.data,
            content_type=CONTENT_TYPES[media.kind],
            headers={"Content-Disposition": f'attachment; filename="{quote(media.filename)}"'},
        )

    async def _webhook_send(
        self, request: web.Request, query: dict[str, str], body: dict[str, Any]
    ) -> dict[str, Any]:
        key = query.get("key", "")
        if not key or (self.webhook_keys is not None and key not in self.webhook_keys):
            raise Refusal(93000, "invalid webhook url")
        msgtype = str(body.get("msgtype") or "")
        item = body.get(msgtype)
        if msgtype not in ("text", "markdown", "markdown_v2", "image", "news", "file", "voice"):
            raise Refusal(40008, f"invalid message type {msgtype!r}")
        if not isinstance(item, dict):
            raise Refusal(40058, f"{msgtype} is missing")
        content = str(item.get("content") or "")
        if msgtype == "text" and not content:
            raise Refusal(44004, "empty content")
        if msgtype == "text" and _bytes(content) > TEXT_BYTES:
            raise Refusal(45002, f"content size out of limit: {TEXT_BYTES} bytes")
        if msgtype.startswith("markdown") and not content:
            raise Refusal(44004, "empty content")
        if msgtype.startswith("markdown") and _bytes(content) > MARKDOWN_BYTES:
            raise Refusal(40058, f"markdown.content exceed max length {MARKDOWN_BYTES}")
        now = self.clock()
        times = self._webhook_times.setdefault(key, deque())
        while times and times[0] <= now - 60:
            times.popleft()
        if len(times) >= WEBHOOK_PER_MINUTE:
            raise Refusal(45009, "api freq out of limit")
        times.append(now)
        self.webhook_sent.append(WebhookMessage(key, msgtype, content, copy.deepcopy(body), now))
        await self._wake()
        return {}

    # -- the self-built app's API -----------------------------------------------------------

    def _check_agent(self, body: dict[str, Any]) -> None:
        agentid = body.get("agentid")
        if agentid is None or agentid == "":
            raise Refusal(41011, "missing agentid")
        if str(agentid) != str(self.agent_id):
            raise Refusal(40056, "invalid agentid")

    async def _message_send(
        self, request: web.Request, query: dict[str, str], body: dict[str, Any]
    ) -> dict[str, Any]:
        """message/send: to members (`touser` "a|b|c", or "@all"); the answer names the userids
        the app cannot reach (`invaliduser`, lower-cased), and a button card's response_code."""
        self._check_agent(body)
        msgtype = str(body.get("msgtype") or "")
        if msgtype not in APP_SEND_TYPES:
            raise Refusal(40008, f"invalid message type {msgtype!r}")
        item = body.get(msgtype)
        if not isinstance(item, dict):
            raise Refusal(40058, f"{msgtype} is missing")
        wanted = [u.strip() for u in str(body.get("touser") or "").split("|") if u.strip()]
        if not wanted:
            raise Refusal(40058, "touser is empty (toparty and totag are not kept here)")
        text, cut, media_id, card, link = "", False, None, None, None
        if msgtype == "text":
            text, cut = _cut(str(item.get("content") or ""))
            if not text:
                raise Refusal(44004, "empty content")
        elif msgtype == "template_card":
            card = self._check_card(item)
        elif msgtype == "textcard":
            link, text = self._check_textcard(item)
        else:
            media_id = str(item.get("media_id") or "")
            media = self._media_of(media_id)
            if media is None or (msgtype == "image" and media.kind != "image"):
                raise Refusal(40007, "invalid media_id")
        if "@all" in wanted:
            members = list(self.staff_members.values())
            invalid: list[str] = []
        else:
            members = [
                self.staff_members[u.lower()] for u in wanted if u.lower() in self.staff_members
            ]
            invalid = [u.lower() for u in wanted if u.lower() not in self.staff_members]
        if not members:
            raise Refusal(
                ALL_INVALID, "user & party & tag all invalid", invaliduser="|".join(invalid)
            )
        msgid = _random(40, string.ascii_letters + string.digits + "-_")
        now = self.clock()
        answer: dict[str, Any] = {"invaliduser": "|".join(invalid), "msgid": msgid}
        if card is not None:
            self._task_ids.add(str(card["task_id"]))
            answer["response_code"] = self._new_response_code(str(card["task_id"]))
        for member in {m.userid.lower(): m for m in members}.values():
            if not self._within_rate(member.userid.lower(), now):
                continue
            sent = AppMessage(
                touser=member.userid,
                msgtype=msgtype,
                msgid=msgid,
                at=now,
                text=text,
                cut=cut,
                media_id=media_id,
                card=copy.deepcopy(card),
                body=copy.deepcopy(body),
                link=link,
            )
            self.app_sent.append(sent)
            if cut:
                self.app_cut.append(sent)
        await self._wake()
        return answer

    @staticmethod
    def _check_textcard(item: dict[str, Any]) -> tuple[str, str]:
        """A textcard as WeCom takes it (90236): a title, a description and a url with its
        scheme (at most 2048 bytes) are needed; a title past 128 bytes and a description past
        512 are cut. Its (url, description as the member sees it)."""
        title = str(item.get("title") or "")
        description = str(item.get("description") or "")
        url = str(item.get("url") or "")
        if not title or not description or not url:
            raise Refusal(40058, "textcard needs title, description and url")
        if not url.startswith(("http://", "https://")) or _bytes(url) > TEXTCARD_URL_BYTES:
            raise Refusal(40058, "textcard url: http(s)://, at most 2048 bytes")
        return url, _cut(description, TEXTCARD_DESCRIPTION_BYTES)[0]

    def _within_rate(self, userid: str, now: float) -> bool:
        """Whether WeCom delivers one more message from the app to this member now: at most 30
        within a minute and 1000 within an hour; past that it is dropped, with no error."""
        times = self._app_send_times.setdefault(userid, deque())
        while times and times[0] <= now - 3600:
            times.popleft()
        if len(times) >= APP_PER_HOUR or sum(1 for t in times if t > now - 60) >= APP_PER_MINUTE:
            self.app_dropped[userid] = self.app_dropped.get(userid, 0) + 1
            return False
        times.append(now)
        return True

    def _check_card(self, card: dict[str, Any], task_id: str | None = None) -> dict[str, Any]:
        """A button_interaction card checked as WeCom does (90236): a task_id of
        [0-9A-Za-z_-@], at most 128 bytes, never used before by the app; a main title; 1 to 6
        buttons, each with a text and a key of at most 1024 bytes, unique within the card. On
        update (`task_id` given) the card keeps its task_id."""
        if card.get("card_type") != "button_interaction":
            raise Refusal(40058, "card_type: the stand-in keeps button_interaction cards only")
        checked = copy.deepcopy(card)
        given = str(card.get("task_id") or "")
        if task_id is None:
            if not given:
                raise Refusal(INVALID_TASK_ID, "task_id is required")
            if not TASK_ID.fullmatch(given):
                raise Refusal(INVALID_TASK_ID, "invalid task_id: at most 128 of [0-9A-Za-z_-@]")
            if given in self._task_ids:
                raise Refusal(INVALID_TASK_ID, "task_id already used by this app")
        elif given and given != task_id:
            raise Refusal(INVALID_TASK_ID, "the update's task_id is not the card's")
        else:
            checked["task_id"] = task_id
        main = card.get("main_title")
        if not isinstance(main, dict) or not (main.get("title") or main.get("desc")):
            raise Refusal(40058, "main_title (its title or desc) is required")
        buttons = card.get("button_list")
        if not isinstance(buttons, list) or not buttons:
            raise Refusal(40058, "button_list is required")
        if len(buttons) > CARD_BUTTONS:
            raise Refusal(40058, f"button_list: at most {CARD_BUTTONS} buttons")
        keys: set[str] = set()
        for button in buttons:
            if not isinstance(button, dict) or not str(button.get("text") or ""):
                raise Refusal(NO_BUTTON_NAME, "a button needs its text")
            if button.get("type") == 1:  # a link, no callback
                if not str(button.get("url") or ""):
                    raise Refusal(40058, "a link button needs its url")
                continue
            key = str(button.get("key") or "")
            if not key:
                raise Refusal(NO_BUTTON_KEY, "a button needs its key")
            if _bytes(key) > BUTTON_KEY_BYTES:
                raise Refusal(INVALID_BUTTON_KEY, f"button key over {BUTTON_KEY_BYTES} bytes")
            if key in keys:
                raise Refusal(INVALID_BUTTON_KEY, f"button key {key!r} twice in the card")
            keys.add(key)
        return checked

    def _new_response_code(self, task_id: str, userid: str | None = None) -> str:
        code = _random(43, string.ascii_letters + string.digits + "-_")
        self._response_codes[code] = ResponseCode(task_id, self.clock(), userid)
        return code

    async def _update_template_card(
        self, request: web.Request, query: dict[str, str], body: dict[str, Any]
    ) -> dict[str, Any]:
        """message/update_template_card (94888): with a response_code (once, within 72 hours
        of its issue) grey the buttons out with `button.replace_name`, or put a whole new
        `template_card`, on the cards of `userids` (or of everyone it was sent to: `atall`)."""
        self._check_agent(body)
        code = self._response_codes.get(str(body.get("response_code") or ""))
        now = self.clock()
        if code is None or code.used or now - code.issued_at > RESPONSE_CODE_TTL:
            raise Refusal(INVALID_RESPONSE_CODE, "invalid response_code: unknown, used or expired")
        button, card = body.get("button"), body.get("template_card")
        replace_name = ""
        if isinstance(card, dict):
            card = self._check_card(card, code.task_id)
        elif isinstance(button, dict) and str(button.get("replace_name") or ""):
            replace_name = str(button["replace_name"])
        else:
            raise Refusal(40058, "button.replace_name or template_card is required")
        cards = [m for m in self.app_sent if m.task_id == code.task_id]
        invalid: list[str] = []
        if body.get("atall") in (1, True, "1"):
            targets = cards
        else:
            userids = body.get("userids")
            if not isinstance(userids, list) or not userids:
                raise Refusal(40058, "userids (or atall) is required")
            wanted = {str(u).lower() for u in userids}
            targets = [m for m in cards if m.touser.lower() in wanted]
            invalid = sorted(wanted - {m.touser.lower() for m in cards})
        code.used = True
        for target in targets:
            if isinstance(card, dict):
                target.card, target.replaced_name = copy.deepcopy(card), None
            else:
                target.replaced_name = replace_name
            target.updates += 1
        await self._wake()
        return {"invaliduser": invalid}

    async def _user_get(
        self, request: web.Request, query: dict[str, str], body: dict[str, Any]
    ) -> dict[str, Any]:
        """user/get (90196): a member the app can see, by userid: its name (scripted staff's
        `name`); 60111 for anyone else."""
        member = self.staff_members.get(str(query.get("userid") or "").lower())
        if member is None:
            raise Refusal(60111, "userid not found")
        return {"userid": member.userid, "name": member.name, "status": 1}

    # -- the web sign-in --------------------------------------------------------------------

    def sign_in_as(self, userid: str) -> None:
        """The phone that follows the app's links is signed in to WeCom as this member."""
        self.signed_in, self.signed_in_outsider = userid, None

    def sign_in_outsider(self, openid: str = "oSTANDINoutsider0001") -> None:
        """...or as someone outside the corp (a WeChat user: getuserinfo gives an openid)."""
        self.signed_in, self.signed_in_outsider = None, openid

    def _refuse_authorize(self, errcode: int, why: str) -> web.Response:
        """WeCom's error page (it shows the errcode and stays there)."""
        self.authorized.append((400, why))
        page = f"<html><body><p>错误码:{errcode}</p><p>{why}</p></body></html>"
        return web.Response(status=400, text=page, content_type="text/html")

    async def _authorize(self, request: web.Request) -> web.StreamResponse:
        """connect/oauth2/authorize (91022), as the member's phone opens it: the parameters
        checked as WeCom documents them, then a redirect to `redirect_uri` with `code` and
        `state` added to its query. Outside the WeCom app (nobody signed in) WeCom shows a page
        that asks to open the link in WeCom."""
        q = request.query
        if q.get("appid") != self.corp_id:
            return self._refuse_authorize(40013, "invalid appid: not the corp id")
        redirect = q.get("redirect_uri", "")
        parts = urlsplit(redirect)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            return self._refuse_authorize(40058, "redirect_uri is not a URL")
        if q.get("response_type") != "code":
            return self._refuse_authorize(40058, "response_type must be code")
        scope = q.get("scope", "")
        if scope not in ("snsapi_base", "snsapi_privateinfo"):
            return self._refuse_authorize(40058, "scope: snsapi_base or snsapi_privateinfo")
        agent_id = q.get("agentid")
        if scope == "snsapi_privateinfo" and not agent_id:
            return self._refuse_authorize(41011, "snsapi_privateinfo needs agentid")
        if agent_id is not None and agent_id != str(self.agent_id):
            return self._refuse_authorize(40056, "invalid agentid")
        state = q.get("state", "")
        if not OAUTH_STATE.fullmatch(state):
            return self._refuse_authorize(40058, "state: at most 128 of a-zA-Z0-9")
        if self.trusted_domain is not None and parts.hostname != self.trusted_domain:
            return self._refuse_authorize(50001, "redirect_uri is not the app's trusted domain")
        if self.signed_in is None and self.signed_in_outsider is None:
            self.authorized.append((403, "not in WeCom"))
            page = "<html><body><p>请在企业微信客户端打开链接</p></body></html>"
            return web.Response(status=403, text=page, content_type="text/html")
        code = _random(32, string.ascii_letters + string.digits)
        self.oauth_codes[code] = OAuthCode(
            self.signed_in,
            self.signed_in_outsider,
            self.clock(),
            int(agent_id) if agent_id else None,
        )
        added = urlencode({"code": code, "state": state})
        query = f"{parts.query}&{added}" if parts.query else added
        self.authorized.append((302, "signed in"))
        raise web.HTTPFound(urlunsplit(parts._replace(query=query)))

    async def _getuserinfo(
        self, request: web.Request, query: dict[str, str], body: dict[str, Any]
    ) -> dict[str, Any]:
        """auth/getuserinfo (91023), with the app's token: whom a sign-in's code names, a
        member's userid (or an outsider's openid). Once, within 5 minutes: 40029 otherwise."""
        given = str(query.get("code") or "")
        if not given:
            raise Refusal(41008, "missing code")
        code = self.oauth_codes.pop(given, None)  # used up, whatever comes of it
        if code is None or self.clock() - code.issued_at > OAUTH_CODE_TTL:
            raise Refusal(INVALID_CODE, "invalid code")
        if code.agent_id is not None and code.agent_id != self.agent_id:
            raise Refusal(INVALID_CODE, "invalid code: another app's")
        if code.userid is not None:  # no user_ticket: that is snsapi_privateinfo's, not kept here
            return {"userid": code.userid}
        return {"openid": code.openid, "external_userid": ""}

    async def _pic(self, request: web.Request) -> web.Response:
        media = self._media_of(request.match_info["media_id"])
        if media is None:
            raise web.HTTPNotFound()
        return web.Response(body=media.data, content_type=CONTENT_TYPES[media.kind])

    # -- accounts, customers, media --------------------------------------------------------

    def add_account(self, open_kfid: str) -> None:
        """Another customer-service account of the corp."""
        self.accounts.add(open_kfid)
        self.logs.setdefault(open_kfid, [])

    def customer(
        self, external_userid: str, name: str = "小李", open_kfid: str | None = None
    ) -> Customer:
        customer = Customer(self, external_userid, name, open_kfid or self.open_kfid)
        self.add_account(customer.open_kfid)
        self.customers[external_userid] = customer
        return customer

    def add_media(self, data: bytes, kind: str = "image", filename: str | None = None) -> str:
        """Keep a file as WeCom's media (3 days); its media_id."""
        if kind not in MEDIA_LIMITS:
            raise ValueError(f"no media type {kind!r}")
        media_id = f"{next(self._ids)}{_random(40, string.ascii_letters + string.digits + '-_')}"
        ext = {"image": "jpg", "voice": "amr", "video": "mp4", "file": "bin"}[kind]
        self.media[media_id] = Media(kind, data, filename or f"{kind}.{ext}", self.clock())
        return media_id

    def _media_of(self, media_id: str) -> Media | None:
        media = self.media.get(media_id)
        if media is None or self.clock() - media.created_at > MEDIA_TTL:
            return None
        return media

    def _session(self, open_kfid: str, external_userid: str) -> Session:
        return self.sessions.setdefault((open_kfid, external_userid), Session())

    def session(self, customer: Customer | str) -> Session:
        """The customer's session (state, window) with their account."""
        return self._session(*self._key(customer))

    def _key(self, customer: Customer | str) -> tuple[str, str]:
        if isinstance(customer, str):
            known = self.customers.get(customer)
            return (known.open_kfid if known else self.open_kfid), customer
        return customer.open_kfid, customer.external_userid

    def end_session(self, customer: Customer | str) -> None:
        """The session ends (a servicer closed it, or it timed out): sends answer 95013 until
        the customer writes again."""
        self.session(customer).state = ENDED

    def hand_to_servicer(
        self, customer: Customer | str, servicer_userid: str = "zhangsan"
    ) -> None:
        """A human servicer takes the session (state 3): the API may no longer send."""
        session = self.session(customer)
        session.state, session.servicer_userid = SERVICER, servicer_userid

    def _new_msgid(self) -> str:
        return f"from_msgid_{next(self._ids)}{_random(12, string.digits)}"

    def _new_code(self, open_kfid: str, external_userid: str) -> str:
        code = _random(43, string.ascii_letters + string.digits + "-_")
        self._codes[code] = EventCode(open_kfid, external_userid, self.clock())
        return code

    def customer_message(
        self, customer: Customer, msgtype: str, content: dict[str, Any]
    ) -> dict[str, Any]:
        """A message from the customer (origin 3): it opens WeCom's window again."""
        now = self.clock()
        message = {
            "msgid": self._new_msgid(),
            "open_kfid": customer.open_kfid,
            "external_userid": customer.external_userid,
            "send_time": int(now),
            "origin": 3,
            "msgtype": msgtype,
            msgtype: dict(content),
        }
        session = self._session(customer.open_kfid, customer.external_userid)
        if session.state == ENDED:
            session.state, session.servicer_userid = NEW, ""
        session.last_customer_at = now
        session.sent_since = 0
        return self._append(customer.open_kfid, message)

    def servicer_message(
        self, customer: Customer | str, text: str, servicer_userid: str = "zhangsan"
    ) -> dict[str, Any]:
        """A human servicer writes from WeCom's own app (origin 5)."""
        open_kfid, user = self._key(customer)
        message = {
            "msgid": self._new_msgid(),
            "open_kfid": open_kfid,
            "external_userid": user,
            "send_time": int(self.clock()),
            "origin": 5,
            "servicer_userid": servicer_userid,
            "msgtype": "text",
            "text": {"content": text},
        }
        return self._append(open_kfid, message)

    def event(
        self, event_type: str, open_kfid: str | None = None, **fields: Any
    ) -> dict[str, Any]:
        """A system event (origin 4): `msg_send_fail`, `servicer_status_change`, ... As in
        WeCom's documentation the account and the customer are inside `event`."""
        open_kfid = open_kfid or self.open_kfid
        message = {
            "msgid": self._new_msgid(),
            "send_time": int(self.clock()),
            "origin": 4,
            "msgtype": "event",
            "event": {"event_type": event_type, "open_kfid": open_kfid, **fields},
        }
        return self._append(open_kfid, message)

    def enter_session(
        self,
        customer: Customer,
        scene: str = "",
        scene_param: str | None = None,
        welcome: bool | None = None,
    ) -> dict[str, Any]:
        now = self.clock()
        session = self._session(customer.open_kfid, customer.external_userid)
        if session.state == ENDED:
            session.state, session.servicer_userid = NEW, ""
        if welcome is None:
            welcome = (session.welcomed_at is None or now - session.welcomed_at > WINDOW) and (
                session.last_customer_at is None or now - session.last_customer_at > WINDOW
            )
        fields: dict[str, Any] = {"external_userid": customer.external_userid, "scene": scene}
        if scene_param is not None:
            fields["scene_param"] = scene_param
        if welcome:
            fields["welcome_code"] = self._new_code(customer.open_kfid, customer.external_userid)
        return self.event("enter_session", customer.open_kfid, **fields)

    def message_failed(self, sent: SentMessage | str, fail_type: int = 0) -> dict[str, Any]:
        """WeChat did not deliver a message the bot sent (a msg_send_fail event)."""
        if isinstance(sent, str):
            sent = self._by_msgid[sent]
        return self.event(
            "msg_send_fail",
            sent.open_kfid,
            external_userid=sent.touser,
            fail_msgid=sent.msgid,
            fail_type=fail_type,
        )

    def menu_item(
        self, external_userid: str, menu_id: str | None = None, label: str | None = None
    ) -> tuple[str, str]:
        """(id, content) of a click item on the newest menu sent to the customer that has it."""
        for sent in reversed(self.sent):
            if sent.touser != external_userid or sent.msgtype != "msgmenu":
                continue
            for item in _items(sent.menu):
                click = item.get("click") if item.get("type") == "click" else None
                if click and (click["id"] == menu_id or click["content"] == label):
                    return str(click["id"]), str(click["content"])
        raise LookupError(f"no menu item {menu_id or label!r} sent to {external_userid}")

    def _append(self, open_kfid: str, message: dict[str, Any]) -> dict[str, Any]:
        self.logs[open_kfid].append(message)
        self._callback_soon(open_kfid)
        self._wake_soon()
        return message

    # -- the desk's settings -----------------------------------------------------------------

    def customer_service_settings(self) -> dict[str, str]:
        """The settings that put a desk's WeChat customers on this stand-in (once started);
        its callback server takes a free port."""
        return {
            "wecom_corp_id": self.corp_id,
            "wecom_secret": self.secret,
            "wecom_token": self.token,
            "wecom_aes_key": self.aes_key,
            "wecom_open_kfid": self.open_kfid,
            "wecom_api_url": self.base_url,
            "http_port": "0",
        }

    def app_settings(self, staff: list[str], managers: list[str]) -> dict[str, str]:
        """The settings that make this stand-in's self-built app a desk's staff room."""
        return {
            "staff_room": "wecom",
            "wecom_corp_id": self.corp_id,
            "wecom_api_url": self.base_url,
            "http_port": "0",
            "wecom_agent_id": str(self.agent_id),
            "wecom_app_secret": self.app_secret,
            "wecom_app_token": self.app_token,
            "wecom_app_aes_key": self.app_aes_key,
            "wecom_staff_ids": ",".join(staff),
            "wecom_manager_ids": ",".join(managers),
            "wecom_oauth_url": self.base_url,  # the web sign-in (open.weixin.qq.com)
        }

    # -- callbacks -------------------------------------------------------------------------

    def set_callback(self, url: str | None) -> None:
        """Where the bot hears WeCom (its callback URL); until set, nothing is posted."""
        self.callback_url = url

    def _callback_soon(self, open_kfid: str) -> None:
        if not self.callback_url:
            return
        if self.coalesce_callbacks and open_kfid in self._queued:
            return
        self._queued.add(open_kfid)
        self._spawn(self._callback(open_kfid))

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _wake_soon(self) -> None:
        try:
            asyncio.get_running_loop()
        except RuntimeError:  # no running loop: nobody can be waiting
            return
        self._spawn(self._wake())

    def _http(self) -> aiohttp.ClientSession:
        if self._client is None or self._client.closed:
            self._client = aiohttp.ClientSession()
        return self._client

    def _signed(
        self,
        plain: str,
        token: str | None = None,
        crypto: WeComCrypto | None = None,
        agent_id: str = "",
        timestamp: float | None = None,
    ) -> tuple[dict[str, str], str]:
        """The query and XML body of a callback carrying `plain`, as WeCom posts it: encrypted
        with `crypto`'s key (the kf one unless given), signed with `token` (its Token)."""
        if crypto is None:
            crypto, token = self.crypto, token or self.token
        encrypted = crypto.encrypt(plain)
        stamp = str(int(self.callback_clock() if timestamp is None else timestamp))
        nonce = _random(10, string.digits)
        query = {
            "msg_signature": signature(token or crypto.token, stamp, nonce, encrypted),
            "timestamp": stamp,
            "nonce": nonce,
        }
        body = (
            f"<xml><ToUserName><![CDATA[{self.corp_id}]]></ToUserName>"
            f"<Encrypt><![CDATA[{encrypted}]]></Encrypt>"
            f"<AgentID><![CDATA[{agent_id}]]></AgentID></xml>"
        )
        return query, body

    def _event_xml(self, msg_token: str, open_kfid: str) -> str:
        return (
            f"<xml><ToUserName><![CDATA[{self.corp_id}]]></ToUserName>"
            f"<CreateTime>{int(self.clock())}</CreateTime>"
            "<MsgType><![CDATA[event]]></MsgType>"
            "<Event><![CDATA[kf_msg_or_event]]></Event>"
            f"<Token><![CDATA[{msg_token}]]></Token>"
            f"<OpenKfId><![CDATA[{open_kfid}]]></OpenKfId></xml>"
        )

    async def _callback(self, open_kfid: str) -> None:
        try:
            if self.callback_delay:
                await asyncio.sleep(self.callback_delay)
        finally:
            self._queued.discard(open_kfid)
        url = self.callback_url
        if not url:
            return
        msg_token = "ENC" + _random(44, string.ascii_letters + string.digits)
        self._msg_tokens[msg_token] = (open_kfid, self.clock())
        query, body = self._signed(self._event_xml(msg_token, open_kfid))
        number = next(self._callback_ids)
        for attempt in range(1, self.callback_attempts + 1):
            status, answer, seconds, error = await self._post_callback(url, query, body)
            self.callbacks.append(
                CallbackAttempt(number, attempt, msg_token, status, answer, seconds, error)
            )
            await self._wake()
            if status is not None and status < 500:
                return

    async def _post_callback(
        self, url: str, query: dict[str, str], body: str
    ) -> tuple[int | None, str, float, str | None]:
        """One post of a callback: (status, answer, seconds, error); WeCom waits
        `callback_timeout` seconds for the answer."""
        started = time.monotonic()
        status: int | None = None
        answer, error = "", None
        try:
            async with self._http().post(
                url,
                params=query,
                data=body.encode(),
                headers={"Content-Type": "text/xml"},
                timeout=aiohttp.ClientTimeout(total=self.callback_timeout),
            ) as response:
                status = response.status
                answer = await response.text()
        except TimeoutError:
            status, error = None, f"no answer within {self.callback_timeout}s"
        except aiohttp.ClientError as exc:
            status, error = None, repr(exc)
        return status, answer, time.monotonic() - started, error

    async def verify_url(self, url: str | None = None) -> tuple[int, str]:
        """WeCom's URL check (GET with an encrypted echostr) on `url` (the callback URL);
        (status, body). The bot passes if the body is `last_echo`."""
        url = url or self.callback_url
        if not url:
            raise ValueError("no callback URL")
        self.last_echo = _random(19, string.digits)
        encrypted = self.crypto.encrypt(self.last_echo)
        timestamp, nonce = str(int(self.callback_clock())), _random(10, string.digits)
        query = {
            "msg_signature": signature(self.token, timestamp, nonce, encrypted),
            "timestamp": timestamp,
            "nonce": nonce,
            "echostr": encrypted,
        }
        async with self._http().get(url, params=query) as response:
            return response.status, await response.text()

    async def post_forged_callback(self, url: str | None = None) -> int:
        """A callback that is not WeCom's (signed with another token); the status answered."""
        url = url or self.callback_url
        if not url:
            raise ValueError("no callback URL")
        forged = "ENC" + _random(44, string.ascii_letters + string.digits)  # never valid
        query, body = self._signed(self._event_xml(forged, self.open_kfid), "not-the-token")
        async with self._http().post(
            url, params=query, data=body.encode(), headers={"Content-Type": "text/xml"}
        ) as response:
            return response.status

    async def settle(self, timeout: float = 30.0) -> None:
        """Until every callback under way has been posted (and retried)."""
        deadline = time.monotonic() + timeout
        while self._tasks:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"callbacks still under way after {timeout}s")
            await asyncio.wait(list(self._tasks), timeout=remaining)

    # -- the app's staff and their callbacks -------------------------------------------------

    def staff(self, userid: str, name: str = "张三") -> Staff:
        """A member in the app's visible range (staff or a manager)."""
        member = Staff(self, userid, name)
        self.staff_members[userid.lower()] = member
        return member

    def set_app_callback(self, url: str | None) -> None:
        """The app's callback URL (接收消息); until set, staff actions are not posted."""
        self.app_callback_url = url

    def app_received(self, userid: str) -> list[AppMessage]:
        return [m for m in self.app_sent if m.touser.lower() == userid.lower()]

    def member_card(self, userid: str, task_id: str) -> AppMessage:
        """The member's card for `task_id`, as it now stands."""
        for sent in reversed(self.app_received(userid)):
            if sent.task_id == task_id:
                return sent
        raise LookupError(f"no card {task_id!r} delivered to {userid}")

    def staff_text(self, member: Staff, text: str) -> dict[str, str]:
        fields = self._app_fields(member, "text")
        fields["Content"] = text
        fields["MsgId"] = self._app_msg_id()
        return self._staff_acted(fields)

    def staff_image(self, member: Staff, media: bytes | str | None = None) -> dict[str, str]:
        if media is None or isinstance(media, bytes):
            media = self.add_media(SAMPLES["image"] if media is None else media, "image")
        fields = self._app_fields(member, "image")
        fields["PicUrl"] = f"{self.base_url}/standin/pic/{media}"
        fields["MediaId"] = media
        fields["MsgId"] = self._app_msg_id()
        return self._staff_acted(fields)

    def staff_file(self, member: Staff, data: bytes, filename: str) -> dict[str, str]:
        fields = self._app_fields(member, "file")
        fields["MediaId"] = self.add_media(data, "file", filename)
        fields["FileName"] = filename
        fields["MsgId"] = self._app_msg_id()
        return self._staff_acted(fields)

    def staff_tap(self, member: Staff, card: AppMessage | str, key: str) -> dict[str, str]:
        task_id = card if isinstance(card, str) else card.task_id
        if not task_id:
            raise ValueError("not a card")
        shown = self.member_card(member.userid, task_id)
        if not shown.clickable:
            raise ValueError(f"the buttons of {task_id!r} are greyed out ({shown.replaced_name})")
        if key not in shown.keys():
            raise LookupError(f"no button {key!r} on {task_id!r}: {shown.keys()}")
        fields = self._app_fields(member, "event")
        fields["Event"] = "template_card_event"
        fields["EventKey"] = key
        fields["TaskId"] = task_id
        fields["CardType"] = "button_interaction"
        fields["ResponseCode"] = self._new_response_code(task_id, member.userid)
        return self._staff_acted(fields)

    def _app_fields(self, member: Staff, msgtype: str) -> dict[str, str]:
        now = int(self.clock())
        if msgtype == "event":
            # WeCom tells a retried event from a new one by FromUserName + CreateTime: a person
            # does not tap twice within a second, scripted staff may, so theirs never share one
            now = max(now, self._event_times.get(member.userid, 0) + 1)
            self._event_times[member.userid] = now
        return {
            "ToUserName": self.corp_id,
            "FromUserName": member.userid,
            "CreateTime": str(now),
            "MsgType": msgtype,
        }

    def _app_msg_id(self) -> str:
        return str(7_000_000_000_000_000_000 + next(self._ids) * 1000 + secrets.randbelow(1000))

    def _staff_acted(self, fields: dict[str, str]) -> dict[str, str]:
        fields["AgentID"] = str(self.agent_id)
        if self.app_callback_url:
            self._spawn(self._app_callback(dict(fields)))
        self._wake_soon()
        return fields

    async def _app_callback(self, fields: dict[str, str]) -> None:
        """Post a staff member's message or tap to the app's callback URL, encrypted and signed
        with the app's key and Token; posted again (the very same body) when not answered in
        time, as WeCom does (90930: three times in all, five seconds each)."""
        url = self.app_callback_url
        if not url:
            return
        query, body = self._signed(
            _app_xml(fields), self.app_token, self.app_crypto, str(self.agent_id)
        )
        number = next(self._app_callback_ids)
        kind = fields.get("Event") or fields["MsgType"]
        for attempt in range(1, self.callback_attempts + 1):
            status, answer, seconds, error = await self._post_callback(url, query, body)
            self.app_callbacks.append(
                AppCallbackAttempt(
                    number,
                    attempt,
                    kind,
                    fields["FromUserName"],
                    fields.get("MsgId"),
                    int(fields["CreateTime"]),
                    status,
                    answer,
                    seconds,
                    error,
                )
            )
            await self._wake()
            if status is not None and status < 500:
                return

    def app_callback_body(
        self,
        text: str = "在吗",
        userid: str = "zhangsan",
        token: str | None = None,
        timestamp: float | None = None,
    ) -> tuple[dict[str, str], str]:
        """The query and body of a staff text callback, signed with `token` (the app's unless
        given) at `timestamp` (now unless given): to post by hand."""
        fields = {
            "ToUserName": self.corp_id,
            "FromUserName": userid,
            "CreateTime": str(int(self.clock())),
            "MsgType": "text",
            "Content": text,
            "MsgId": self._app_msg_id(),
            "AgentID": str(self.agent_id),
        }
        return self._signed(
            _app_xml(fields),
            token or self.app_token,
            self.app_crypto,
            str(self.agent_id),
            timestamp,
        )

    async def _post_app(self, query: dict[str, str], body: str, url: str | None) -> int:
        url = url or self.app_callback_url
        if not url:
            raise ValueError("no app callback URL")
        async with self._http().post(
            url, params=query, data=body.encode(), headers={"Content-Type": "text/xml"}
        ) as response:
            return response.status

    async def post_forged_app_callback(self, url: str | None = None) -> int:
        """A staff text that is not WeCom's (signed with another Token); the status answered."""
        return await self._post_app(*self.app_callback_body(token="not-the-token"), url)

    async def post_old_app_callback(self, seconds: float = 600, url: str | None = None) -> int:
        """A staff text rightly signed, but `seconds` ago (a recorded callback posted again);
        the status answered."""
        query, body = self.app_callback_body(timestamp=self.callback_clock() - seconds)
        return await self._post_app(query, body, url)

    async def verify_app_url(self, url: str | None = None) -> tuple[int, str]:
        """WeCom's check of the app's callback URL (GET with an encrypted echostr); (status,
        body). The desk passes if the body is `last_echo`."""
        url = url or self.app_callback_url
        if not url:
            raise ValueError("no app callback URL")
        self.last_echo = _random(19, string.digits)
        encrypted = self.app_crypto.encrypt(self.last_echo)
        timestamp, nonce = str(int(self.callback_clock())), _random(10, string.digits)
        query = {
            "msg_signature": signature(self.app_token, timestamp, nonce, encrypted),
            "timestamp": timestamp,
            "nonce": nonce,
            "echostr": encrypted,
        }
        async with self._http().get(url, params=query) as response:
            return response.status, await response.text()

    @property
    def app_callback_retries(self) -> int:
        """App callbacks posted again because the desk did not answer (in time, or at all)."""
        return sum(1 for a in self.app_callbacks if a.attempt > 1)

    # -- what tests look at ----------------------------------------------------------------

    async def _wake(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    def sent_to(self, external_userid: str) -> list[SentMessage]:
        return [s for s in self.sent if s.touser == external_userid]

    async def until(self, condition: Callable[[], bool], timeout: float = 15.0) -> None:
        """Until `condition()` holds, looked at each time something happens (a barrier)."""
        await until(self._changed, condition, timeout)

    async def _first(
        self, seen: Callable[[], list[T]], predicate: Callable[[T], bool], timeout: float
    ) -> T:
        """The first of `seen()` that matches; waits for it (TimeoutError lists what came)."""
        found: list[T] = []

        def matched() -> bool:
            found[:] = [item for item in seen() if predicate(item)][:1]
            return bool(found)

        try:
            await self.until(matched, timeout)
        except TimeoutError:
            came = "\n".join(f"  {item!r:.160}" for item in seen())
            raise TimeoutError(f"nothing matching within {timeout}s; came:\n{came}") from None
        return found[0]

    async def wait_sent(
        self, predicate: Callable[[SentMessage], bool], timeout: float = 10.0, after: int = 0
    ) -> SentMessage:
        """The first message sent (from index `after` on) that matches; waits for it."""
        return await self._first(lambda: self.sent[after:], predicate, timeout)

    async def wait_text(
        self, external_userid: str, needle: str, timeout: float = 10.0, after: int = 0
    ) -> SentMessage:
        return await self.wait_sent(
            lambda s: s.touser == external_userid and needle in s.text, timeout, after
        )

    async def wait_webhook(
        self, predicate: Callable[[WebhookMessage], bool], timeout: float = 10.0, after: int = 0
    ) -> WebhookMessage:
        """The first group-robot message (from index `after` on) that matches; waits for it."""
        return await self._first(lambda: self.webhook_sent[after:], predicate, timeout)

    async def wait_callbacks(self, count: int, timeout: float = 15.0) -> None:
        """Until `count` callback attempts have been made."""
        await self.until(lambda: len(self.callbacks) >= count, timeout)

    async def wait_calls(self, path: str, count: int, timeout: float = 30.0) -> None:
        """Until the bot has called `path` ("kf/sync_msg", ...) at least `count` times."""
        await self.until(lambda: sum(1 for p, _ in self.calls if p == path) >= count, timeout)

    async def wait_app_sent(
        self, predicate: Callable[[AppMessage], bool], timeout: float = 10.0, after: int = 0
    ) -> AppMessage:
        """The first message the app delivered (from index `after` of `app_sent` on) that
        matches; waits for it."""
        return await self._first(lambda: self.app_sent[after:], predicate, timeout)

    async def wait_app_callbacks(self, count: int, timeout: float = 15.0) -> None:
        """Until `count` app callback attempts have been made."""
        await self.until(lambda: len(self.app_callbacks) >= count, timeout)


def _random(length: int, alphabet: str) -> str:
    return "".join(secrets.choice(alphabet) for _ in range(length))


def _bytes(text: str) -> int:
    return len(text.encode())


def _cut(text: str, limit: int = APP_TEXT_BYTES) -> tuple[str, bool]:
    """The text as WeCom delivers it: cut at `limit` bytes (whole characters), and whether it
    was."""
    data = text.encode()
    if len(data) <= limit:
        return text, False
    return data[:limit].decode(errors="ignore"), True


def _buttons(card: dict[str, Any] | None) -> list[dict[str, Any]]:
    buttons = (card or {}).get("button_list") or []
    return [b for b in buttons if isinstance(b, dict)]


def _cdata(text: str) -> str:
    return "<![CDATA[" + text.replace("]]>", "]]]]><![CDATA[>") + "]]>"


NUMERIC_FIELDS = {"CreateTime", "MsgId", "AgentID"}


def _app_xml(fields: dict[str, str]) -> str:
    """An app callback's plain XML (90240): numbers bare, text in CDATA."""
    inner = "".join(
        f"<{name}>{value if name in NUMERIC_FIELDS else _cdata(value)}</{name}>"
        for name, value in fields.items()
    )
    return f"<xml>{inner}</xml>"


def _cursor(open_kfid: str, position: int) -> str:
    return base64.urlsafe_b64encode(f"kf:{open_kfid}|{position}".encode()).decode().rstrip("=")


def _public(query: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in query.items() if k not in ("access_token", "corpsecret")}


def _items(menu: dict[str, Any] | None) -> list[dict[str, Any]]:
    items = (menu or {}).get("list") or []
    return [i for i in items if isinstance(i, dict) and isinstance(i.get(i.get("type")), dict)]


def _check_menu(menu: dict[str, Any]) -> str:
    """A msgmenu checked as WeCom does; the lines a customer sees."""
    head, tail = str(menu.get("head_content") or ""), str(menu.get("tail_content") or "")
    if _bytes(head) > MENU_TEXT_BYTES or _bytes(tail) > MENU_TEXT_BYTES:
        raise Refusal(45002, f"head_content or tail_content over {MENU_TEXT_BYTES} bytes")
    items = menu.get("list") or []
    if not isinstance(items, list) or len(items) > MENU_ITEMS:
        raise Refusal(40058, f"msgmenu.list: at most {MENU_ITEMS} items")
    lines = [head] if head else []
    needs = {
        "click": ("id", "content"),
        "view": ("url", "content"),
        "miniprogram": ("appid", "pagepath", "content"),
        "text": ("content",),
    }
    for item in items:
        kind = item.get("type") if isinstance(item, dict) else None
        if kind not in needs or not isinstance(item.get(kind), dict):
            raise Refusal(40058, f"invalid msgmenu item {item!r}")
        fields = item[kind]
        for name in needs[kind]:
            if not str(fields.get(name) or ""):
                raise Refusal(40058, f"msgmenu {kind} item needs {name}")
        if kind == "click" and (
            _bytes(str(fields["id"])) > MENU_ITEM_BYTES
            or _bytes(str(fields["content"])) > MENU_ITEM_BYTES
        ):
            raise Refusal(45002, f"a click item's id and content: at most {MENU_ITEM_BYTES} bytes")
        lines.append(str(fields["content"]))
    if tail:
        lines.append(tail)
    if not lines:
        raise Refusal(44004, "empty msgmenu")
    return "\n".join(lines)
