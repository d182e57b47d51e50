"""Everything a request handler needs, made once per application: settings, the agent, the voice
stack, the call store, the registry of calls, metrics. No module-level state: each app has its
own ``Services``, and routes receive it through the ``ServicesDep`` FastAPI dependency.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated

import aiohttp
from fastapi import Depends
from starlette.requests import HTTPConnection

from voxline.access.capacity import CallSlots, UnstartedSockets
from voxline.access.credentials import StreamCredentials
from voxline.access.outbound import OutboundCalls
from voxline.access.proxies import Network, proxy_networks
from voxline.access.replay import AnsweredOnce
from voxline.config import AgentConfig, Settings
from voxline.engine.stack import VoiceStack
from voxline.observability.metrics import Metrics
from voxline.playout.audio_files import AudioFiles
from voxline.session.records import CallRegistry
from voxline.store import CallStore
from voxline.tools.http_tools import HttpTools

if TYPE_CHECKING:  # made by the application (``voxline.app``), which composes the parts
    from voxline.telephony.recordings import RecordingFetcher
    from voxline.telephony.rest import TwilioRest
    from voxline.telephony.security import SignatureChecker


@dataclass
class Services:
    """Everything a request handler needs; one per application, no module-level state."""

    settings: Settings
    agent: AgentConfig
    signatures: SignatureChecker
    store: CallStore
    audio: AudioFiles
    # Made when the application starts, on the event loop that serves it (aiohttp binds a session to
    # its loop, and ``create_services`` may run before any loop does): see ``open_http``.
    http: aiohttp.ClientSession = field(init=False)
    fetcher: RecordingFetcher = field(init=False)
    rest: TwilioRest | None = field(init=False, default=None)  # with TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN
    tools: HttpTools | None = field(init=False, default=None)  # the agent's tools and the business's webhook
    registry: CallRegistry = field(default_factory=CallRegistry)
    metrics: Metrics = field(default_factory=Metrics)
    stack: VoiceStack | None = None
    load_error: str | None = None
    phrase_tokens: dict[str, str] = field(default_factory=dict)
    draining: bool = False
    # Streaming calls (softphone ones too), from the webhook that admits each to the end of its stream.
    slots: CallSlots = field(init=False)
    unstarted: UnstartedSockets = field(init=False)
    answered: AnsweredOnce = field(default_factory=AnsweredOnce)  # recording webhooks, by RecordingSid

    proxies: list[Network] = field(init=False)  # whose X-Forwarded-* headers are believed
    credentials: StreamCredentials = field(init=False)  # per-call stream credentials (webhook -> start)
    outbound: OutboundCalls = field(init=False)  # calls this server placed, and its rate limit

    def __post_init__(self) -> None:
        secret = self.settings.stream_secret.get_secret_value() or self.settings.twilio_auth_token.get_secret_value()
        self.credentials = StreamCredentials(secret)
        self.proxies = proxy_networks(self.settings.trusted_proxies)
        self.slots = CallSlots(self.settings.max_calls, self.settings.stream_admission_s)
        self.unstarted = UnstartedSockets(self.settings.unstarted_streams_per_client)
        self.outbound = OutboundCalls(self.settings.outbound_per_minute)

    def active_calls(self) -> int:
        return len(self.registry.active)


def get_services(connection: HTTPConnection) -> Services:
    """The application's services, for a request or a WebSocket (the one place that reads app.state)."""
    return connection.app.state.services


ServicesDep = Annotated[Services, Depends(get_services)]
