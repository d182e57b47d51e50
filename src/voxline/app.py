"""The FastAPI application: webhooks, the media stream, health; models loaded once at start-up."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import secrets
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import Depends, FastAPI, Header, Response
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, Gauge

from voxline.api.calls import docs_allowed
from voxline.api.calls import router as api_router
from voxline.api.outbound import router as outbound_api_router
from voxline.config import Settings, effective_agent, load_agent
from voxline.engine.stack import VoiceStack, load_stack
from voxline.observability.metrics import Metrics
from voxline.observability.tracing import make_tracer
from voxline.playout.audio_files import AudioFiles
from voxline.providers.http import new_session
from voxline.services import Services
from voxline.session.records import CallRegistry
from voxline.store import CallStore
from voxline.telephony.media_stream import media_stream
from voxline.telephony.outbound import router as outbound_router
from voxline.telephony.record_webhooks import router as record_router
from voxline.telephony.recordings import RecordingFetcher
from voxline.telephony.rest import TwilioRest
from voxline.telephony.security import SignatureChecker
from voxline.telephony.transfer_webhooks import router as transfer_router
from voxline.telephony.webhooks import router as webhook_router
from voxline.tools.http_tools import HttpTools
from voxline.web import install as install_web

log = logging.getLogger(__name__)

AUDIO_SWEEP_S = 60
STORE_FLUSH_S = 10.0  # at shutdown, time to write pending call records; the rest stays in the journal


def create_services(settings: Settings, stack: VoiceStack | None = None) -> Services:
    token = settings.twilio_auth_token.get_secret_value()
    agent = effective_agent(load_agent(settings.agent_file), settings)
    store = CallStore.from_settings(settings)
    metrics = Metrics(make_tracer(settings.otel_endpoint))
    Gauge(
        "voxline_store_pending_writes",
        "Call-store writes waiting for the database (memory and journal).",
        registry=metrics.registry,
    ).set_function(lambda: store.writer.pending)
    return Services(
        settings=settings,
        agent=agent,
        signatures=SignatureChecker(token),
        store=store,
        registry=CallRegistry(sink=store, language=agent.language),
        audio=AudioFiles(settings.data_dir / "audio", settings.audio_ttl_s),
        metrics=metrics,
        stack=stack,
    )


def recording_prefixes(settings: Settings) -> tuple[str, ...]:
    """Where recordings may be fetched from: the configured prefixes, and in --dev this machine too
    (the caller simulator serves its recordings on a loopback port)."""
    prefixes = [p.strip() for p in settings.recording_url_prefixes.split(",") if p.strip()]
    if settings.dev_mode:
        prefixes += ["http://127.0.0.1:", "http://localhost:"]
    return tuple(prefixes)


def open_http(services: Services) -> None:
    """The process's one pooled HTTP client, made on the running loop before the models load.

    Keep-alive HTTP/1.1 connections to Twilio's API for every recording and to every hosted
    provider (aiohttp: a fraction of httpx's CPU per request; see ``voxline.providers.http``).
    """
    settings = services.settings
    services.http = new_session(limit=50, keepalive_s=30.0)
    services.fetcher = RecordingFetcher(
        services.http,
        settings.twilio_account_sid,
        settings.twilio_auth_token.get_secret_value(),
        settings.recording_fetch_window_s,
        recording_prefixes(settings),
        settings.recording_max_bytes,
    )
    services.tools = HttpTools(services.http, services.agent.tools)
    token = settings.twilio_auth_token.get_secret_value()
    if settings.twilio_account_sid and token:
        services.rest = TwilioRest(settings.twilio_account_sid, token, settings.twilio_api_base_url)


def create_app(settings: Settings | None = None, stack: VoiceStack | None = None) -> FastAPI:
    """Build the app. ``stack`` lets a process that already loaded the models share them."""
    services = create_services(settings or Settings(), stack)
    if stack is not None and stack.tts_cache is not None:
        services.metrics.watch_tts_cache(stack.tts_cache)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        await services.store.start()  # migrations to head, journal replay, writer and upkeep tasks
        open_http(services)
        stop_gc_watch = services.metrics.watch_garbage_collector()
        background = [
            asyncio.create_task(_sweep_audio(services)),
            asyncio.create_task(services.metrics.watch_event_loop()),
        ]
        if services.stack is None:
            background.append(asyncio.create_task(_load(services)))
        yield
        for task in background:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        stop_gc_watch()
        if services.tools is not None:
            await services.tools.close()  # messages still on their way to the business's webhook
        await services.http.close()
        if services.rest is not None:
            await services.rest.close()
        services.metrics.tracer.shutdown()
        await services.store.stop(STORE_FLUSH_S)
        if services.stack is not None and stack is None:
            services.stack.close()

    # The schema and its pages are generated here, behind the checks below (FastAPI's own are open).
    app = FastAPI(title="Voxline", version="0.1.0", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.services = services
    app.include_router(webhook_router)
    app.include_router(record_router)
    app.include_router(transfer_router)
    app.include_router(outbound_router)
    app.include_router(api_router)
    app.include_router(outbound_api_router)
    app.add_api_websocket_route("/media-stream", media_stream)
    install_web(app)  # /phone, /phone-stream, /dashboard and their static files

    @app.get("/metrics", include_in_schema=False)
    async def metrics(authorization: Annotated[str, Header()] = "") -> Response:
        expected = services.settings.metrics_token.get_secret_value()
        if expected and not secrets.compare_digest(authorization.encode(), f"Bearer {expected}".encode()):
            return Response("a valid bearer token is required", status_code=401, headers={"WWW-Authenticate": "Bearer"})
        return Response(services.metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

    @app.get("/openapi.json", include_in_schema=False, dependencies=[Depends(docs_allowed)])
    async def openapi() -> JSONResponse:
        return JSONResponse(app.openapi())

    @app.get("/docs", include_in_schema=False)
    async def docs() -> Response:
        if not services.settings.dev_mode:  # the page fetches the schema without a token
            return Response("Not Found", status_code=404, media_type="text/plain")
        return get_swagger_ui_html(openapi_url="/openapi.json", title="Voxline API")

    @app.get("/healthz")
    async def healthz() -> JSONResponse:
        """Open to anyone (load balancers, probes): states only, never error text (the log has it)."""
        store = {k: v for k, v in services.store.health().items() if k != "error"}
        if services.draining:
            return JSONResponse(
                {"status": "draining", "active_calls": services.active_calls(), "store": store}, status_code=503
            )
        if services.stack is not None:
            return JSONResponse({"status": "ready", "agent": services.agent.name, "store": store})
        status = "failed" if services.load_error else "loading"
        return JSONResponse({"status": status, "store": store}, status_code=503)

    return app


async def _load(services: Services) -> None:
    try:
        stack = await asyncio.to_thread(load_stack, services.settings, services.agent, services.http)
        await stack.prerender(services.agent)
        services.stack = stack
        if stack.tts_cache is not None:
            services.metrics.watch_tts_cache(stack.tts_cache)
        # Everything loaded so far lives as long as the process: keep it out of the garbage
        # collector's full passes, which otherwise stall the event loop ~100 ms each (frames late).
        gc.freeze()
    except Exception as exc:  # reported by /healthz and the log; the process stays up to say so
        services.load_error = str(exc)
        log.exception("loading the models failed")


async def _sweep_audio(services: Services) -> None:
    while True:
        await asyncio.sleep(AUDIO_SWEEP_S)
        removed = await asyncio.to_thread(services.audio.sweep)
        if removed:
            log.info("deleted %d expired audio files", removed)
        cache = services.stack.tts_cache if services.stack is not None else None
        if cache is not None:
            settings = services.settings
            pruned = await asyncio.to_thread(
                cache.prune_disk, settings.tts_cache_disk_mb * 1024 * 1024, settings.tts_cache_days * 86400
            )
            if pruned:
                log.info("removed %d files from the TTS disk cache (size or age)", pruned)
