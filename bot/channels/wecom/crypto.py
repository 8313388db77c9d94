"""WeCom's callback crypto (WXBizMsgCrypt): a SHA-1 signature over the token, timestamp, nonce
and the encrypted text; AES-256-CBC with the 43-character EncodingAESKey (the IV is the key's
first 16 bytes), PKCS#7 padding to 32-byte blocks, and the plain text framed as
16 random bytes + 4-byte length + message + receive_id (the corp id).

Written on the `cryptography` package; checked against the known answers of WeCom's own sample
(`tests/unit/test_wecom_crypto.py`)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import struct

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

BLOCK = 32  # WeCom pads to 32 bytes, not AES's 16


class CryptoError(ValueError):
    """A callback that is not WeCom's: a bad signature, key, padding or receive_id."""


def signature(token: str, timestamp: str, nonce: str, encrypted: str) -> str:
    """msg_signature: SHA-1 of the four strings, sorted and joined."""
    return hashlib.sha1("".join(sorted([token, timestamp, nonce, encrypted])).encode()).hexdigest()


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
