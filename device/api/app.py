"""The HTTP application: the five contracts, management and operations on one Bottle app.

Every endpoint goes through device/api/http.py (credential, pool, body limit, JSON, error shape, metrics) and
calls the same Engine as the CLI; each contract module makes its own JSON from the engine's records.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import bottle

from . import (console, daemon, detect_attributes, face_compare, face_search, management, multi_face_extraction, ops,
               unified_detect)
from .auth import Authenticator, Sessions, Tokens
from .crops import Crops
from .fetch import Fetcher
from .http import Router, dumps
from .metrics import Metrics
from .pool import InferencePool

MODULES = (multi_face_extraction, face_search, detect_attributes, unified_detect, face_compare, management, ops,
           console)


@dataclass
class ApiState:
    engine: object
    config: object
    pool: InferencePool
    tokens: Tokens
    auth: Authenticator
    metrics: Metrics
    started: float
    openapi: dict | None = None
    service: object = None  # the running daemon (device/service.py), when there is one
    crops: Crops | None = None  # contract 4's face crops served by URL
    fetcher: Fetcher | None = None  # URL inputs of contracts 3 and 4


def make_app(engine, started: float | None = None, pool: InferencePool | None = None, service=None
             ) -> bottle.Bottle:
    """`service`: the running daemon; it adds the event, camera and visitor endpoints (device/api/daemon.py)
    and its cameras, broker and outbox to /health."""
    config = engine.config
    pool = pool or InferencePool(config.api.workers, config.api.queue)
    tokens = Tokens(config.api.token_ttl_s)
    state = ApiState(engine, config, pool, tokens, Authenticator(engine, tokens, Sessions(config.api.session_ttl_s)), Metrics(pool),
                     started or time.time(), service=service, crops=Crops(config.api.face_url_ttl_s),
                     fetcher=Fetcher(config.api))
    app = bottle.Bottle(catchall=True)
    router = Router(app, state)
    for module in MODULES + ((daemon,) if service is not None else ()):
        module.register(router)
    from .openapi import document

    state.openapi = document(router.routes, config)
    app.config["faced.state"] = state
    app.config["faced.routes"] = router.routes

    def json_error(code: str, message: str) -> bytes:
        bottle.response.content_type = "application/json"
        return dumps({"error": {"code": code, "message": message}})

    @app.error(404)
    def not_found(error):
        return json_error("NOT_FOUND", "no such endpoint")

    @app.error(405)
    def not_allowed(error):
        return json_error("METHOD_NOT_ALLOWED", "the endpoint does not take this method")

    @app.error(500)
    def internal(error):
        return json_error("INTERNAL_ERROR", "an internal error occurred; the server log has the cause")

    return app
