"""X-Twilio-Signature: the reference's vectors, and how the public URL is rebuilt."""

import pytest

from voxline.access.proxies import proxy_networks
from voxline.telephony.security import SignatureChecker, public_base_url, sign, websocket_url

WEBHOOK_VECTORS = [
    (
        "12345",
        "https://example.com/myapp.php?foo=1&bar=2",
        {
            "Digits": "1234",
            "To": "+18005551212",
            "From": "+14158675310",
            "Caller": "+14158675310",
            "CallSid": "CA1234567890ABCDE",
        },
        "L/OH5YylLD5NRKLltdqwSvS0BnU=",
    ),
    (
        "12345",
        "https://mycompany.com/myapp.php?foo=1&bar=2",
        {
            "CallSid": "CA1234567890ABCDE",
            "Caller": "+14158675309",
            "Digits": "1234",
            "From": "+14158675309",
            "To": "+18005551212",
        },
        "RSOYDt4T1cUTdK1PDd93/VVr8B8=",
    ),
    (
        "12345",
        "https://mycompany.com:443/myapp.php?foo=1&bar=2",
        {
            "CallSid": "CA1234567890ABCDE",
            "Caller": "+14158675309",
            "Digits": "1234",
            "From": "+14158675309",
            "To": "+18005551212",
        },
        "kvajT1Ptam85bY51eRf/AJRuM3w=",
    ),
    (
        "twilio-test-token",
        "https://example.com/twilio/voice",
        {
            "AccountSid": "AC123",
            "CallSid": "CA123",
            "CallStatus": "ringing",
            "Called": "+14155550199",
            "Caller": "+14155550100",
            "From": "+14155550100",
            "To": "+14155550199",
        },
        "vTMYeb4FrYjNFHkuYMDv271CgVI=",
    ),
]


@pytest.mark.parametrize("token,url,params,signature", WEBHOOK_VECTORS)
def test_webhook_vectors(token, url, params, signature):
    checker = SignatureChecker(token)
    assert checker.webhook_ok(url, params, signature)
    assert not checker.webhook_ok(url, {**params, "Digits": "9"}, signature)
    assert not checker.webhook_ok(url, params, None)


def test_worked_example_string_to_sign():
    token, url, params, expected = WEBHOOK_VECTORS[0]
    assert sign(token, url, params) == expected


def test_empty_values_are_signed():
    params = {"CallSid": "CA1", "CallerCity": ""}
    signature = sign("12345", "https://example.com/voice", params)
    assert SignatureChecker("12345").webhook_ok("https://example.com/voice", params, signature)
    assert not SignatureChecker("12345").webhook_ok("https://example.com/voice", {"CallSid": "CA1"}, signature)


@pytest.mark.parametrize("signature", ["1DX023M83t7mHKlCACWdlfywnso=", "VNKhxPr5eib5c/UUIk3iIi1vPQk="])
def test_websocket_vectors_with_and_without_trailing_slash(signature):
    checker = SignatureChecker("12345")
    assert checker.websocket_ok("wss://example.ngrok-free.app/media-stream", signature)
    assert checker.websocket_ok("wss://example.ngrok-free.app/media-stream/", signature)
    assert not checker.websocket_ok("wss://other.example/media-stream", signature)
    assert not checker.websocket_ok("wss://example.ngrok-free.app/media-stream", "")


def test_no_token_means_no_check():
    assert SignatureChecker("").webhook_ok("https://x/voice", {}, None)


def test_public_base_url_precedence():
    headers = {"host": "127.0.0.1:8000", "x-forwarded-proto": "https", "x-forwarded-host": "abc.ngrok-free.app"}
    proxies = proxy_networks("127.0.0.1, 10.0.0.0/8")
    assert public_base_url("https://voice.example.com/", headers, "http") == "https://voice.example.com"
    assert public_base_url("", headers, "http", "127.0.0.1", proxies) == "https://abc.ngrok-free.app"
    assert public_base_url("", headers, "http", "10.1.2.3", proxies) == "https://abc.ngrok-free.app"
    assert public_base_url("", {"host": "127.0.0.1:8000"}, "http") == "http://127.0.0.1:8000"


def test_forwarded_headers_count_only_from_a_trusted_proxy():
    """Anyone else could name any host, and so choose the URL a signature is checked against."""
    headers = {"host": "voice.example.com", "x-forwarded-proto": "http", "x-forwarded-host": "attacker.example"}
    proxies = proxy_networks("10.0.0.0/8")
    assert public_base_url("", headers, "https", "203.0.113.9", proxies) == "https://voice.example.com"
    assert public_base_url("", headers, "https", "203.0.113.9") == "https://voice.example.com"
    assert public_base_url("", headers, "https", None, proxies) == "https://voice.example.com"
    # the connection's own scheme: a WebSocket over TLS is an https base (wss in TwiML)
    assert public_base_url("", {"host": "voice.example.com"}, "wss") == "https://voice.example.com"
    assert public_base_url("", {"host": "voice.example.com"}, "ws") == "http://voice.example.com"


def test_websocket_url_scheme_follows_base():
    assert websocket_url("https://voice.example.com", "/media-stream") == "wss://voice.example.com/media-stream"
    assert websocket_url("http://127.0.0.1:8000", "/media-stream") == "ws://127.0.0.1:8000/media-stream"


def test_the_client_behind_a_trusted_proxy_is_the_forwarded_one():
    from voxline.access.proxies import client_address

    headers = {"x-forwarded-for": "198.51.100.7, 10.0.0.2"}
    proxies = proxy_networks("10.0.0.0/8")
    assert client_address("10.0.0.2", headers, proxies) == "198.51.100.7"
    assert client_address("203.0.113.9", headers, proxies) == "203.0.113.9"  # anyone else: their own address
    assert client_address("10.0.0.2", {}, proxies) == "10.0.0.2"
