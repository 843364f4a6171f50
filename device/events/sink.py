"""Track decisions and departures -> events: the JSON payload (this is the MQTT edge), the outbox, presence
and one log line per event.

Payload (topic `<prefix>/<device_id>/events`): event_id (uuid), seq (increasing per device), type
(recognized | unknown | spoof | left), camera, track_id (per camera, counted from 1 at each start of the
daemon), person_id, person_name, visitor_id (an unknown track's anonymous visitor, device/visitors.py; null
otherwise or when visitors.retention_days = 0), score (calibrated,
0-1: for `recognized` the quality-weighted mean of the agreeing frames; for `unknown` the best score seen),
liveness ({"score", "live"} or null when the camera does not check it), box [x, y, w, h] (pixels of the best
frame), ts (ISO 8601 UTC, milliseconds), evidence (good frames the decision rests on), thumbnail (base64 JPEG of
the aligned face; not on `left`, not in the history).
"""
from __future__ import annotations

import base64
import logging

from ..imaging import encode_jpeg
from .outbox import Outbox, utc_iso
from .presence import Presence

log = logging.getLogger("faced.events")


class EventSink:
    def __init__(self, outbox: Outbox, presence: Presence | None, thumbnails: bool = True):
        self.outbox = outbox
        self.presence = presence
        self.thumbnails = thumbnails
        self.listeners: list = []  # called with each published event (Home Assistant's camera states)

    def decided(self, camera: str, track, decision, ts: float) -> dict | None:
        event = {
            "type": decision.type, "camera": camera, "track_id": track.id,
            "person_id": decision.person_id, "person_name": decision.person_name,
            "visitor_id": decision.visitor_id,
            "score": decision.score, "liveness": decision.liveness, "box": list(decision.box),
            "ts": utc_iso(ts), "evidence": decision.evidence,
        }
        if self.thumbnails and decision.thumbnail is not None:
            event["thumbnail"] = base64.b64encode(encode_jpeg(decision.thumbnail, 85)).decode("ascii")
        published = self._record(event)
        if published and decision.type == "recognized" and self.presence is not None:
            self.presence.arrived(decision.person_id, camera, ts)
        return published

    def left(self, camera: str, track, ts: float) -> dict | None:
        decision = track.decision
        named = decision is not None and decision.type == "recognized"
        event = {
            "type": "left", "camera": camera, "track_id": track.id,
            "person_id": decision.person_id if named else None,
            "person_name": decision.person_name if named else None,
            "visitor_id": decision.visitor_id if decision is not None else None,
            "score": None, "liveness": None, "box": [int(round(float(v))) for v in track.box],
            "ts": utc_iso(ts), "evidence": decision.evidence if decision else 0,
            "duration_s": round(track.last_seen - track.first_seen, 2),
        }
        published = self._record(event)
        if named and self.presence is not None:
            self.presence.left(decision.person_id, ts)
        return published

    def _record(self, event: dict) -> dict | None:
        published = self.outbox.record(event)
        if published is None:
            return None
        for listener in self.listeners:
            listener(published)
        who = published["person_name"] or "-"
        score = "" if published["score"] is None else f" score {published['score']:.2f}"
        live = published.get("liveness") or {}
        live_text = "" if live.get("score") is None else f" liveness {live['score']:.2f}"
        log.info("%s: %s %s track %s%s%s seq %d", published["camera"], published["type"], who,
                 published["track_id"], score, live_text, published["seq"])
        return published
