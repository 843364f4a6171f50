"""Enrolment: photos to stored faces, refusing the photos that would poison later searches.

Each photo must hold exactly one usable face (usable: none of the blocking quality codes). A face that is
already enrolled for another person of the collection (score >= duplicate_score) is refused, naming that
person; a face that does not match the person's other photos (best score < match_score) is refused as
FACE_DOES_NOT_MATCH_PERSON. `force` accepts both anyway. Every photo gets an outcome saying what happened.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import FacedError
from .imaging import ImageLimits, decode_image, encode_thumbnail, read_file
from .search import Searcher
from .store.db import Collection, NewFace, Store
from .validation import check_metadata, clean_name
from .vision import quality as q
from .vision.face import Face
from .vision.pipeline import Pipeline

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
    sha256: str | None = None  # of the photo's bytes


class Enroller:
    """Enrolment through the engine's store, pipeline and (shared) searcher."""

    def __init__(self, store: Store, pipeline: Pipeline, searcher: Searcher, duplicate_score: float = 0.85,
                 limits: ImageLimits = ImageLimits()):
        self.store = store
        self.pipeline = pipeline
        self.searcher = searcher
        self.duplicate_score = duplicate_score
        self.match_score = pipeline.config.recognition.match_score
        self.limits = limits

    # ------------------------------------------------------------------------------------- one photo
    def candidate(self, image: np.ndarray | None, source: str, error: FacedError | None = None,
                  sha256: str | None = None) -> Candidate:
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
        return Candidate(outcome, face, sha256)

    def photo(self, data: bytes, source: str) -> Candidate:
        """A photo's bytes (a file's or a request's) as a candidate; a bad image is an outcome, not an error."""
        try:
            return self.candidate(decode_image(data, self.limits), source, sha256=hashlib.sha256(data).hexdigest())
        except FacedError as exc:
            return self.candidate(None, source, exc)

    def read(self, path: str) -> Candidate:
        try:
            data = read_file(path, self.limits)
        except FacedError as exc:
            return self.candidate(None, path, exc)
        return self.photo(data, path)

    # --------------------------------------------------------------------------------------- persons
    def add_person(self, collection_name: str, name: str, candidates: list[Candidate], metadata: dict | None = None,
                   force: bool = False) -> tuple[str | None, list[Outcome]]:
        """Create a person from the accepted photos (all in one transaction). No accepted photo: no person."""
        name = clean_name(name, "person name")
        metadata = check_metadata(metadata)
        collection = self._collection(collection_name)
        keep = self._screen(collection, candidates, None, None, force)
        if not keep:
            return None, [c.outcome for c in candidates]
        person_id, face_ids = self.store.add_person(collection, name, [self._new_face(c) for c in keep], metadata)
        self._accept(keep, face_ids)
        return person_id, [c.outcome for c in candidates]

    def add_faces(self, person_id: str, candidates: list[Candidate], force: bool = False) -> list[Outcome]:
        person = self.store.person(person_id)
        collection = self._collection(person.collection)
        keep = self._screen(collection, candidates, person.id, self.store.person_vectors(person.id), force)
        if keep:
            self._accept(keep, self.store.add_faces(person.id, [self._new_face(c) for c in keep]))
        return [c.outcome for c in candidates]

    def _screen(self, collection: Collection, candidates: list[Candidate], person_id: str | None,
                existing: np.ndarray | None, force: bool) -> list[Candidate]:
        """The candidates that pass the duplicate and consistency checks (the others get their reason)."""
        accepted = [c for c in candidates if c.face is not None]
        self._refuse_duplicates(collection, accepted, person_id, force)
        self._check_consistency([c for c in accepted if c.face is not None], existing, force)
        return [c for c in accepted if c.face is not None]

    def enrol_folder(self, folder: str | Path, collection_name: str, force: bool = False, progress=None
                     ) -> dict:
        """One person per subfolder, named as the folder; each person is its own transaction.

        A subfolder whose name is not a valid person name, or that holds no photo, is listed among the
        rejections and the others go on. Enrolling the same folder again adds the photos that the person of
        that name does not have yet (by the photo's sha256) and skips the ones it has."""
        folder = Path(folder)
        if not folder.is_dir():
            raise FacedError(f"{folder} is not a folder", "NOT_A_FOLDER")
        people = sorted(p for p in folder.iterdir() if p.is_dir())
        if not people:
            raise FacedError(f"{folder} has no subfolders (one per person)", "NO_PERSONS")
        collection = self._collection(collection_name)
        summary = {"persons": [], "accepted": 0, "skipped": 0, "rejected": []}
        for person_dir in people:
            self._enrol_subfolder(collection, person_dir, force, summary)
            if progress is not None:
                progress(person_dir.name)
        return summary

    def _enrol_subfolder(self, collection: Collection, person_dir: Path, force: bool, summary: dict) -> None:
        try:
            name = clean_name(person_dir.name, "person name (the subfolder's name)")
        except FacedError as exc:
            summary["rejected"].append({"source": str(person_dir), "accepted": False, **exc.to_dict()})
            return
        photos = sorted(p for p in person_dir.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())
        if not photos:
            summary["rejected"].append({"source": str(person_dir), "accepted": False, "code": "NO_PHOTOS",
                                        "message": "the subfolder holds no photo"})
            return
        person = self.store.person_named(collection, name)
        known = self.store.photo_hashes(person.id) if person else set()
        candidates = []
        for path in photos:
            candidate = self.read(str(path))
            if candidate.sha256 in known:
                summary["skipped"] += 1  # this very photo is enrolled already
                continue
            candidates.append(candidate)
        if person is None:
            person_id, outcomes = self.add_person(collection.name, name, candidates, force=force)
        else:
            person_id, outcomes = person.id, self.add_faces(person.id, candidates, force) if candidates else []
        summary["persons"].append({"person_name": name, "person_id": person_id,
                                   "accepted": sum(o.accepted for o in outcomes), "photos": len(photos)})
        summary["accepted"] += sum(o.accepted for o in outcomes)
        summary["rejected"] += [o.to_dict() for o in outcomes if not o.accepted]

    # --------------------------------------------------------------------------------------- checks
    def _refuse_duplicates(self, collection: Collection, candidates: list[Candidate], person_id: str | None,
                           force: bool) -> None:
        for candidate in candidates:
            match = self.searcher.best_other_person(collection, candidate.face.embedding, person_id)
            if match and match.similarity_score >= self.duplicate_score:
                candidate.outcome.details["duplicate_of"] = {
                    "person_id": match.person_id, "person_name": match.person_name,
                    "similarity_score": round(match.similarity_score, 4)}
                if not force:
                    candidate.outcome.code = DUPLICATE_OF_OTHER_PERSON
                    candidate.outcome.message = (f"already enrolled as {match.person_name!r} "
                                                 f"({match.person_id}), score {match.similarity_score:.3f}")
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
        return self.searcher.collection(name)

    @staticmethod
    def _accept(candidates: list[Candidate], face_ids: list[int]) -> None:
        for candidate, face_id in zip(candidates, face_ids):
            candidate.outcome.accepted, candidate.outcome.face_id = True, face_id

    @staticmethod
    def _new_face(candidate: Candidate) -> NewFace:
        return NewFace(embedding=candidate.face.embedding, thumbnail=encode_thumbnail(candidate.face.aligned),
                       quality=candidate.outcome.quality, source=os.path.basename(candidate.outcome.source),
                       sha256=candidate.sha256)

