"""WeCom's callback crypto against the known answers of WeCom's own sample code
(weworkapi_python, callback/Sample.py): the same token, key and corp id, the same requests."""

from __future__ import annotations

import pytest

from bot.channels.wecom.crypto import CryptoError, WeComCrypto, signature

TOKEN = "hJqcu3uJ9Tn2gXPmxx2w9kkCkCE2EPYo"
KEY = "6qkdMrq68nTKduznJYO1A37W2oEgpkMUvkttRToqhUt"
CORP = "ww1436e0e65a779aee"
ECHOSTR = (
    "fsi1xnbH4yQh0+PJxcOdhhK6TDXkjMyhEPA7xB2TGz6b+g7xyAbEkRxN/3cNXW9qdqjnoVzEtpbhnFyq6SVHyA=="
)
POSTED = (
    "Kl7kjoSf6DMD1zh7rtrHjFaDapSCkaOnwu3bqLc5tAybhhMl9pFeK8NslNPVdMwmBQTNoW4mY7AIjeLvEl3NyeTkAgG"
    "zBhzTtRLNshw2AEew+kkYcD+Fq72Kt00fT0WnN87hGrW8SqGc+NcT3mu87Ha3dz1pSDi6GaUA6A0sqfde0VJPQbZ9U+"
    "3JWcoD4Z5jaU0y9GSh010wsHF8KZD24YhmZH4ch4Ka7ilEbjbfvhKkNL65HHL0J6EYJIZUC2pFrdkJ7MhmEbU2qARR4"
    "iQHE7wy24qy0cRX3Mfp6iELcDNfSsPGjUQVDGxQDCWjayJOpcwocugux082f49HKYg84EpHSGXAyh+/oxwaWbvL6aSDP"
    "OYuPDGOCI8jmnKiypE+"
)


def crypto() -> WeComCrypto:
    return WeComCrypto(TOKEN, KEY, CORP)


def test_the_url_check_of_the_sample_passes_and_answers_its_echostr() -> None:
    """WeCom's sample GET (signature, timestamp, nonce, echostr) verifies and decrypts."""
    echoed = crypto().verify_url(
        "012bc692d0a58dd4b10f8dfe5c4ac00ae211ebeb", "1476416373", "47744683", ECHOSTR
    )
    assert echoed == "1288432023552776189"


def test_the_callback_of_the_sample_decrypts_to_its_message() -> None:
    """WeCom's sample POST verifies and decrypts to the message it carries."""
    plain = crypto().open(
        "0c3914025cb4b4d68103f6bfc8db550f79dcf48e", "1476422779", "1597212914", POSTED
    )
    assert plain == (
        "<xml><ToUserName>ww1436e0e65a779aee</ToUserName><FromUserName>ChenJiaShun"
        "</FromUserName><CreateTime>1476422779</CreateTime><MsgType>text</MsgType>"
        "<Content>你好</Content><MsgId>1456453720</MsgId><AgentID>1000002</AgentID></xml>"
    )


def test_a_bad_signature_or_another_corps_message_is_refused() -> None:
    """A wrong signature, or a message for another receive_id, raises CryptoError."""
    with pytest.raises(CryptoError):
        crypto().verify_url("0" * 40, "1476416373", "47744683", ECHOSTR)
    with pytest.raises(CryptoError):
        WeComCrypto(TOKEN, KEY, "ww0000000000000000").decrypt(ECHOSTR)


def test_what_the_desk_encrypts_decrypts_and_signs_the_same_way() -> None:
    """Encrypt, sign and open round-trip, Chinese included."""
    c = crypto()
    sealed = c.encrypt(
        '{"token":"ENCApHxnGDNAVNY4AaSJKj4Tb5mwsEMzxhFmHVGcra996NR","open_kfid":"wk"}'
    )
    opened = c.open(signature(TOKEN, "1", "2", sealed), "1", "2", sealed)
    assert opened.startswith('{"token"')
    assert c.decrypt(c.encrypt("花全蔫了")) == "花全蔫了"
