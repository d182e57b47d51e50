"""A credential for one call's media stream, issued by the webhook that admits the call.

Twilio signs only the bare stream URL, so its ``X-Twilio-Signature`` on the upgrade is the same
for every call: once captured, it would open ``/media-stream`` for any CallSid. The voice webhook
therefore hands the stream a credential as a ``<Parameter>`` (Twilio passes it back in the
``start`` message's ``customParameters``): an HMAC over the CallSid and an expiry time, keyed by a
secret every instance derives from the same configuration, so any instance can check a stream
whose webhook another one answered, with no shared state. ``start`` is refused unless the
credential names its CallSid and has not expired.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Callable

PARAMETER = "voxline_credential"  # the <Parameter> name
VERSION = "v1"
TTL_S = 120.0  # from the webhook's answer to the stream's start: Twilio connects within seconds


class StreamCredentials:
    def __init__(self, secret: str, ttl_s: float = TTL_S, clock: Callable[[], float] = time.time) -> None:
        # A key of its own: the credential never reveals anything about the secret it comes from.
        self._key = hmac.new(secret.encode(), b"voxline stream credential " + VERSION.encode(), hashlib.sha256).digest()
        self._ttl_s = ttl_s
        self._clock = clock

    def _mac(self, call_sid: str, expires: int) -> str:
        digest = hmac.new(self._key, f"{call_sid}.{expires}".encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()

    def issue(self, call_sid: str) -> str:
        expires = int(self._clock() + self._ttl_s)
        return f"{VERSION}.{expires}.{self._mac(call_sid, expires)}"

    def problem(self, call_sid: str, credential: str) -> str | None:
        """Why ``credential`` does not admit a stream for ``call_sid`` (None: it does)."""
        if not credential:
            return "no stream credential (the call was not admitted by a voice webhook)"
        version, _, rest = credential.partition(".")
        expires_text, _, mac = rest.partition(".")
        if version != VERSION or not expires_text.isdigit() or len(expires_text) > 12:
            return "a malformed stream credential"
        if not hmac.compare_digest(mac.encode(), self._mac(call_sid, int(expires_text)).encode()):
            return "a stream credential for another call"
        if int(expires_text) < self._clock():
            return "an expired stream credential"
        return None
