"""Operations: GET /health (open), GET /openapi.json and GET /metrics (`x-api-key`, contract 2's error shape)."""
from __future__ import annotations

import time

from .. import __version__
from ..config import configured_precisions
from . import auth
from .http import Call, Reply, Router

SHAPE = "contract2"


def health(state) -> dict:
    """What a supervisor or a load balancer checks: alive, which models and precisions, database, pool."""
    engine = state.engine
    pipeline = engine.pipeline
    loaded = {"yunet": getattr(pipeline.detector, "model", None) is not None,
              "sface": pipeline.embedder.model is not None,
              "age": pipeline._attributes is not None, "gender": pipeline._attributes is not None,
              "minifasnet_v2": pipeline._liveness is not None, "minifasnet_v1se": pipeline._liveness is not None}
    models = {name: {"precision": value or pipeline.manifest.default_precision(name), "loaded": loaded.get(name)}
              for name, value in configured_precisions(engine.config).items()
              if name in pipeline.manifest.models()}
    try:
        database = engine.database_summary()
        status = "ok"
    except Exception as exc:  # noqa: BLE001 - health reports a broken database instead of failing
        database, status = {"error": getattr(exc, "code", type(exc).__name__)}, "degraded"
    pool = state.pool
    body = {"status": status, "version": __version__, "uptime_s": round(time.time() - state.started, 1),
            "models": models,
            "database": {k: v for k, v in database.items() if k != "path"},
            "pool": {"depth": pool.depth(), "running": pool.running(), "workers": pool.workers,
                     "queue": pool.queue, "capacity": pool.capacity}}
    if state.service is not None:  # the daemon: cameras, broker connection, outbox depth
        body.update(state.service.health())
    return body


def register(router: Router) -> None:
    @router.route("GET", "/health", shape=SHAPE, credential=auth.OPEN)
    def get_health(call: Call):
        return health(call.state)

    @router.route("GET", "/openapi.json", shape=SHAPE, credential=auth.X_API_KEY)
    def openapi(call: Call):
        return call.state.openapi

    @router.route("GET", "/metrics", shape=SHAPE, credential=auth.X_API_KEY)
    def metrics(call: Call):
        return Reply(raw=call.state.metrics.text(), content_type=call.state.metrics.content_type)
