"""Face tracks across frames and the identity decision of each track.

Association: each frame's faces continue the tracks they overlap best (IoU >= tracking.iou, greedy, best pairs
first). A face that continues no track starts one; once that new track has an embedding, it takes over a track
lost less than tracking.lost_s ago when the two embeddings are the same person (calibrated score >= the
camera's match score): someone who was hidden for a moment, or moved further than the boxes overlap, keeps
their track and gets no second event.

Evidence: while a track is undecided, each frame in which its face passes the quality gates (no code that
makes the face untrustworthy, quality score >= the camera's min_quality) is one piece of evidence: the best
person for the face (or none under the match score), its calibrated score, the quality score as its weight,
and the liveness score. The embedder runs only for such frames of undecided tracks.

Decision (quality-weighted vote, one per track):
- `recognized` as P when at least tracking.votes evidence frames name P and they carry at least tracking.agree
  of the track's evidence weight;
- `unknown` when tracking.max_evidence frames gave no such majority, or when the track leaves undecided
  (after at least tracking.min_frames frames: shorter tracks are too brief to report at all);
- `spoof` instead of either when the camera checks liveness and the track's mean liveness score is under
  liveness.threshold (passive), or, with active liveness, when the track showed no natural motion within the
  motion window (device/vision/motion.py). With active liveness no decision is taken before the motion verdict;
  a track that leaves before it is at most `unknown` (never `recognized`), with liveness.live null.
A track gives exactly one of these, then `left` when it has not been seen for tracking.lost_s.

Continuity: boxes can overlap across a scene cut or when two people cross. Every tracking.verify_s a decided
track's face (unless cropped) is embedded again; when it no longer resembles the track's face (calibrated
score under tracking.same_score) in two frames in a row, the track ends (`left`) and the face starts a new track.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..config import TrackingConfig
from ..vision.boxes import match
from ..vision.motion import MotionEvidence, MotionThresholds


@dataclass
class Evidence:
    person_id: str | None
    person_name: str | None
    score: float  # calibrated score of the best person (even when under the match score)
    weight: float  # quality score / 100
    liveness: float | None
    box: list
    thumbnail: object = None  # the aligned crop (RGB 112x112) of this frame


@dataclass
class Decision:
    type: str  # recognized | unknown | spoof
    person_id: str | None
    person_name: str | None
    score: float | None
    liveness: dict | None
    box: list
    evidence: int
    thumbnail: object = None
    visitor_id: str | None = None  # an unknown track's anonymous visitor (device/visitors.py)


@dataclass
class Track:
    id: int
    box: np.ndarray
    first_seen: float
    last_seen: float
    frames: int = 1
    evidence: list[Evidence] = field(default_factory=list)
    poor_frames: int = 0
    embedding: np.ndarray | None = None
    decision: Decision | None = None
    verified_at: float = 0.0
    mismatches: int = 0  # consecutive identity checks that failed
    embeddings: list = field(default_factory=list)  # of the evidence frames
    motion: MotionEvidence | None = None  # active liveness (cameras with liveness active/both)
    visitor_id: str | None = None

    @property
    def needs_evidence(self) -> bool:
        return self.decision is None


class Tracker:
    def __init__(self, settings: TrackingConfig, match_score: float, liveness_threshold: float | None,
                 active: MotionThresholds | None = None):
        self.settings = settings
        self.match_score = match_score
        self.liveness_threshold = liveness_threshold  # None: the camera does not check passive liveness
        self.active = active  # None: no active liveness
        self.tracks: list[Track] = []
        self._next_id = 1

    # ---------------------------------------------------------------------------------- association
    def update(self, ts: float, faces: list) -> list[tuple[Track, object]]:
        """Continue or start a track for each face; returns (track, face) pairs of this frame."""
        live = [t for t in self.tracks if t.last_seen < ts]
        used_f, result = set(), []
        for ti, fi in match([t.box for t in live], [f.box for f in faces], self.settings.iou):
            used_f.add(fi)
            track = live[ti]
            track.box, track.last_seen = np.asarray(faces[fi].box, dtype=float), ts
            track.frames += 1
            result.append((track, faces[fi]))
        for fi, face in enumerate(faces):
            if fi not in used_f:
                track = self._new_track(face, ts)
                result.append((track, face))
        return result

    def reidentify(self, track: Track, embedding: np.ndarray, ts: float, calibrate) -> Track:
        """A new track whose embedding matches a recently lost one continues that one (returned)."""
        if track.embedding is None:
            track.embedding = embedding
        if track.frames > 1 or track.evidence:
            return track
        best, best_score = None, self.match_score
        for other in self.tracks:
            if other is track or other.embedding is None or other.last_seen >= ts:
                continue
            score = calibrate(float(np.dot(other.embedding, embedding)))
            if score >= best_score:
                best, best_score = other, score
        if best is None:
            return track
        self.tracks.remove(track)
        best.box, best.last_seen, best.frames = track.box, ts, best.frames + 1
        return best

    def due_for_check(self, track: Track, ts: float) -> bool:
        """A decided track whose identity should be checked again now."""
        verify = self.settings.verify_s
        return (track.decision is not None and track.embedding is not None and verify > 0
                and ts - max(track.verified_at, track.first_seen) >= verify)

    def check(self, track: Track, face, embedding: np.ndarray, ts: float, calibrate) -> Track | None:
        """Compare a decided track's face again; returns the ended track when it is someone else now (the face
        then starts a new track of its own)."""
        if calibrate(float(np.dot(track.embedding, embedding))) >= self.settings.same_score:
            track.verified_at, track.mismatches = ts, 0  # the reference stays the evidence frames' mean
            return None
        track.mismatches += 1
        if track.mismatches < 2:  # one odd frame (a turned head) is not enough: check the next one too
            return None
        self.tracks.remove(track)
        fresh = self._new_track(face, ts)
        fresh.embedding = embedding
        return track

    def _new_track(self, face, ts: float) -> Track:
        track = Track(self._next_id, np.asarray(face.box, dtype=float), ts, ts,
                      motion=MotionEvidence(self.active) if self.active is not None else None)
        self._next_id += 1
        self.tracks.append(track)
        return track

    # ------------------------------------------------------------------------------------- evidence
    def add_evidence(self, track: Track, evidence: Evidence, embedding: np.ndarray | None = None
                     ) -> Decision | None:
        """Record one good frame; returns the track's decision when this frame settles it. The track's
        reference embedding is the mean of its evidence frames' embeddings."""
        track.evidence.append(evidence)
        if embedding is not None:
            track.embeddings.append(embedding)
            mean = np.mean(track.embeddings, axis=0)
            track.embedding = mean / max(float(np.linalg.norm(mean)), 1e-9)
        decision = self._vote(track, final=False)
        if decision is not None:
            track.decision = decision
        return decision

    def _vote(self, track: Track, final: bool) -> Decision | None:
        settings = self.settings
        evidence = track.evidence
        total = sum(e.weight for e in evidence)
        by_person: dict[str, list[Evidence]] = {}
        for item in evidence:
            if item.person_id is not None:
                by_person.setdefault(item.person_id, []).append(item)
        winner = None
        if by_person and total > 0:
            person, items = max(by_person.items(), key=lambda kv: sum(e.weight for e in kv[1]))
            weight = sum(e.weight for e in items)
            if len(items) >= settings.votes and weight >= settings.agree * total:
                winner = items
        if winner is None and not final and len(evidence) < settings.max_evidence:
            return None
        if not evidence and not final:
            return None
        active = track.motion.verdict() if track.motion is not None else None
        if track.motion is not None and active is None and not final:
            return None  # wait for the motion verdict
        liveness = self._liveness(evidence, track.motion, active)
        spoof = liveness is not None and liveness["live"] is False
        if liveness is not None and liveness["live"] is None and track.motion is not None:
            winner = None  # left before active liveness could tell: never `recognized`
        chosen = winner or evidence
        best = max(chosen, key=lambda e: e.weight) if chosen else None
        if winner is not None:
            total_w = sum(e.weight for e in winner)
            score = sum(e.score * e.weight for e in winner) / total_w
            kind = "spoof" if spoof else "recognized"
            return Decision(kind, winner[0].person_id, winner[0].person_name, round(score, 4), liveness,
                            best.box, len(evidence), best.thumbnail)
        score = round(max(e.score for e in evidence), 4) if evidence else None
        return Decision("spoof" if spoof else "unknown", None, None, score, liveness,
                        best.box if best else [int(round(v)) for v in track.box], len(evidence),
                        best.thumbnail if best else None)

    def _liveness(self, evidence: list[Evidence], motion, active: dict | None) -> dict | None:
        """{"score": passive mean or None, "live": bool or None[, "active": the motion verdict]}; None when the
        camera checks neither."""
        if self.liveness_threshold is None and motion is None:
            return None
        live = None
        liveness: dict = {"score": None, "live": None}
        if self.liveness_threshold is not None:
            scores = [e.liveness for e in evidence if e.liveness is not None]
            mean = float(np.mean(scores)) if scores else None
            liveness["score"] = None if mean is None else round(mean, 4)
            live = None if mean is None else bool(mean >= self.liveness_threshold)
        if motion is not None:
            moving = None if active is None else bool(active["live"])
            liveness["active"] = active if active is not None else {"live": None, **motion.measures()}
            if live is False or moving is False:
                live = False
            elif self.liveness_threshold is None or live is True:
                live = moving
        liveness["live"] = live
        return liveness

    # --------------------------------------------------------------------------------------- ending
    def expire(self, now: float, everything: bool = False) -> list[tuple[Track, Decision | None]]:
        """Tracks unseen for tracking.lost_s (all of them with `everything`), removed; each with the decision
        it makes on leaving when it had none yet (None for tracks too short to report)."""
        gone = [t for t in self.tracks if everything or now - t.last_seen >= self.settings.lost_s]
        result = []
        for track in gone:
            self.tracks.remove(track)
            late = None
            if track.decision is None and track.frames >= self.settings.min_frames:
                late = track.decision = self._vote(track, final=True)
            result.append((track, late))
        return result
