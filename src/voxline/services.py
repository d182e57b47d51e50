"""Everything a request handler needs, made once per application: settings, the agent, the voice
stack, the call store, the registry of calls, metrics. No module-level state: each app has its
own ``Services``, and routes receive it through the ``ServicesDep`` FastAPI dependency.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated

import aiohttp
from fastapi import Depends
from starlette.requests import HTTPConnection

from voxline.config import AgentConfig, Settings
from voxline.engine.stack import VoiceStack
from voxline.observability.metrics import Metrics
from voxline.playout.audio_files import AudioFiles
from voxline.session.records import CallRegistry
from voxline.store import CallStore

if TYPE_CHECKING:  # made by the application (``voxline.app``), which composes the parts
    from voxline.telephony.recordings import RecordingFetcher
    from voxline.telephony.security import SignatureChecker

ADMISSION_HOLD_S = 30.0  # a webhook answered reserves a place this long for its stream


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
    registry: CallRegistry = field(default_factory=CallRegistry)
    metrics: Metrics = field(default_factory=Metrics)
    stack: VoiceStack | None = None
    load_error: str | None = None
    phrase_tokens: dict[str, str] = field(default_factory=dict)
    draining: bool = False
    admitted: dict[str, float] = field(default_factory=dict)  # CallSid -> when its webhook was answered

    def streaming_calls(self) -> int:
        """Streaming calls (softphone ones too) in progress, plus those answered whose stream has not started yet."""
        cutoff = time.monotonic() - ADMISSION_HOLD_S
        for call_sid, at in list(self.admitted.items()):
            if at < cutoff:
                del self.admitted[call_sid]
        active = sum(1 for record in self.registry.active.values() if record.path in ("streaming", "softphone"))
        return active + len(self.admitted)

    def active_calls(self) -> int:
        return len(self.registry.active)


def get_services(connection: HTTPConnection) -> Services:
    """The application's services, for a request or a WebSocket (the one place that reads app.state)."""
    return connection.app.state.services


ServicesDep = Annotated[Services, Depends(get_services)]
