"""A WeCom callback is believed only when WeCom signed it, and signed it now: the signature is
checked before the XML is parsed, the timestamp within five minutes of the desk's clock, and
the XML parsed by defusedxml (no entity is expanded)."""

from __future__ import annotations

import xml.etree.ElementTree

import defusedxml.ElementTree
import pytest

from bot.channels.wecom.crypto import CryptoError, WeComCrypto, signature

TOKEN = "hJqcu3uJ9Tn2gXPmxx2w9kkCkCE2EPYo"
KEY = "6qkdMrq68nTKduznJYO1A37W2oEgpkMUvkttRToqhUt"
CORP = "ww1436e0e65a779aee"
SENT = 1_795_000_000  # when the callbacks below were signed (a fixed "now", in seconds)
EVENT = (
    "<xml><ToUserName><![CDATA[ww1436e0e65a779aee]]></ToUserName>"
    "<MsgType><![CDATA[event]]></MsgType><Event><![CDATA[kf_msg_or_event]]></Event>"
    "<Token><![CDATA[ENCtoken]]></Token><OpenKfId><![CDATA[wk1]]></OpenKfId></xml>"
)
BOMB_DTD = (
    '<!DOCTYPE xml [<!ENTITY a "aaaaaaaaaa">'
    '<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;"><!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">'
    '<!ENTITY d "&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;"><!ENTITY e "&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;">]>'
)


def crypto() -> WeComCrypto:
    return WeComCrypto(TOKEN, KEY, CORP)


def posted(
    plain: str = EVENT, *, at: int = SENT, token: str = TOKEN, dtd: str = "", extra: str = ""
) -> tuple[dict[str, str], bytes]:
    """A callback's query and body, as WeCom posts it (with a DTD or more XML, if given)."""
    encrypted = crypto().encrypt(plain)
    query = {
        "msg_signature": signature(token, str(at), "1597212914", encrypted),
        "timestamp": str(at),
        "nonce": "1597212914",
    }
    body = (
        f"{dtd}<xml><ToUserName><![CDATA[{CORP}]]></ToUserName>{extra}"
        f"<Encrypt><![CDATA[{encrypted}]]></Encrypt><AgentID><![CDATA[]]></AgentID></xml>"
    )
    return query, body.encode()


def open_posted(query: dict[str, str], body: bytes, now: float = SENT) -> object:
    q = query
    return crypto().open_callback(q["msg_signature"], q["timestamp"], q["nonce"], body, now)


def test_a_callback_signed_now_opens_to_its_event() -> None:
    """Signed by WeCom within five minutes either way: the event inside is read."""
    query, body = posted()
    for now in (SENT, SENT + 300, SENT - 300):
        event = crypto().open_callback(
            query["msg_signature"], query["timestamp"], query["nonce"], body, now
        )
        assert event.findtext("Event") == "kf_msg_or_event"
        assert event.findtext("Token") == "ENCtoken"


def test_an_old_or_future_callback_is_refused_though_correctly_signed() -> None:
    """A callback signed more than five minutes before or after now is a replay: refused."""
    query, body = posted()
    with pytest.raises(CryptoError, match="timestamp"):
        open_posted(query, body, now=SENT + 301)
    with pytest.raises(CryptoError, match="timestamp"):
        open_posted(query, body, now=SENT - 301)
    bad = {**posted(at=0)[0], "timestamp": "yesterday"}
    with pytest.raises(CryptoError):
        open_posted(bad, body)


def test_the_url_check_is_refused_when_old() -> None:
    """The URL check (GET) is answered only when signed now."""
    echostr = crypto().encrypt("1288432023552776189")
    signed = signature(TOKEN, str(SENT), "47744683", echostr)
    c = crypto()
    assert (
        c.answer_url_check(signed, str(SENT), "47744683", echostr, SENT) == "1288432023552776189"
    )
    with pytest.raises(CryptoError, match="timestamp"):
        c.answer_url_check(signed, str(SENT), "47744683", echostr, SENT + 3600)


def test_a_forged_xml_bomb_is_refused_by_its_signature_before_any_parsing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A bomb signed with another token is refused for its signature; no XML parser ran."""
    parsed: list[object] = []
    for module in (xml.etree.ElementTree, defusedxml.ElementTree):
        for name in ("fromstring", "XML", "parse"):
            original = getattr(module, name)
            monkeypatch.setattr(
                module, name, lambda *a, _f=original, **k: parsed.append(a) or _f(*a, **k)
            )
    query, body = posted(token="not-the-token", dtd=BOMB_DTD, extra="<X>&e;</X>")
    with pytest.raises(CryptoError, match="signature"):
        open_posted(query, body)
    assert parsed == []


def test_a_correctly_signed_xml_bomb_is_refused_not_expanded() -> None:
    """The signature covers only the Encrypt text, so a bomb can wrap a real one: defusedxml
    refuses its entities."""
    query, body = posted(dtd=BOMB_DTD, extra="<X>&e;</X>")
    with pytest.raises(CryptoError, match="EntitiesForbidden"):
        open_posted(query, body)


def test_a_second_or_hidden_encrypt_element_is_refused() -> None:
    """Two Encrypt elements, or a signed one the parser does not see (in a comment), are
    refused."""
    query, body = posted()
    twice = body.replace(b"<AgentID>", b"<Encrypt>QUJD</Encrypt><AgentID>")
    with pytest.raises(CryptoError, match="one Encrypt"):
        open_posted(query, twice)
    hidden = body.replace(b"<Encrypt>", b"<!--<Encrypt>").replace(b"</Encrypt>", b"</Encrypt>-->")
    with pytest.raises(CryptoError, match="not the one signed"):
        open_posted(query, hidden)
