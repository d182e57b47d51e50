"""The browser side of Voxline: the softphone (``/phone``) and the dashboard (``/dashboard``).

Both are plain HTML, CSS and JavaScript shipped inside the package (``static/``): no build step,
no CDN. ``install`` adds their pages, the softphone's WebSocket and the static files to the app.
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from voxline.web.pages import router
from voxline.web.softphone import phone_stream

STATIC_PREFIX = "/static"


def install(app: FastAPI) -> None:
    app.include_router(router)
    app.add_api_websocket_route("/phone-stream", phone_stream)
    app.mount(STATIC_PREFIX, StaticFiles(packages=[("voxline.web", "static")]), name="static")
