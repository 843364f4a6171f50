"""The camera loop: one reader and one processor thread per camera.

The reader takes frames from the source as they come and keeps only the newest one waiting: when the processor
has not taken the previous frame yet, that frame is dropped and counted (newest wins), so a slow CPU makes the
camera skip frames instead of falling behind. The processor runs the engine on each frame it takes: detection
on every frame, the tracker, and for undecided tracks the quality gates, passive liveness, the embedder and the
search, through the same Engine and Pipeline calls as the CLI and the API. Decisions and departures go to the
sink (device/events/sink.py turns them into events).
"""
from __future__ import annotations

import logging
import threading
import time
from collections import deque

import cv2
import numpy as np

from ..config import CameraConfig
from ..errors import ConfigError, FacedError
from ..visitors import Sighting
from ..vision import quality as quality_codes
from .priority import Priority
from .sources import Source, open_source
from ..vision.motion import MotionThresholds
from .tracker import Evidence, Tracker

log = logging.getLogger("faced.camera")
FPS_WINDOW_S = 5.0
STAGES = ("detect", "track", "quality", "liveness", "embed", "search", "frame")


class StageTimes:
    """Seconds spent per stage (calls, total, max), for /cameras and `faced bench camera`."""

    def __init__(self):
        self._lock = threading.Lock()
        self.totals = {name: [0, 0.0, 0.0] for name in STAGES}

    def add(self, name: str, seconds: float) -> None:
        with self._lock:
            entry = self.totals[name]
            entry[0] += 1
            entry[1] += seconds
            entry[2] = max(entry[2], seconds)

    def summary(self) -> dict:
        with self._lock:
            return {name: {"calls": n, "mean_ms": round(1000 * total / n, 2) if n else None,
                           "max_ms": round(1000 * peak, 2) if n else None}
                    for name, (n, total, peak) in self.totals.items()}


class Camera:
    def __init__(self, name: str, settings: CameraConfig, engine, sink, priority: Priority | None = None,
                 source: Source | None = None):
        self.name = name
        self.settings = settings
        self.engine = engine
        self.sink = sink
        self.priority = priority or Priority()
        config = engine.config
        if not settings.collection and not engine.collections():
            raise ConfigError("the database has no collection yet: create one (`faced collections create NAME`) "
                              "and enrol persons, then start the camera")
        self.collection = settings.collection or engine.only_collection().name
        engine.searcher.collection(self.collection)  # exists, and its vectors fit this embedder
        self.match_score = (config.recognition.min_similarity_score if settings.match_score is None
                            else settings.match_score)
        self.liveness = settings.liveness in ("passive", "both")
        self.active = settings.liveness in ("active", "both")
        self.tracker = Tracker(config.tracking, self.match_score, config.liveness.threshold if self.liveness else None,
                               MotionThresholds() if self.active else None)
        self.source = source or open_source(settings.source, settings.loop)
        self.times = StageTimes()
        self.frames_read = self.processed = self.dropped = self.errors = 0
        self.last_frame_at: float | None = None
        self.heartbeat = time.monotonic()
        self._processed_at: deque = deque()
        self._pending = None
        self._reader_done = False
        self._latest = None  # (frame, [(box, label)]) for the snapshot
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._reader = threading.Thread(target=self._read, name=f"faced-camera-{name}-reader", daemon=True)
        self._processor = threading.Thread(target=self._process_loop, name=f"faced-camera-{name}", daemon=True)

    # ------------------------------------------------------------------------------------------ life
    def start(self) -> "Camera":
        self._reader.start()
        self._processor.start()
        return self

    def stop(self, timeout: float = 2.0) -> None:
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        deadline = time.monotonic() + timeout
        for thread in (self._processor, self._reader):
            if thread.is_alive():
                thread.join(max(0.0, deadline - time.monotonic()))

    def alive(self, within_s: float) -> bool:
        """The processor is not stuck (the watchdog's question)."""
        return self._stop.is_set() or time.monotonic() - self.heartbeat < within_s

    @property
    def state(self) -> str:
        if self._stop.is_set():
            return "stopped"
        return self.source.state

    # ---------------------------------------------------------------------------------------- reader
    def _read(self) -> None:
        try:
            for ts, frame in self.source.frames(self._stop):
                with self._cond:
                    if self._pending is not None:
                        self.dropped += 1
                        self.priority.dropped()
                    self._pending = (ts, frame)
                    self.frames_read += 1
                    self.last_frame_at = ts
                    self._cond.notify()
        except Exception as exc:
            self.source.state, self.source.error = "failed", f"{type(exc).__name__}: {exc}"
            log.exception("camera %s: the source failed", self.name)
        finally:
            with self._cond:
                self._reader_done = True
                self._cond.notify()
        if self.source.state == "ended":
            log.warning("camera %s: %s ended", self.name, self.source.description)

    # ------------------------------------------------------------------------------------- processor
    def _process_loop(self) -> None:
        while not self._stop.is_set():
            with self._cond:
                self._cond.wait_for(lambda: self._pending is not None or self._stop.is_set(), timeout=0.25)
                item, self._pending = self._pending, None
            self.heartbeat = time.monotonic()
            if self._stop.is_set():
                break
            try:
                if item is not None:
                    with self.priority.working():
                        self.process(*item)
                else:
                    self._expire(time.time())
            except Exception:
                self.errors += 1
                log.exception("camera %s: processing a frame failed", self.name)

    def process(self, ts: float, frame: np.ndarray) -> None:
        """One frame: detect, track, gather evidence for undecided tracks, report decisions and departures."""
        clock = time.perf_counter
        start = clock()
        pipeline = self.engine.pipeline
        known = [track.box for track in self.tracker.tracks]  # faces that passed every check already
        faces = [face for face in pipeline.detect(frame, known) if self._in_roi(face, frame.shape)]
        self.times.add("detect", clock() - start)
        mark = clock()
        pairs = self.tracker.update(ts, faces)
        self.times.add("track", clock() - mark)
        for track, face in pairs:
            if track.needs_evidence:
                self._evaluate(track, face, frame, ts)
            elif self.tracker.due_for_check(track, ts):
                self._check(track, face, frame, ts)
        self._latest = (frame, [(t.box.copy(), _label(t)) for t in self.tracker.tracks if t.last_seen == ts])
        self._expire(ts)
        self.processed += 1
        self._processed_at.append(time.monotonic())
        self.times.add("frame", clock() - start)

    def _evaluate(self, track, face, frame, ts) -> None:
        clock = time.perf_counter
        pipeline = self.engine.pipeline
        mark = clock()
        pipeline.assess(frame, [face])
        self.times.add("quality", clock() - mark)
        if track.motion is not None:
            track.motion.add(ts, face.mesh, face.aligned)
        gates = quality_codes.liveness_gates(face, face.quality, self.engine.config.liveness)
        if gates or face.quality.score < self.settings.min_quality:
            track.poor_frames += 1
            return
        live_score = None
        if self.liveness:
            mark = clock()
            pipeline.add_liveness(frame, [face])
            self.times.add("liveness", clock() - mark)
            live_score = face.liveness["score"]
        mark = clock()
        pipeline.embed(frame, [face])
        self.times.add("embed", clock() - mark)
        mark = clock()
        recognition = self.engine.search(self.collection, frame, min_score=0.0, max_results=1, faces=[face])[0]
        self.times.add("search", clock() - mark)
        track = self.tracker.reidentify(track, face.embedding, ts, pipeline.calibration.score)
        if not track.needs_evidence:
            return  # a lost track, already decided, came back
        best = recognition.best
        named = best is not None and best.similarity_score >= self.match_score
        evidence = Evidence(best.person_id if named else None, best.person_name if named else None,
                            float(best.similarity_score) if best else 0.0, face.quality.score / 100.0, live_score,
                            [int(round(float(v))) for v in face.box], face.aligned)
        decision = self.tracker.add_evidence(track, evidence, face.embedding)
        if decision is not None:
            self._decided(track, decision, ts)

    def _check(self, track, face, frame, ts) -> None:
        """Is a decided track still the same face? (see tracker.py, Continuity)"""
        pipeline = self.engine.pipeline
        pipeline.assess(frame, [face], mesh=False)
        if quality_codes.FACE_CROPPED in face.quality.codes:
            return
        mark = time.perf_counter()
        pipeline.embed(frame, [face])
        self.times.add("embed", time.perf_counter() - mark)
        ended = self.tracker.check(track, face, face.embedding, ts, pipeline.calibration.score)
        if ended is not None:
            self.sink.left(self.name, ended, ended.last_seen)
            fresh = self.tracker.tracks[-1]
            self._evaluate(fresh, face, frame, ts)

    def _expire(self, now: float) -> None:
        for track, late in self.tracker.expire(now, everything=False):
            if late is not None:
                self._decided(track, late, track.last_seen)
            if track.decision is not None:
                self.sink.left(self.name, track, track.last_seen)

    def _decided(self, track, decision, ts) -> None:
        """An unknown track gets its visitor id (device/visitors.py) before its event goes out."""
        if decision.type == "unknown" and self.engine.visitors.enabled:
            sightings = [Sighting(embedding, e.thumbnail, e.weight)
                         for e, embedding in zip(track.evidence, track.embeddings)]
            try:
                decision.visitor_id = track.visitor_id = self.engine.visitors.observe(
                    self.collection, sightings, self.name, ts)
            except FacedError as exc:
                log.warning("camera %s: visitor not recorded: %s", self.name, exc.message)
        self.sink.decided(self.name, track, decision, ts)

    def _in_roi(self, face, shape) -> bool:
        roi = self.settings.roi
        if roi is None:
            return True
        height, width = shape[:2]
        x, y, w, h = (float(v) for v in face.box)
        cx, cy = (x + w / 2) / width, (y + h / 2) / height
        return roi[0] <= cx <= roi[0] + roi[2] and roi[1] <= cy <= roi[1] + roi[3]

    # ---------------------------------------------------------------------------------------- status
    def status(self) -> dict:
        now = time.monotonic()
        while self._processed_at and now - self._processed_at[0] > FPS_WINDOW_S:
            self._processed_at.popleft()
        window = min(FPS_WINDOW_S, max(now - (self._processed_at[0] if self._processed_at else now), 1e-9))
        fps = (len(self._processed_at) - 1) / window if len(self._processed_at) > 1 else 0.0
        return {
            "name": self.name, "source": self.source.description, "kind": self.source.kind, "state": self.state,
            "error": self.source.error or None, "collection": self.collection, "liveness": self.settings.liveness,
            "fps": round(fps, 1), "source_fps": round(self.source.fps, 2) if self.source.fps else None,
            "frames": self.frames_read, "processed": self.processed, "dropped": self.dropped,
            "errors": self.errors, "reconnects": self.source.reconnects,
            "last_frame_age_s": None if self.last_frame_at is None else round(time.time() - self.last_frame_at, 2),
            "tracks": len(self.tracker.tracks),
        }

    def snapshot(self) -> bytes | None:
        """The latest processed frame as JPEG with each face's box and name drawn (None before the first)."""
        latest = self._latest
        if latest is None:
            return None
        frame, boxes = latest
        image = cv2.cvtColor(frame, cv2.COLOR_RGB2BGR)
        for box, label in boxes:
            x, y, w, h = (int(round(float(v))) for v in box)
            color = (60, 180, 60) if not label.startswith(("unknown", "spoof", "#")) else (40, 40, 220)
            cv2.rectangle(image, (x, y), (x + w, y + h), color, 2)
            cv2.putText(image, label, (x, max(12, y - 6)), cv2.FONT_HERSHEY_SIMPLEX, 0.5, color, 1, cv2.LINE_AA)
        ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 85])
        return data.tobytes() if ok else None


def _label(track) -> str:
    decision = track.decision
    if decision is None:
        return f"#{track.id}"
    return decision.person_name if decision.type == "recognized" else decision.type
