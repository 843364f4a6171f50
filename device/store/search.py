"""1:N and N:N search: faces of an image against the persons of a collection, open set.

Persons are ranked by their best face. Scores are calibrated (device/vision/calibration.py); a face whose best
person scores under `min_similarity_score` is unknown, which is a normal answer, not an error.
"""
from __future__ import annotations

import base64
from dataclasses import dataclass

import numpy as np

from ..vision.face import Face
from ..vision.pipeline import Pipeline
from .db import Collection, Store
from .index import CollectionIndex

# Faces fetched per requested person: a person with many photos fills several of the nearest faces.
FACES_PER_RESULT = 20


@dataclass
class Match:
    person_id: str
    person_name: str
    metadata: dict
    similarity_score: float
    face_id: int
    cosine: float

    def to_dict(self) -> dict:
        return {"person_id": self.person_id, "person_name": self.person_name, "metadata": self.metadata,
                "similarity_score": round(self.similarity_score, 4)}


class Searcher:
    """Holds one in-memory index per collection (kept in step with the file); one per process."""

    def __init__(self, store: Store, pipeline: Pipeline):
        self.store = store
        self.pipeline = pipeline
        self._indexes: dict[str, CollectionIndex] = {}

    def index(self, collection: Collection) -> CollectionIndex:
        index = self._indexes.get(collection.name)
        if index is None or index.collection.id != collection.id:
            index = self._indexes[collection.name] = CollectionIndex(self.store, collection)
        return index

    def collection(self, name: str) -> Collection:
        collection = self.store.collection(name)
        self.store.check_embedder(collection, self.pipeline.embedder.identity)
        return collection

    def persons_for(self, collection: Collection, embedding: np.ndarray, max_results: int,
                    min_score: float) -> list[Match]:
        """The best `max_results` persons for one embedding, at or above `min_score`, best first."""
        nearest = self.index(collection).nearest(embedding, max(1, max_results) * FACES_PER_RESULT)
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

    def best_other_person(self, collection: Collection, embedding: np.ndarray, person_id: str | None) -> dict | None:
        """The most similar person other than `person_id` (duplicate checks at enrolment)."""
        for match in self.persons_for(collection, embedding, 2, 0.0):
            if match.person_id != person_id:
                return match.to_dict()
        return None

    def search_image(self, collection_name: str, image: np.ndarray, min_score: float, max_results: int = 1
                     ) -> dict:
        """N:N: every face of the image, matched or not (contract 2's shape plus boxes)."""
        collection = self.collection(collection_name)
        faces = self.pipeline.analyze(image)
        results, unknown = [], []
        for face in faces:
            matches = self.persons_for(collection, face.embedding, max_results, min_score)
            thumbnail = face_thumbnail_base64(face)
            if not matches:
                unknown.append((thumbnail, face))
                continue
            for match in matches:
                results.append({**match.to_dict(), "face_base_64": thumbnail, "box": _box(face)})
        results.sort(key=lambda r: -r["similarity_score"])
        return {
            "person_search_results": results,
            "unrecognized_face_thumbnails_base_64": [t for t, _ in unknown],
            "unrecognized_faces": [{"box": _box(face)} for _, face in unknown],
        }


def face_thumbnail_base64(face: Face) -> str:
    from .enrol import encode_thumbnail

    return base64.b64encode(encode_thumbnail(face.aligned)).decode("ascii")


def _box(face: Face) -> list[float]:
    return [round(float(v), 2) for v in face.box]
