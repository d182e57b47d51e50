"""``GET /phone`` and ``GET /dashboard``: the two pages, each off (404) unless it may be used.

The dashboard needs ``VOXLINE_API_TOKEN`` (it reads the JSON API with it). The softphone needs
the same token, or ``voxline serve --dev`` on a machine without one. The pages themselves hold
no data: they ask for the token in the browser and keep it in localStorage.
"""

from __future__ import annotations

import functools
from importlib import resources

from fastapi import APIRouter, HTTPException
from fastapi.responses import HTMLResponse

from voxline.config import Settings
from voxline.services import ServicesDep

router = APIRouter(include_in_schema=False)


@functools.cache  # read once per process: the pages are package data and never change
def _page(name: str) -> str:
    return resources.files("voxline.web").joinpath("static", name).read_text(encoding="utf-8")


def api_token_set(settings: Settings) -> bool:
    return bool(settings.api_token.get_secret_value())


def softphone_enabled(settings: Settings) -> bool:
    """With an API token the softphone asks for it; without one it is only for --dev."""
    return api_token_set(settings) or settings.dev_mode


@router.get("/phone")
async def phone(services: ServicesDep) -> HTMLResponse:
    settings = services.settings
    if not softphone_enabled(settings):
        raise HTTPException(status_code=404, detail="the softphone is off: set VOXLINE_API_TOKEN or run with --dev")
    html = _page("phone.html").replace("__TOKEN_REQUIRED__", "true" if api_token_set(settings) else "false")
    return HTMLResponse(html, headers={"Cache-Control": "no-store"})


@router.get("/dashboard")
async def dashboard(services: ServicesDep) -> HTMLResponse:
    if not api_token_set(services.settings):
        raise HTTPException(status_code=404, detail="the dashboard is off: set VOXLINE_API_TOKEN")
    return HTMLResponse(_page("dashboard.html"), headers={"Cache-Control": "no-store"})
