"""The HTTP application. This version serves the operational endpoint GET /health only; the five
contracts and management endpoints mount on the same app."""
from __future__ import annotations

import time

import bottle

from .. import __version__


def make_app(engine=None, started: float | None = None) -> bottle.Bottle:
    app = bottle.Bottle()
    started = started or time.time()

    @app.get("/health")
    def health():
        return {"status": "ok", "version": __version__, "uptime_s": round(time.time() - started, 1)}

    @app.error(404)
    def not_found(error):
        bottle.response.content_type = "application/json"
        return '{"error": {"code": "NOT_FOUND", "message": "no such endpoint"}}'

    return app
