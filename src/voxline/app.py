"""The FastAPI application: webhooks, the media stream, health; models loaded once at start-up."""

from __future__ import annotations

import asyncio
import logging
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from fastapi import FastAPI
from fastapi.responses import JSONResponse

from voxline.api.calls import router as api_router
from voxline.config import AgentConfig, Settings, load_agent
from voxline.engine.stack import VoiceStack, load_embedded
from voxline.session.records import CallRegistry
from voxline.telephony.media_stream import media_stream
from voxline.telephony.security import SignatureChecker
from voxline.telephony.webhooks import router as webhook_router

log = logging.getLogger(__name__)


@dataclass
class Services:
    """Everything a request handler needs; one per application, no module-level state."""

    settings: Settings
    agent: AgentConfig
    signatures: SignatureChecker
    registry: CallRegistry = field(default_factory=CallRegistry)
    stack: VoiceStack | None = None
    load_error: str | None = None


def create_app(settings: Settings | None = None, stack: VoiceStack | None = None) -> FastAPI:
    """Build the app. ``stack`` lets a process that already loaded the models share them."""
    settings = settings or Settings()
    agent = load_agent(settings.agent_file)
    services = Services(settings=settings, agent=agent,
                        signatures=SignatureChecker(settings.twilio_auth_token.get_secret_value()), stack=stack)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        loader = None
        if services.stack is None:
            loader = asyncio.create_task(_load(services))
        yield
        if loader is not None:
            loader.cancel()
        if services.stack is not None and stack is None:
            services.stack.close()

    app = FastAPI(title="Voxline", version="0.1.0", lifespan=lifespan)
    app.state.services = services
    app.include_router(webhook_router)
    app.include_router(api_router)
    app.add_api_websocket_route("/media-stream", media_stream)

    @app.get("/healthz")
    async def healthz() -> JSONResponse:
        if services.stack is not None:
            return JSONResponse({"status": "ready", "agent": agent.name})
        status = "failed" if services.load_error else "loading"
        return JSONResponse({"status": status, "error": services.load_error}, status_code=503)

    return app


async def _load(services: Services) -> None:
    try:
        services.stack = await asyncio.to_thread(load_embedded, services.settings, services.agent)
    except Exception as exc:  # reported by /healthz and the log; the process stays up to say so
        services.load_error = str(exc)
        log.exception("loading the models failed")
