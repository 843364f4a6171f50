"""Enrolment: photos to stored faces, refusing the photos that would poison later searches.

Each photo must hold exactly one usable face (usable: none of the blocking quality codes). A face that is
already enrolled for another person of the collection (score >= duplicate_score) is refused, naming that
person; a face that does not match the person's other photos (best score < match_score) is refused as
FACE_DOES_NOT_MATCH_PERSON. `force` accepts both anyway. Every photo gets an outcome saying what happened.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from ..errors import FacedError
from ..imaging import ImageLimits, read_image_file
from ..vision import quality as q
from ..vision.face import Face
from ..vision.pipeline import Pipeline
from .db import Collection, NewFace, Store
from .search import Searcher

# Quality codes that make a photo unusable as a reference.
BLOCKING = (q.FACE_TOO_SMALL, q.FACE_CROPPED, q.FACE_ANGLE_TOO_LARGE, q.EYES_CLOSED, q.FACE_IS_OCCLUDED)
DUPLICATE_OF_OTHER_PERSON = "DUPLICATE_OF_OTHER_PERSON"
FACE_DOES_NOT_MATCH_PERSON = "FACE_DOES_NOT_MATCH_PERSON"
IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif"}


@dataclass
class Outcome:
    """What happened to one photo."""

    source: str
    accepted: bool = False
    face_id: int | None = None
    code: str | None = None
    message: str = ""
    quality: int | None = None
    details: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        result = {"source": self.source, "accepted": self.accepted}
        if self.face_id is not None:
            result["face_id"] = self.face_id
        if self.code:
            result["code"] = self.code
        if self.message:
            result["message"] = self.message
        if self.quality is not None:
            result["quality"] = self.quality
        result.update(self.details)
        return result


@dataclass
class Candidate:
    outcome: Outcome
    face: Face | None = None


class Enroller:
    def __init__(self, store: Store, pipeline: Pipeline, duplicate_score: float = 0.85,
                 limits: ImageLimits = ImageLimits()):
        self.store = store
        self.pipeline = pipeline
        self.searcher = Searcher(store, pipeline)
        self.duplicate_score = duplicate_score
        self.match_score = pipeline.config.recognition.match_score
        self.limits = limits

    # ------------------------------------------------------------------------------------- one photo
    def candidate(self, image: np.ndarray | None, source: str, error: FacedError | None = None) -> Candidate:
        """The photo's one usable face, embedded, or an outcome saying why there is none."""
        outcome = Outcome(source)
        if error is not None:
            outcome.code, outcome.message = error.code, error.message
            return Candidate(outcome)
        faces = self.pipeline.assess(image, self.pipeline.detect(image))
        usable = [f for f in faces if not set(f.quality.codes) & set(BLOCKING)]
        if not faces:
            outcome.code, outcome.message = q.FACE_NOT_FOUND, "no face found"
        elif len(usable) > 1:
            outcome.code, outcome.message = q.TOO_MANY_FACES, f"{len(usable)} usable faces; one is required"
        elif not usable:
            main = faces[0]
            outcome.code = next(c for c in main.quality.codes if c in BLOCKING)
            outcome.message, outcome.quality = f"face not usable: {', '.join(main.quality.codes)}", main.quality.score
        if outcome.code:
            return Candidate(outcome)
        face = self.pipeline.embed(image, usable)[0]
        outcome.quality = face.quality.score
        return Candidate(outcome, face)

    def read(self, path: str) -> Candidate:
        try:
            return self.candidate(read_image_file(path, self.limits), path)
        except FacedError as exc:
            return self.candidate(None, path, exc)

    # --------------------------------------------------------------------------------------- persons
    def add_person(self, collection_name: str, name: str, candidates: list[Candidate], metadata: dict | None = None,
                   force: bool = False) -> tuple[str | None, list[Outcome]]:
        """Create a person from the accepted photos (all in one transaction). No accepted photo: no person."""
        collection = self._collection(collection_name)
        accepted = [c for c in candidates if c.face is not None]
        self._refuse_duplicates(collection, accepted, None, force)
        self._check_consistency([c for c in accepted if c.face is not None], None, force)
        keep = [c for c in accepted if c.face is not None]
        if not keep:
            return None, [c.outcome for c in candidates]
        person_id, face_ids = self.store.add_person(collection, name, [self._new_face(c) for c in keep], metadata)
        self._accept(keep, face_ids)
        return person_id, [c.outcome for c in candidates]

    def add_faces(self, person_id: str, candidates: list[Candidate], force: bool = False) -> list[Outcome]:
        person = self.store.person(person_id)
        collection = self._collection(person.collection)
        accepted = [c for c in candidates if c.face is not None]
        self._refuse_duplicates(collection, accepted, person_id, force)
        self._check_consistency([c for c in accepted if c.face is not None], self.store.person_vectors(person_id),
                                force)
        keep = [c for c in accepted if c.face is not None]
        if keep:
            self._accept(keep, self.store.add_faces(person_id, [self._new_face(c) for c in keep]))
        return [c.outcome for c in candidates]

    def enrol_folder(self, folder: str | Path, collection_name: str, force: bool = False, progress=None
                     ) -> dict:
        """One person per subfolder, named exactly as the folder; each person is its own transaction."""
        folder = Path(folder)
        people = sorted(p for p in folder.iterdir() if p.is_dir())
        if not people:
            raise FacedError(f"{folder} has no subfolders (one per person)", "NO_PERSONS")
        self._collection(collection_name)
        summary = {"persons": [], "accepted": 0, "rejected": []}
        for person_dir in people:
            photos = sorted(p for p in person_dir.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)
            candidates = [self.read(str(p)) for p in photos]
            person_id, outcomes = self.add_person(collection_name, person_dir.name, candidates, force=force)
            summary["persons"].append({"person_name": person_dir.name, "person_id": person_id,
                                       "accepted": sum(o.accepted for o in outcomes), "photos": len(outcomes)})
            summary["accepted"] += sum(o.accepted for o in outcomes)
            summary["rejected"] += [o.to_dict() for o in outcomes if not o.accepted]
            if progress is not None:
                progress(person_dir.name)
        return summary

    # --------------------------------------------------------------------------------------- checks
    def _refuse_duplicates(self, collection: Collection, candidates: list[Candidate], person_id: str | None,
                           force: bool) -> None:
        for candidate in candidates:
            match = self.searcher.best_other_person(collection, candidate.face.embedding, person_id)
            if match and match["similarity_score"] >= self.duplicate_score:
                candidate.outcome.details["duplicate_of"] = match
                if not force:
                    candidate.outcome.code = DUPLICATE_OF_OTHER_PERSON
                    candidate.outcome.message = (f"already enrolled as {match['person_name']!r} "
                                                 f"({match['person_id']}), score {match['similarity_score']:.3f}")
                    candidate.face = None

    def _check_consistency(self, candidates: list[Candidate], existing: np.ndarray | None, force: bool) -> None:
        """Each photo must match the person's other photos: the stored ones, else the other new ones."""
        vectors = [c.face.embedding for c in candidates]
        for index, candidate in enumerate(candidates):
            others = existing if existing is not None and len(existing) else np.array(
                [v for j, v in enumerate(vectors) if j != index]).reshape(-1, len(vectors[index]))
            if not len(others):
                continue  # a person's first photo has nothing to agree with
            best = float(self.pipeline.calibration.score(float(np.max(others @ candidate.face.embedding))))
            candidate.outcome.details["best_match_with_person"] = round(best, 4)
            if best < self.match_score and not force:
                candidate.outcome.code = FACE_DOES_NOT_MATCH_PERSON
                candidate.outcome.message = (f"does not match the person's other photos (best score {best:.3f} < "
                                             f"{self.match_score}); a wrong photo would poison later searches")
                candidate.face = None

    def _collection(self, name: str) -> Collection:
        collection = self.store.collection(name)
        self.store.check_embedder(collection, self.pipeline.embedder.identity)
        return collection

    @staticmethod
    def _accept(candidates: list[Candidate], face_ids: list[int]) -> None:
        for candidate, face_id in zip(candidates, face_ids):
            candidate.outcome.accepted, candidate.outcome.face_id = True, face_id

    @staticmethod
    def _new_face(candidate: Candidate) -> NewFace:
        return NewFace(embedding=candidate.face.embedding, thumbnail=encode_thumbnail(candidate.face.aligned),
                       quality=candidate.outcome.quality, source=os.path.basename(candidate.outcome.source))


def encode_thumbnail(aligned_rgb: np.ndarray) -> bytes:
    """The aligned 112x112 crop as a JPEG (quality 95: `faced reembed` recomputes vectors from it)."""
    ok, data = cv2.imencode(".jpg", cv2.cvtColor(aligned_rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 95])
    if not ok:
        raise FacedError("cannot encode the face thumbnail", "ENCODE_ERROR")
    return data.tobytes()
