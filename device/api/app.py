"""The HTTP application. This version serves the operational endpoint GET /health only; the five
contracts and management endpoints mount on the same app."""
from __future__ import annotations

import time

import bottle

from .. import __version__


def make_app(engine=None, started: float | None = None, service=None) -> bottle.Bottle:
    """`service`: the running daemon (device/service.py); it adds its routes (device/api/daemon.py) and its
    cameras, broker and outbox to /health."""
    app = bottle.Bottle()
    started = started or time.time()

    @app.get("/health")
    def health():
        body = {"status": "ok", "version": __version__, "uptime_s": round(time.time() - started, 1)}
        if service is not None:
            body.update(service.health())
        return body

    if service is not None:
        from .daemon import register

        register(app, service)

    @app.error(404)
    def not_found(error):
        bottle.response.content_type = "application/json"
        return '{"error": {"code": "NOT_FOUND", "message": "no such endpoint"}}'

    return app
