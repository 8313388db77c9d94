"""The desk's texts as WeChat shows them: plain text, in pieces WeCom accepts."""

from __future__ import annotations

import html
import re

TEXT_BYTES = 2048  # kf/send_msg's and a group robot's most for a text


def plain_text(rendered: str) -> str:
    """The desk's HTML texts as WeChat shows text: tags dropped, entities read."""
    text = re.sub(r"<br\s*/?>", "\n", rendered)
    text = re.sub(r"<[^>]+>", "", text)
    return html.unescape(text).strip()


def split_bytes(text: str, limit: int = TEXT_BYTES) -> list[str]:
    """Pieces of at most `limit` UTF-8 bytes, cut at line or sentence ends where possible."""
    pieces: list[str] = []
    rest = text
    while len(rest.encode()) > limit:
        cut = len(rest)
        while len(rest[:cut].encode()) > limit:
            cut = int(cut * 0.9)
        window = rest[:cut]
        at = max(window.rfind("\n"), window.rfind("。"), window.rfind(" "))
        if at > cut // 2:
            cut = at + 1
        pieces.append(rest[:cut])
        rest = rest[cut:]
    if rest:
        pieces.append(rest)
    return pieces


def cut_bytes(text: str, limit: int) -> str:
    """The text's start, at most `limit` UTF-8 bytes, with "…" when cut."""
    if len(text.encode()) <= limit:
        return text
    return split_bytes(text, limit - 3)[0].rstrip() + "…"
