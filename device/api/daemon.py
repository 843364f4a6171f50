"""The daemon's HTTP endpoints: event history and stream, cameras and their snapshots.

    GET /events?camera=&person=&type=&since=&limit=100&offset=0   history, newest first
        -> {"events": [...], "limit", "offset", "next_offset" (null on the last page)}
    GET /events/stream                                            server-sent events, one `event: <type>`
        with `id: <seq>` and `data: <event JSON>` per event as it happens; a comment every 15 s keeps it open
    GET /cameras               -> {"cameras": [{"name", "state", "fps", "dropped", "last_frame_age_s", ...}]}
    GET /cameras/{name}/snapshot.jpg                              latest processed frame, boxes and names drawn

`register(app, service)` adds them to a Bottle app; `service` is the running daemon (device/service.py): it has
`outbox` (device/events/outbox.py), `bus` (device/events/bus.py) and `cameras` (name -> device/camera/loop.py
Camera). Errors use the management endpoints' shape {"error": {"code", "message"}} with the code's status.
Keys: these routes are keyed like the management endpoints; the API's auth wraps them where it mounts them.
"""
from __future__ import annotations

import json
import queue

import bottle

from ..errors import CODES, FacedError, InvalidInput, NotFound

KEEPALIVE_S = 15.0
ROUTES = ("/events", "/events/stream", "/cameras", "/cameras/<name>/snapshot.jpg")


def register(app: bottle.Bottle, service) -> None:
    @app.get("/events")
    def events():
        query = bottle.request.query
        try:
            limit = _int(query.get("limit"), 100, "limit")
            offset = _int(query.get("offset"), 0, "offset")
            rows = service.outbox.history(camera=query.get("camera") or None, person=query.get("person") or None,
                                          type_=query.get("type") or None, since=query.get("since") or None,
                                          limit=limit, offset=offset)
        except FacedError as exc:
            return _error(exc)
        return {"events": rows, "limit": limit, "offset": offset,
                "next_offset": offset + len(rows) if len(rows) == limit else None}

    @app.get("/events/stream")
    def stream():
        feed = service.bus.subscribe()
        if feed is None:
            bottle.response.set_header("Retry-After", "5")
            return _error(FacedError("too many event streams are open", "BUSY"))
        bottle.response.content_type = "text/event-stream"
        bottle.response.set_header("Cache-Control", "no-cache")
        bottle.response.set_header("X-Accel-Buffering", "no")

        def generate():
            try:
                yield ": faced events\n\n"
                while True:
                    try:
                        event = feed.get(timeout=KEEPALIVE_S)
                    except queue.Empty:
                        yield ": keep-alive\n\n"
                        continue
                    if event is None:  # the daemon is stopping
                        return
                    yield (f"id: {event['seq']}\nevent: {event['type']}\n"
                           f"data: {json.dumps(event, ensure_ascii=False)}\n\n")
            finally:
                service.bus.unsubscribe(feed)

        return generate()

    @app.get("/cameras")
    def cameras():
        return {"cameras": [camera.status() for camera in service.cameras.values()]}

    @app.get("/cameras/<name>/snapshot.jpg")
    def snapshot(name):
        camera = service.cameras.get(name)
        if camera is None:
            return _error(NotFound(f"no camera named {name!r}", "CAMERA_NOT_FOUND"))
        data = camera.snapshot()
        if data is None:
            return _error(FacedError(f"camera {name!r} has not delivered a frame yet", "NO_FRAME"))
        bottle.response.content_type = "image/jpeg"
        bottle.response.set_header("Cache-Control", "no-store")
        return data


def _int(text, default: int, name: str) -> int:
    if text in (None, ""):
        return default
    try:
        return int(text)
    except ValueError:
        raise InvalidInput(f"{name} must be a whole number, got {text!r}", "INVALID_ARGUMENT") from None


def _error(exc: FacedError) -> str:
    bottle.response.status = CODES[exc.code].status if exc.code in CODES else 500
    bottle.response.content_type = "application/json"
    return json.dumps({"error": {"code": exc.code, "message": exc.message}})
