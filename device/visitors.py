"""Recurring unknown visitors: an anonymous id for each unknown face, recognised again on later visits.

When a camera decides `unknown` for a track, the track's best evidence frames (embedding, aligned crop as JPEG,
quality) are matched against the visitors already kept for the camera's collection: the calibrated score of
the best pair (track face x stored face) at or above `visitors.match_score` (default: the search threshold,
recognition.min_similarity_score) makes it that visitor again (its last_seen and visits go up, and its best
`visitors.faces` faces are kept, highest quality first); otherwise a new visitor (uuid4) is made. The id goes
into the track's events as `visitor_id` (and into the history's `visitor_id` column).

Promotion turns a visitor into a named person of the collection from its stored faces, through the same
enrolment checks as photos (no duplicate of another person, the faces agree with each other); the visitor is
then gone, and its events are re-attributed to the new person (so erasing the person erases them too).

Retention: visitors unseen for `visitors.retention_days` are erased with their embeddings, thumbnails, events and
queued messages (schema step 6 trigger), face_log is trimmed, and the WAL is checkpointed so that nothing of them
lingers in the file (secure_delete). retention_days = 0 keeps no visitor at all.

Used by the camera loop, the HTTP API (GET /visitors, POST /visitors/{id}/promote, DELETE /visitors/{id}) and
the CLI (`faced visitors ...`) through Engine.visitors: one code path.
"""
from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from types import SimpleNamespace

import numpy as np

from .errors import InvalidInput, NotFound
from .imaging import encode_thumbnail
from .validation import utc_iso

DAY_S = 86400.0
# A visitor row as _visitor() reads it (list and get).
VISITOR_ROWS = ("SELECT v.id, c.name, v.first_seen, v.last_seen, v.visits, v.camera, "
                "(SELECT count(*) FROM visitor_faces f WHERE f.visitor_id = v.id) FROM visitors v "
                "JOIN collections c ON c.id = v.collection_id")


@dataclass
class Sighting:
    """One face of an unknown track: unit embedding, aligned 112x112 RGB crop, quality 0..1."""

    embedding: np.ndarray
    aligned: np.ndarray | None
    quality: float


class Visitors:
    def __init__(self, engine, clock=time.time):
        self.engine = engine
        self.config = engine.config.visitors
        self.clock = clock

    @property
    def enabled(self) -> bool:
        return self.config.retention_days > 0

    @property
    def match_score(self) -> float:
        configured = self.config.match_score
        return self.engine.config.recognition.min_similarity_score if configured < 0 else configured

    @property
    def store(self):
        return self.engine.store

    def _require(self) -> None:
        if not self.enabled:
            raise InvalidInput("visitors are not kept: set visitors.retention_days above 0", "VISITORS_OFF")

    # ------------------------------------------------------------------------------------------ camera
    def observe(self, collection_name: str, sightings: list[Sighting], camera: str, ts: float | None = None
                ) -> str | None:
        """The visitor id of an unknown track (an existing visitor when one matches, else a new one)."""
        sightings = [s for s in sightings if s.embedding is not None and s.aligned is not None]
        if not self.enabled or not sightings:
            return None
        ts = self.clock() if ts is None else ts
        collection = self.engine.collection(collection_name)
        keep = sorted(sightings, key=lambda s: s.quality, reverse=True)[:self.config.faces]
        calibrate = self.engine.pipeline.calibration.score
        with self.store.transaction() as connection:
            rows = connection.execute(
                "SELECT f.visitor_id, f.embedding FROM visitor_faces f JOIN visitors v ON v.id = f.visitor_id "
                "WHERE v.collection_id = ?", (collection.id,)).fetchall()
            visitor_id, best = None, self.match_score
            if rows:
                stored = np.frombuffer(b"".join(r[1] for r in rows), np.float32).reshape(len(rows), -1)
                cosines = stored @ np.array([s.embedding for s in keep], np.float32).T
                row, _ = np.unravel_index(int(np.argmax(cosines)), cosines.shape)
                score = float(calibrate(float(cosines.max())))
                if score >= best:
                    visitor_id = rows[row][0]
            if visitor_id is None:
                visitor_id = str(uuid.uuid4())
                connection.execute(
                    "INSERT INTO visitors(id, collection_id, first_seen, last_seen, visits, camera) "
                    "VALUES (?, ?, ?, ?, 1, ?)", (visitor_id, collection.id, ts, ts, camera))
            else:
                connection.execute("UPDATE visitors SET last_seen = max(last_seen, ?), visits = visits + 1, "
                                   "camera = ? WHERE id = ?", (ts, camera, visitor_id))
            for sighting in keep:
                connection.execute(
                    "INSERT INTO visitor_faces(visitor_id, quality, embedding, thumbnail, created) "
                    "VALUES (?, ?, ?, ?, ?)",
                    (visitor_id, float(sighting.quality), np.asarray(sighting.embedding, np.float32).tobytes(),
                     encode_thumbnail(sighting.aligned), ts))
            connection.execute(  # keep the best faces only
                "DELETE FROM visitor_faces WHERE visitor_id = ? AND id NOT IN (SELECT id FROM visitor_faces "
                "WHERE visitor_id = ? ORDER BY quality DESC, id DESC LIMIT ?)",
                (visitor_id, visitor_id, self.config.faces))
        return visitor_id

    # ------------------------------------------------------------------------------------- management
    def list(self, collection_name: str | None = None) -> list[dict]:
        sql = VISITOR_ROWS
        values: tuple = ()
        if collection_name is not None:
            sql += " WHERE c.id = ?"
            values = (self.engine.collection(collection_name).id,)
        rows = self.store.connection.execute(sql + " ORDER BY v.last_seen DESC", values).fetchall()
        return [_visitor(r) for r in rows]

    def get(self, visitor_id: str) -> dict:
        row = self.store.connection.execute(VISITOR_ROWS + " WHERE v.id = ?", (str(visitor_id),)).fetchone()
        if row is None:
            raise NotFound(f"visitor {visitor_id!r} does not exist", "VISITOR_NOT_FOUND")
        return _visitor(row)

    def thumbnail(self, visitor_id: str) -> bytes:
        """The visitor's best stored face (highest quality), JPEG."""
        visitor = self.get(visitor_id)
        row = self.store.connection.execute(
            "SELECT thumbnail FROM visitor_faces WHERE visitor_id = ? ORDER BY quality DESC LIMIT 1",
            (visitor["visitor_id"],)).fetchone()
        if row is None:
            raise NotFound(f"visitor {visitor_id!r} has no stored face", "VISITOR_NOT_FOUND")
        return bytes(row[0])

    def forget(self, visitor_id: str) -> dict:
        """Erase a visitor with its faces, events and queued messages."""
        visitor = self.get(visitor_id)
        with self.store.transaction() as connection:
            connection.execute("DELETE FROM visitors WHERE id = ?", (visitor["visitor_id"],))
        self.store.checkpoint()
        return {**visitor, "erased": True}

    def promote(self, visitor_id: str, person_name: str, collection_name: str | None = None,
                force: bool = False):
        """A named person from the visitor's stored faces (enrolment's checks); returns the Enrolment."""
        from .enrolment import Candidate, Outcome
        from .store.portable import decode_thumbnail

        visitor = self.get(visitor_id)
        rows = self.store.connection.execute(
            "SELECT id, quality, embedding, thumbnail FROM visitor_faces WHERE visitor_id = ? ORDER BY quality DESC",
            (visitor["visitor_id"],)).fetchall()
        candidates = []
        for face_id, quality, embedding, thumbnail in rows:
            outcome = Outcome(f"visitor-{visitor['visitor_id'][:8]}-{face_id}.jpg", quality=int(round(quality * 100)))
            face = SimpleNamespace(embedding=np.frombuffer(embedding, np.float32).copy(),
                                   aligned=decode_thumbnail(thumbnail))
            candidates.append(Candidate(outcome, face))
        enrolment = self.engine.add_person(collection_name or visitor["collection_name"], person_name, candidates,
                                           {"promoted_from_visitor": visitor["visitor_id"]}, force)
        if enrolment.person_id is not None:
            with self.store.transaction() as connection:
                connection.execute("UPDATE events SET person_id = ?, visitor_id = NULL WHERE visitor_id = ?",
                                   (enrolment.person_id, visitor["visitor_id"]))
                connection.execute("UPDATE event_outbox SET visitor_id = NULL WHERE visitor_id = ?",
                                   (visitor["visitor_id"],))
                connection.execute("DELETE FROM visitors WHERE id = ?", (visitor["visitor_id"],))
            self.store.checkpoint()
        return enrolment

    # --------------------------------------------------------------------------------------- retention
    def expire(self, now: float | None = None) -> dict:
        """Erase visitors unseen for retention_days (all of them when it is 0) and trim the face log."""
        now = self.clock() if now is None else now
        cutoff = now - self.config.retention_days * DAY_S if self.enabled else float("inf")
        with self.store.transaction() as connection:
            erased = connection.execute("DELETE FROM visitors WHERE last_seen < ?", (cutoff,)).rowcount
            trimmed = self.store.trim_log(connection)
        if erased or trimmed:
            self.store.checkpoint()
        return {"visitors_erased": erased, "face_log_trimmed": trimmed,
                "cutoff": utc_iso(cutoff) if cutoff != float("inf") else None}


def _visitor(row) -> dict:
    return {"visitor_id": row[0], "collection_name": row[1], "first_seen": utc_iso(row[2]),
            "last_seen": utc_iso(row[3]), "visits": row[4], "camera": row[5], "faces": row[6]}
