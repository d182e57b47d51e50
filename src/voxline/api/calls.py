"""``/api``: calls from the call store, live calls from memory, statistics, forgetting a caller.

Off unless ``VOXLINE_API_TOKEN`` is set (404); then every request needs
``Authorization: Bearer <token>`` (401 otherwise). The shapes are in ``api/models.py``.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from voxline.api.models import CallDetail, CallPage, DeletedCalls, LiveCalls, Stats
from voxline.services import ServicesDep
from voxline.session.records import CallRecord
from voxline.store import StoreUnavailable, queries

router = APIRouter(prefix="/api", tags=["calls"])
_bearer = HTTPBearer(auto_error=False)

DEFAULT_STATS_PERIOD_S = 24 * 3600


async def require_token(
    services: ServicesDep, credentials: HTTPAuthorizationCredentials | None = Depends(_bearer)
) -> None:
    expected = services.settings.api_token.get_secret_value()
    if not expected:
        raise HTTPException(status_code=404, detail="the API is off: set VOXLINE_API_TOKEN")
    if credentials is None or not secrets.compare_digest(credentials.credentials.encode(), expected.encode()):
        raise HTTPException(
            status_code=401, detail="a valid bearer token is required", headers={"WWW-Authenticate": "Bearer"}
        )


async def docs_allowed(
    services: ServicesDep, credentials: HTTPAuthorizationCredentials | None = Depends(_bearer)
) -> None:
    """The API's schema: with the API token, or to anyone in --dev."""
    if not services.settings.dev_mode:
        await require_token(services, credentials)


@router.get("/health", dependencies=[Depends(require_token)])
async def health(services: ServicesDep) -> dict[str, Any]:
    """What /healthz leaves out: the call store's last error and the models' loading error."""
    return {"store": services.store.health(), "load_error": services.load_error}


def _unavailable(exc: StoreUnavailable) -> HTTPException:
    return HTTPException(status_code=503, detail=f"the call store is unavailable: {exc}")


def live_call(record: CallRecord) -> dict[str, Any]:
    """A call record from memory in the API's shape (summary and turns)."""
    turns = []
    for turn in record.turns:
        turns.append(
            {
                "index": turn.index,
                "started_at": turn.started_at,
                "caller_text": turn.caller_text,
                "agent_text": turn.agent_text,
                "heard_text": turn.heard_text,
                "interrupted": turn.interrupted,
                "failed": turn.failed,
                "language": turn.language,
                "stt_early": turn.stt_early,
                "outcome": turn.outcome,
                "end_reason": turn.end_reason,
                "kind": turn.kind,
                "stages_ms": dict(turn.stages_ms),
            }
        )
    v2v: list[float] = [
        t.stages_ms["first_frame_sent"]  # type: ignore[misc]  # filtered to numbers below
        for t in record.turns
        if isinstance(t.stages_ms.get("first_frame_sent"), (int, float))
    ]
    return {
        "call_sid": record.call_sid,
        "stream_sid": record.stream_sid,
        "path": record.path,
        "agent": record.agent,
        "language": record.language,
        "caller": record.caller,
        "called": record.called,
        "started_at": record.started_at,
        "ended_at": record.ended_at,
        "outcome": record.outcome,
        "turn_count": len(record.turns),
        "v2v_p50_ms": queries.percentile(v2v, 50),
        "turns": turns,
    }


@router.get("/calls", dependencies=[Depends(require_token)], response_model=CallPage)
async def list_calls(
    services: ServicesDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
    since: float | None = None,
    until: float | None = None,
    number: str | None = None,
    outcome: str | None = None,
    path: str | None = None,
) -> dict[str, Any]:
    """Calls, newest first; ``number`` matches part of the caller's or the called number."""
    store = services.store
    try:
        total, page = await store.read(
            lambda c: queries.list_calls(c, limit, offset, since, until, number, outcome, path)
        )
    except StoreUnavailable as exc:
        raise _unavailable(exc) from exc
    return {"total": total, "limit": limit, "offset": offset, "calls": page}


@router.get("/calls/{call_sid}", dependencies=[Depends(require_token)], response_model=CallDetail)
async def get_call(call_sid: str, services: ServicesDep) -> dict[str, Any]:
    """One call with its turns and events; a call in progress too."""
    try:
        found = await services.store.read(lambda c: queries.get_call(c, call_sid))
    except StoreUnavailable:
        found = None  # this process may still know it
    if found is None:
        record = services.registry.find(call_sid)
        if record is None:
            raise HTTPException(status_code=404, detail="no such call")
        found = {
            **live_call(record),
            "events": [
                {"at": e["at"], "kind": e["kind"], "details": {k: v for k, v in e.items() if k not in ("at", "kind")}}
                for e in record.events
            ],
        }
    return found


@router.get("/live", dependencies=[Depends(require_token)], response_model=LiveCalls)
async def live(services: ServicesDep) -> dict[str, Any]:
    """Calls in progress in this process, from memory."""
    registry = services.registry
    return {"calls": [live_call(record) for record in registry.live()]}


@router.get("/stats", dependencies=[Depends(require_token)], response_model=Stats)
async def stats(
    services: ServicesDep,
    since: float | None = None,
    until: float | None = None,
    bucket_s: Annotated[float, Query(gt=0)] = 3600,
) -> dict[str, Any]:
    """Counts and latency percentiles per stage over a period (default: the last 24 h), by bucket."""
    until = time.time() if until is None else until
    since = until - DEFAULT_STATS_PERIOD_S if since is None else since
    if until <= since:
        raise HTTPException(status_code=422, detail="'until' must be after 'since'")
    if (until - since) / bucket_s > queries.MAX_BUCKETS:
        raise HTTPException(status_code=422, detail=f"at most {queries.MAX_BUCKETS} buckets: raise bucket_s")
    store = services.store
    try:
        return await store.read(lambda c: queries.stats(c, since, until, bucket_s), timeout_s=30)
    except StoreUnavailable as exc:
        raise _unavailable(exc) from exc


@router.delete("/callers/{number}", dependencies=[Depends(require_token)], response_model=DeletedCalls)
async def forget_caller(number: str, services: ServicesDep) -> dict[str, int]:
    """Delete every call whose caller is ``number``, with its turns, events and history: in the
    call store (after any of its writes still queued or journaled), in memory (a call in progress
    goes on, but nothing more of it is stored or shown), and the reply audio made for it."""
    sids = services.registry.forget_caller(number)
    for call_sid in sids:
        await asyncio.to_thread(services.audio.forget, call_sid)
    try:
        deleted = await services.store.forget_caller(number)
    except StoreUnavailable as exc:
        raise _unavailable(exc) from exc
    return {"deleted_calls": max(deleted, len(sids))}
