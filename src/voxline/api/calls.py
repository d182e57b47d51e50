"""``/api/calls``: what happened on recent calls, with every turn's stage times.

Off unless ``VOXLINE_API_TOKEN`` is set; then every request needs ``Authorization: Bearer <token>``.
"""

from __future__ import annotations

import secrets
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

router = APIRouter(prefix="/api")
_bearer = HTTPBearer(auto_error=False)


def require_token(request: Request, credentials: HTTPAuthorizationCredentials | None = Depends(_bearer)) -> None:
    expected = request.app.state.services.settings.api_token.get_secret_value()
    if not expected:
        raise HTTPException(status_code=404, detail="the API is off: set VOXLINE_API_TOKEN")
    if credentials is None or not secrets.compare_digest(credentials.credentials.encode(), expected.encode()):
        raise HTTPException(status_code=401, detail="a valid bearer token is required",
                            headers={"WWW-Authenticate": "Bearer"})


@router.get("/calls", dependencies=[Depends(require_token)])
async def list_calls(request: Request, limit: int = 50) -> dict[str, Any]:
    registry = request.app.state.services.registry
    calls = [*registry.active.values(), *reversed(registry.finished)][: max(1, min(limit, 500))]
    return {"calls": [{k: v for k, v in c.to_dict().items() if k not in ("turns", "events", "history")} for c in calls]}


@router.get("/calls/{call_sid}", dependencies=[Depends(require_token)])
async def get_call(call_sid: str, request: Request) -> dict[str, Any]:
    record = request.app.state.services.registry.find(call_sid)
    if record is None:
        raise HTTPException(status_code=404, detail="no such call")
    return record.to_dict()
