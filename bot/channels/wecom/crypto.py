"""WeCom's callback crypto (WXBizMsgCrypt): a SHA-1 signature over the token, timestamp, nonce
and the encrypted text; AES-256-CBC with the 43-character EncodingAESKey (the IV is the key's
first 16 bytes), PKCS#7 padding to 32-byte blocks, and the plain text framed as
16 random bytes + 4-byte length + message + receive_id (the corp id).

A callback is checked before anything in it is believed: its Encrypt element is found without
parsing the XML (base64 only), the signature over it is checked, then the timestamp (within
five minutes of now, either way: a callback recorded and posted again later is refused); only
then is the XML parsed, by defusedxml (no DTD entities, no external references), and the
decrypted event too.

Written on the `cryptography` package; checked against the known answers of WeCom's own sample
(`tests/unit/test_wecom_crypto.py`)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import struct
from xml.etree.ElementTree import Element, ParseError

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from defusedxml import DefusedXmlException
from defusedxml import ElementTree as SafeET

BLOCK = 32  # WeCom pads to 32 bytes, not AES's 16
MAX_SKEW = 300.0  # seconds a callback's timestamp may be from now, either way
ENCRYPT = re.compile(
    rb"<Encrypt>\s*(?:<!\[CDATA\[([A-Za-z0-9+/=]+)\]\]>|([A-Za-z0-9+/=]+))\s*</Encrypt>"
)


class CryptoError(ValueError):
    """A callback that is not WeCom's, or not now: a bad signature, key, padding or receive_id,
    a timestamp too far from now, or XML that is not plain data."""


def signature(token: str, timestamp: str, nonce: str, encrypted: str) -> str:
    """msg_signature: SHA-1 of the four strings, sorted and joined."""
    return hashlib.sha1("".join(sorted([token, timestamp, nonce, encrypted])).encode()).hexdigest()


def check_timestamp(timestamp: str, now: float, max_skew: float = MAX_SKEW) -> None:
    """The callback's timestamp (seconds) is within `max_skew` of `now`, either way."""
    try:
        sent = int(timestamp)
    except ValueError:
        raise CryptoError("the timestamp is not a number") from None
    if abs(now - sent) > max_skew:
        raise CryptoError(f"the timestamp is {now - sent:+.0f} s from now")


def encrypted_of(body: bytes) -> str:
    """The Encrypt element's text, found without parsing the XML (it is not trusted yet): one
    element, base64 only."""
    found = ENCRYPT.findall(body)
    if len(found) != 1:
        raise CryptoError("not one Encrypt element")
    cdata, plain = found[0]
    return bytes(cdata or plain).decode("ascii")


def parse_xml(text: str | bytes) -> Element:
    """XML as plain data: defusedxml refuses entities, DTDs that declare them and external
    references, so nothing is expanded or fetched."""
    try:
        return SafeET.fromstring(text)
    except (ParseError, DefusedXmlException) as exc:
        raise CryptoError(f"XML refused: {type(exc).__name__}") from None


class WeComCrypto:
    def __init__(self, token: str, encoding_aes_key: str, receive_id: str) -> None:
        if len(encoding_aes_key) != 43:
            raise CryptoError("the EncodingAESKey has 43 characters")
        try:
            self.key = base64.b64decode(encoding_aes_key + "=")
        except ValueError as exc:
            raise CryptoError("the EncodingAESKey is not base64") from exc
        if len(self.key) != 32:
            raise CryptoError("the EncodingAESKey does not decode to 32 bytes")
        self.token = token
        self.receive_id = receive_id

    def _cipher(self) -> Cipher[modes.CBC]:
        return Cipher(algorithms.AES(self.key), modes.CBC(self.key[:16]))

    def check(self, msg_signature: str, timestamp: str, nonce: str, encrypted: str) -> None:
        expected = signature(self.token, timestamp, nonce, encrypted)
        if not hmac.compare_digest(expected, (msg_signature or "").lower()):
            raise CryptoError("bad signature")

    def decrypt(self, encrypted: str) -> str:
        """The plain message inside `encrypted` (whose receive_id must be ours)."""
        try:
            data = base64.b64decode(encrypted)
        except ValueError as exc:
            raise CryptoError("not base64") from exc
        if not data or len(data) % 16:
            raise CryptoError("not whole AES blocks")
        decryptor = self._cipher().decryptor()
        padded = decryptor.update(data) + decryptor.finalize()
        pad = padded[-1]
        if not 1 <= pad <= BLOCK or padded[-pad:] != bytes([pad]) * pad:
            raise CryptoError("bad padding")
        plain = padded[:-pad]
        if len(plain) < 20:
            raise CryptoError("too short")
        (length,) = struct.unpack(">I", plain[16:20])
        message, receive_id = plain[20 : 20 + length], plain[20 + length :]
        if len(message) != length or receive_id.decode(errors="replace") != self.receive_id:
            raise CryptoError("not for this receive_id")
        return message.decode()

    def encrypt(self, message: str, random16: bytes | None = None) -> str:
        body = message.encode()
        plain = (random16 or os.urandom(16)) + struct.pack(">I", len(body)) + body
        plain += self.receive_id.encode()
        pad = BLOCK - len(plain) % BLOCK
        plain += bytes([pad]) * pad
        encryptor = self._cipher().encryptor()
        return base64.b64encode(encryptor.update(plain) + encryptor.finalize()).decode()

    def verify_url(self, msg_signature: str, timestamp: str, nonce: str, echostr: str) -> str:
        """The URL check (GET): the signature over echostr, and echostr's plain text."""
        self.check(msg_signature, timestamp, nonce, echostr)
        return self.decrypt(echostr)

    def open(self, msg_signature: str, timestamp: str, nonce: str, encrypted: str) -> str:
        """A callback (POST): checked, then decrypted."""
        self.check(msg_signature, timestamp, nonce, encrypted)
        return self.decrypt(encrypted)

    def answer_url_check(
        self, msg_signature: str, timestamp: str, nonce: str, echostr: str, now: float
    ) -> str:
        """The URL check as the callback server answers it: signed, and signed now."""
        self.check(msg_signature, timestamp, nonce, echostr)
        check_timestamp(timestamp, now)
        return self.decrypt(echostr)

    def open_callback(
        self, msg_signature: str, timestamp: str, nonce: str, body: bytes, now: float
    ) -> Element:
        """A posted callback's event: the signature and the timestamp are checked before the
        XML is parsed (safely), and the Encrypt the parser finds must be the one signed."""
        encrypted = encrypted_of(body)
        self.check(msg_signature, timestamp, nonce, encrypted)
        check_timestamp(timestamp, now)
        if (parse_xml(body).findtext("Encrypt") or "").strip() != encrypted:
            raise CryptoError("the Encrypt element is not the one signed")
        return parse_xml(self.decrypt(encrypted))
