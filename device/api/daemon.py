"""The daemon's HTTP endpoints: event history and stream, cameras and their snapshots (keyed like the
management endpoints, `x-api-key`; errors in contract 2's shape).

    GET /events?camera=&person=&type=&since=&limit=100&offset=0   history, newest first
        -> {"events": [...], "limit", "offset", "next_offset" (null on the last page)}
    GET /events/{event_id}                                        one stored event (EVENT_NOT_FOUND: unknown
        or pruned)
    GET /events/stream                                            server-sent events, one `event: <type>`
        with `id: <seq>` and `data: <event JSON>` per event as it happens; a comment every 15 s keeps it open
    GET /cameras               -> {"cameras": [{"name", "state", "fps", "dropped", "last_frame_age_s", ...}]}
    GET /cameras/{name}/snapshot.jpg                              latest processed frame, boxes and names drawn
    GET /visitors?collection_name=  -> {"visitors": [{"visitor_id", "collection_name", "first_seen",
        "last_seen", "visits", "camera", "faces"}]}                 recurring unknown visitors (device/visitors.py)
    POST /visitors/{visitor_id}/promote {"person_name", "collection_name"?, "force"?}
        -> 201 {"person_id", "person_name", "faces": [...]} (422 ERR_NOT_ENROLLED when no face passes enrolment)
    DELETE /visitors/{visitor_id}  -> {"erased": {...}}             the visitor, its faces and its events
    GET /visitors/{visitor_id}/thumbnail.jpg                      the visitor's best face (JPEG)

`call.state.service` is the running daemon (device/service.py): it has `outbox` (device/events/outbox.py),
`bus` (device/events/bus.py) and `cameras` (name -> device/camera/loop.py Camera).
"""
from __future__ import annotations

import json
import queue

from ..errors import Busy, FacedError, InvalidInput, NotFound
from . import auth
from .http import Call, Reply, Router
from .management import NotEnrolled, outcome_json

SHAPE = "contract2"
KEEPALIVE_S = 15.0
EVENT_LIMIT = 1000


def register(router: Router) -> None:
    @router.route("GET", "/events", shape=SHAPE, credential=auth.X_API_KEY)
    def events(call: Call):
        query, service = call.query, call.state.service
        limit = _int(query.get("limit"), 100, "limit", 1, EVENT_LIMIT)
        offset = _int(query.get("offset"), 0, "offset", 0, None)
        rows = service.outbox.history(camera=query.get("camera") or None, person=query.get("person") or None,
                                      type_=query.get("type") or None, since=query.get("since") or None,
                                      limit=limit, offset=offset)
        return {"events": rows, "limit": limit, "offset": offset,
                "next_offset": offset + len(rows) if len(rows) == limit else None}

    @router.route("GET", "/events/{event_id}", shape=SHAPE, credential=auth.X_API_KEY)
    def event(call: Call):
        found = call.state.service.outbox.event(call.params["event_id"])
        if found is None:
            raise NotFound(f"no stored event {call.params['event_id']!r}", "EVENT_NOT_FOUND")
        return found

    @router.route("GET", "/events/stream", shape=SHAPE, credential=auth.X_API_KEY)
    def stream(call: Call):
        service = call.state.service
        feed = service.bus.subscribe()
        if feed is None:
            raise Busy("too many event streams are open", retry_after=5)

        def generate():
            try:
                yield b": faced events\n\n"
                while True:
                    try:
                        event = feed.get(timeout=KEEPALIVE_S)
                    except queue.Empty:
                        yield b": keep-alive\n\n"
                        continue
                    if event is None:  # the daemon is stopping
                        return
                    yield (f"id: {event['seq']}\nevent: {event['type']}\n"
                           f"data: {json.dumps(event, ensure_ascii=False)}\n\n").encode("utf-8")
            finally:
                service.bus.unsubscribe(feed)

        return Reply(raw=generate(), content_type="text/event-stream",
                     headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    @router.route("GET", "/cameras", shape=SHAPE, credential=auth.X_API_KEY)
    def cameras(call: Call):
        return {"cameras": [camera.status() for camera in call.state.service.cameras.values()]}

    @router.route("GET", "/cameras/{name}/snapshot.jpg", shape=SHAPE, credential=auth.X_API_KEY)
    def snapshot(call: Call):
        name = call.params["name"]
        camera = call.state.service.cameras.get(name)
        if camera is None:
            raise NotFound(f"no camera named {name!r}", "CAMERA_NOT_FOUND")
        data = camera.snapshot()
        if data is None:
            raise FacedError(f"camera {name!r} has not delivered a frame yet", "NO_FRAME")
        return Reply(raw=data, content_type="image/jpeg", headers={"Cache-Control": "no-store"})

    register_visitors(router)


def register_visitors(router: Router) -> None:
    """The visitor endpoints (engine.visitors: the same code as the camera loop and `faced visitors`)."""

    @router.route("GET", "/visitors", shape=SHAPE, credential=auth.X_API_KEY)
    def visitors(call: Call):
        return {"visitors": call.engine.visitors.list(call.query.get("collection_name") or None)}

    @router.route("POST", "/visitors/{visitor_id}/promote", shape=SHAPE, credential=auth.X_API_KEY, body=True)
    def promote(call: Call):
        name = call.field("person_name", "string", required=True)
        collection = call.field("collection_name", "string", default=None)
        force = call.field("force", "boolean", default=False)
        enrolment = call.engine.visitors.promote(call.params["visitor_id"], name, collection, force)
        faces = [outcome_json(o) for o in enrolment.outcomes]
        if not enrolment.person_id:
            raise NotEnrolled(faces)
        return Reply({"person_id": enrolment.person_id, "person_name": enrolment.person_name, "faces": faces}, 201)

    @router.route("GET", "/visitors/{visitor_id}/thumbnail.jpg", shape=SHAPE, credential=auth.X_API_KEY)
    def visitor_thumbnail(call: Call):
        return Reply(raw=call.engine.visitors.thumbnail(call.params["visitor_id"]), content_type="image/jpeg",
                     headers={"Cache-Control": "private, max-age=60"})

    @router.route("DELETE", "/visitors/{visitor_id}", shape=SHAPE, credential=auth.X_API_KEY)
    def forget(call: Call):
        return {"erased": call.engine.visitors.forget(call.params["visitor_id"])}


def _int(text, default: int, name: str, lo: int, hi: int | None) -> int:
    if text in (None, ""):
        return default
    try:
        value = int(text)
    except ValueError:
        raise InvalidInput(f"{name} must be a whole number, got {text!r}", "INVALID_ARGUMENT") from None
    if value < lo or (hi is not None and value > hi):
        raise InvalidInput(f"{name} must be from {lo} to {hi if hi is not None else 'any'}, got {value}",
                           "INVALID_ARGUMENT")
    return value
