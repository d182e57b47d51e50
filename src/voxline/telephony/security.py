"""The public URL Twilio used, and ``X-Twilio-Signature`` checks for webhooks and the WebSocket.

Twilio signs the exact URL it requested. Behind a proxy the server sees another one, so the
public base comes from configuration first, then from X-Forwarded-Proto/X-Forwarded-Host when
the request came from a configured proxy (anyone else could name any host in them), and only
then from the Host header and the connection's own scheme.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from twilio.request_validator import RequestValidator

from voxline.access.proxies import Network, is_trusted


def public_base_url(
    configured: str, headers: Mapping[str, str], scheme: str, peer: str | None = None, proxies: Sequence[Network] = ()
) -> str:
    """``https://host[:port]`` with no trailing slash. ``scheme``: the connection's own (http,
    https, ws, wss); ``peer``: the address the request came from."""
    if configured:
        return configured.rstrip("/")
    scheme = {"ws": "http", "wss": "https"}.get(scheme, scheme)
    host = headers.get("host", "localhost")
    if is_trusted(peer, proxies):
        scheme = headers.get("x-forwarded-proto", "").split(",")[0].strip() or scheme
        host = headers.get("x-forwarded-host", "").split(",")[0].strip() or host
    return f"{scheme}://{host}"


def websocket_url(base_url: str, path: str) -> str:
    """The stream URL for TwiML: ``wss://`` for an https base (what Twilio needs), ``ws://`` for plain http."""
    scheme, _, rest = base_url.partition("://")
    return f"{'wss' if scheme in ('https', 'wss') else 'ws'}://{rest}{path}"


class SignatureChecker:
    def __init__(self, auth_token: str) -> None:
        self._validator = RequestValidator(auth_token) if auth_token else None

    @property
    def enabled(self) -> bool:
        return self._validator is not None

    def webhook_ok(self, url: str, params: Mapping[str, str], signature: str | None) -> bool:
        if self._validator is None:
            return True
        return bool(signature) and self._validator.validate(url, dict(params), signature)

    def websocket_ok(self, url: str, signature: str | None) -> bool:
        """Twilio signs the bare wss URL; its docs say to accept it with a trailing slash too."""
        if self._validator is None:
            return True
        if not signature:
            return False
        bare = url.rstrip("/")
        return any(self._validator.validate(candidate, {}, signature) for candidate in (bare, bare + "/"))


def sign(auth_token: str, url: str, params: Mapping[str, str] | None = None) -> str:
    """The signature Twilio would send (used by the caller simulator)."""
    return RequestValidator(auth_token).compute_signature(url, dict(params or {}))
