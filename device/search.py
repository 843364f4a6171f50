"""1:N and N:N search: faces of an image against the persons of a collection, open set.

Persons are ranked by their best face. Scores are calibrated (device/vision/calibration.py); a face whose best
person scores under `min_similarity_score` is unknown, which is a normal answer, not an error. Results are
records (`Recognition`, `Match`); each front end makes its own JSON from them.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field

import numpy as np

from .store.db import Collection, Store
from .store.index import CollectionIndex
from .vision.face import Face
from .vision.pipeline import Pipeline

# Faces fetched per requested person: a person with many photos fills several of the nearest faces.
FACES_PER_RESULT = 20


@dataclass
class Match:
    """One enrolled person for one face: the calibrated score of the person's best face."""

    person_id: str
    person_name: str
    metadata: dict
    similarity_score: float
    face_id: int
    cosine: float


@dataclass
class Recognition:
    """One face of a searched image and the persons it matched, best first (none: unknown)."""

    face: Face
    matches: list[Match] = field(default_factory=list)

    @property
    def known(self) -> bool:
        return bool(self.matches)

    @property
    def best(self) -> Match | None:
        return self.matches[0] if self.matches else None


class Searcher:
    """One in-memory index per collection, shared by every thread and by enrolment (one per engine)."""

    def __init__(self, store: Store, pipeline: Pipeline):
        self.store = store
        self.pipeline = pipeline
        self._indexes: dict[int, CollectionIndex] = {}
        self._lock = threading.Lock()

    def index(self, collection: Collection) -> CollectionIndex:
        with self._lock:  # two threads must not each load the same collection
            index = self._indexes.get(collection.id)
            if index is None:
                index = self._indexes[collection.id] = CollectionIndex(self.store, collection)
            return index

    def forget(self, collection: Collection) -> None:
        """Drop a deleted collection's index."""
        with self._lock:
            self._indexes.pop(collection.id, None)

    def collection(self, name: str) -> Collection:
        collection = self.store.collection(name)
        self.store.check_embedder(collection, self.pipeline.embedder.identity)
        return collection

    def persons_for(self, collection: Collection, embedding: np.ndarray, max_results: int,
                    min_score: float) -> list[Match]:
        """The best `max_results` persons for one embedding, at or above `min_score`, best first."""
        # Faces under the score asked for can never be returned: the index need not rank them.
        floor = self.pipeline.calibration.cosine_for(min_score) - 1e-6 if min_score > 0 else None
        ids, cosines = self.index(collection).search(embedding, max(1, max_results) * FACES_PER_RESULT,
                                                     floor=floor)
        nearest = list(zip(ids.tolist(), cosines.tolist()))
        owners = self.store.face_owners([face_id for face_id, _ in nearest])
        best: dict[str, Match] = {}
        for face_id, cosine in nearest:  # already best first: the first face of a person is its best
            if face_id not in owners or owners[face_id][0] in best:
                continue
            score = float(self.pipeline.calibration.score(cosine))
            if score < min_score:
                break
            person_id, name, metadata = owners[face_id]
            best[person_id] = Match(person_id, name, metadata, score, face_id, cosine)
            if len(best) >= max_results:
                break
        return list(best.values())

    def best_other_person(self, collection: Collection, embedding: np.ndarray, person_id: str | None
                          ) -> Match | None:
        """The most similar person other than `person_id` (duplicate checks at enrolment)."""
        for match in self.persons_for(collection, embedding, 2, 0.0):
            if match.person_id != person_id:
                return match
        return None

    def recognise(self, collection: Collection, faces: list[Face], min_score: float, max_results: int = 1
                  ) -> list[Recognition]:
        """Each embedded face with its matches (N:N: every face of the image, matched or not)."""
        return [Recognition(face, self.persons_for(collection, face.embedding, max_results, min_score))
                for face in faces]
