"""The web console: the page at /ui and its static files (fleet/ingress/console/), on the ingress's app.

The page holds no data: the browser builds every view from the same /v1 API as any other client,
sending the bearer token the user typed (kept in the tab's sessionStorage, never in a URL). So the
page and its assets are served without a token, and only they (`is_console_asset`). Nothing is
rendered on the server but the route prefix Serve mounts the app under, written into the page so
its scripts find the API behind any `route_prefix`. No build step: plain ES modules.
"""

from __future__ import annotations

import html
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

CONSOLE_DIR = Path(__file__).with_name("console")
PAGE = "/ui"
ASSETS = "/ui/static"
# The page runs only its own scripts and talks only to its own origin: model-written text it shows
# can never run as code, even if a view forgot to escape it.
_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; "
                               "frame-ancestors 'none'",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-cache",
}


def is_console_asset(path: str) -> bool:
    """Whether `path` (below the app's root) is the console's page or one of its static files.

    >>> [is_console_asset(p) for p in ("/ui", "/ui/", "/ui/static/app.js", "/v1/status", "/uix")]
    [True, True, True, False, False]
    """
    return path in (PAGE, PAGE + "/") or path.startswith(ASSETS + "/")


def mount_console(app: FastAPI) -> None:
    """Add GET /ui (the page) and /ui/static/* (its scripts and styles) to `app`."""
    index = (CONSOLE_DIR / "index.html").read_text()

    async def page(request: Request) -> HTMLResponse:
        root = html.escape(request.scope.get("root_path", "").rstrip("/"))
        return HTMLResponse(index.replace("__ROOT__", root), headers=_HEADERS)

    for path in (PAGE, PAGE + "/"):
        app.add_api_route(path, page, methods=["GET"], include_in_schema=False)
    app.mount(ASSETS, StaticFiles(directory=CONSOLE_DIR), name="console")
