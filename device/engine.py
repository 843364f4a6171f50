"""The engine: the one object that owns faced's parts. The CLI, the HTTP API, the camera loop and the benchmarks
each get an engine and call it; none assembles parts of its own, so every front end answers the same way.

It owns the configuration, the image limits, the vision pipeline, the store (opened on first use), one searcher
per process (one in-memory index per collection, shared by enrolment and search) and the enroller.

Threads. One engine serves every thread of a process (the WSGI server's workers and the camera loop):
- shared, read-only after start: the configuration and the image limits;
- shared, locked inside: the pipeline (each TFLite interpreter runs one call at a time under its own lock;
  lazily created stages and the detector's per-size interpreters are created under the pipeline's and the
  detector's locks), the searcher (its table of indexes under one lock; each index catches up with the file
  under its own lock, then scans an immutable snapshot without it), and opening the store (the engine's lock);
- per thread: the store's SQLite connection (each thread gets its own; SQLite serialises writers with its
  busy timeout, `store.busy_timeout_s`, and WAL lets readers go on meanwhile);
- per call: decoded images, Face records and results, which are never shared.
Inference concurrency (how many requests run at once) is the front end's policy (the API's bounded pool).
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .config import Config
from .enrolment import Candidate, Enroller, Outcome
from .errors import FacedError, FaceError, InvalidInput, StoreError
from .imaging import ImageLimits, decode_base64, decode_image, read_file
from .search import Recognition, Searcher
from .store.db import Collection, Person, Store
from .vision.face import Face
from .vision.pipeline import Comparison, Pipeline
from .vision import quality as quality_codes

MAX_RESULTS_LIMIT = 100


@dataclass
class Enrolment:
    """What enrolling one person did: the person (None when no photo was accepted) and each photo's outcome."""

    person_id: str | None
    person_name: str
    outcomes: list[Outcome]


class Engine:
    def __init__(self, config: Config, create: bool = False, pipeline: Pipeline | None = None):
        """`create`: the store file may be created on first use (commands and services that create data)."""
        self.config = config
        self.limits = ImageLimits.from_config(config.images)
        self.pipeline = pipeline or Pipeline(config)
        self.create = create
        self._store: Store | None = None
        self._searcher: Searcher | None = None
        self._lock = threading.Lock()

    # ---------------------------------------------------------------------------------------- life cycle
    @property
    def store(self) -> Store:
        with self._lock:
            if self._store is None:
                self._store = Store(self.config.db_path, create=self.create,
                                    busy_timeout_s=self.config.store.busy_timeout_s)
                self._searcher = Searcher(self._store, self.pipeline)
            return self._store

    @property
    def searcher(self) -> Searcher:
        self.store  # noqa: B018 - opens the store and its searcher together
        return self._searcher

    @property
    def enroller(self) -> Enroller:
        return Enroller(self.store, self.pipeline, self.searcher, limits=self.limits)

    @property
    def visitors(self):
        """Recurring unknown visitors (device/visitors.py), shared by the camera loop, the API and the CLI."""
        from .visitors import Visitors

        with self._lock:
            if getattr(self, "_visitors", None) is None:
                self._visitors = Visitors(self)
            return self._visitors

    def prepare(self, liveness: bool = False, attributes: bool = False) -> "Engine":
        """Load the models now instead of on the first request (a daemon's start-up)."""
        self.pipeline.prepare(liveness=liveness, attributes=attributes)
        return self

    def close(self) -> None:
        with self._lock:
            if self._store is not None:
                self._store.close()
            self._store, self._searcher = None, None

    def __enter__(self) -> "Engine":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -------------------------------------------------------------------------------------------- images
    def decode(self, data: bytes) -> np.ndarray:
        return decode_image(data, self.limits)

    def decode_base64(self, text: str) -> np.ndarray:
        return decode_image(decode_base64(text, self.limits), self.limits)

    def read_image(self, path: str | Path) -> np.ndarray:
        return decode_image(read_file(str(path), self.limits), self.limits)

    # -------------------------------------------------------------------------------------------- vision
    def detect(self, image: np.ndarray, attributes: bool = False, liveness: bool = False, mesh: bool = True,
               embed: bool = False) -> list[Face]:
        """Every face, largest first, with quality (and the stages asked for)."""
        pipeline = self.pipeline
        faces = pipeline.assess(image, pipeline.detect(image), mesh=mesh)
        if attributes:
            pipeline.add_attributes(image, faces)
        if liveness:
            pipeline.add_liveness(image, faces)
        if embed:
            pipeline.embed(image, faces)
        return faces

    def describe(self, image: np.ndarray, faces: list[Face], attributes: bool = False, liveness: bool = False
                 ) -> list[Face]:
        """Add the stages asked for to faces already detected (front ends that check the face count first)."""
        if attributes:
            self.pipeline.add_attributes(image, faces)
        if liveness:
            self.pipeline.add_liveness(image, faces)
        return faces

    def liveness(self, image: np.ndarray) -> list[Face]:
        return self.pipeline.add_liveness(image, self.pipeline.detect(image))

    def main_face(self, image: np.ndarray) -> Face:
        return self.pipeline.main_face(image)

    def compare(self, image_a: np.ndarray, image_b: np.ndarray) -> Comparison:
        return self.pipeline.compare(image_a, image_b)

    def compare_faces(self, a: Face, b: Face) -> Comparison:
        return self.pipeline.compare_faces(a, b)

    def require_live(self, image: np.ndarray, face: Face) -> None:
        """Raise FaceError with the code that stops this face (quality gate or FACE_NOT_LIVE), if any."""
        self.pipeline.add_liveness(image, [face])
        if not face.liveness["live"]:
            raise FaceError("the face did not pass the liveness check", face.liveness["codes"][0])

    # -------------------------------------------------------------------------------------------- search
    def search(self, collection_name: str, image: np.ndarray, min_score: float | None = None,
               max_results: int = 1, faces: list[Face] | None = None) -> list[Recognition]:
        """N:N: every face of the image (or the given faces), each with its matches, best first."""
        min_score = self.config.recognition.min_similarity_score if min_score is None else min_score
        check_search_options(min_score, max_results)
        collection = self.searcher.collection(collection_name)
        if faces is None:
            faces = self.pipeline.detect(image)
        self.pipeline.embed(image, [face for face in faces if face.embedding is None])
        return self.searcher.recognise(collection, faces, float(min_score), int(max_results))

    def search_one(self, collection_name: str, image: np.ndarray, min_score: float | None = None,
                   max_results: int = 1, liveness: bool = False) -> Recognition:
        """1:N: the image's one face (FACE_NOT_FOUND / TOO_MANY_FACES otherwise), optionally checked for
        liveness first."""
        faces = self.pipeline.detect(image)
        codes = quality_codes.image_codes(faces, one_face_required=True)
        if codes:
            raise FaceError("no face found in the image" if codes[0] == quality_codes.FACE_NOT_FOUND else
                            f"{len(faces)} faces found; 1:N search takes an image of one face", codes[0])
        if liveness:
            self.require_live(image, faces[0])
        return self.search(collection_name, image, min_score, max_results, faces=faces)[0]

    # --------------------------------------------------------------------------------------- collections
    def collections(self) -> list[Collection]:
        return self.store.collections()

    def collection(self, name: str) -> Collection:
        return self.store.collection(name)

    def only_collection(self) -> Collection:
        """The database's one collection (cameras without `collection`); an error when there are none or several."""
        collections = self.store.collections()
        if len(collections) != 1:
            names = ", ".join(c.name for c in collections) or "none"
            raise InvalidInput(f"{len(collections)} collections exist ({names}): name the one to use",
                               "AMBIGUOUS_COLLECTION")
        return collections[0]

    def create_collection(self, name: str) -> Collection:
        return self.store.create_collection(name, self.pipeline.embedder.identity)

    def delete_collection(self, name: str) -> dict:
        collection = self.store.collection(name)
        erased = self.store.delete_collection(collection.name)
        self.searcher.forget(collection)
        return erased

    # ------------------------------------------------------------------------------------------- persons
    def persons(self, collection_name: str, offset: int = 0, limit: int | None = None) -> list[Person]:
        return self.store.persons(self.store.collection(collection_name), offset, limit)

    def person(self, person_id: str) -> Person:
        return self.store.person(person_id)

    def update_person(self, person_id: str, name: str | None = None, metadata: dict | None = None) -> Person:
        return self.store.update_person(person_id, name, metadata)

    def delete_person(self, person_id: str) -> dict:
        return self.store.delete_person(person_id)

    def delete_face(self, person_id: str, face_id: int) -> dict:
        return self.store.delete_face(person_id, face_id)

    def thumbnail(self, face_id: int) -> bytes:
        return self.store.thumbnail(face_id)

    def photo(self, data: bytes, source: str) -> Candidate:
        """A photo's bytes as an enrolment candidate (a bad image becomes that photo's outcome)."""
        return self.enroller.photo(data, source)

    def photo_base64(self, text: str, source: str) -> Candidate:
        """A base64 (or data-URI) photo as an enrolment candidate (bad base64 becomes that photo's outcome)."""
        try:
            data = decode_base64(text, self.limits)
        except FacedError as exc:
            return self.enroller.candidate(None, source, exc)
        return self.enroller.photo(data, source)

    def photo_file(self, path: str) -> Candidate:
        return self.enroller.read(path)

    def add_person(self, collection_name: str, name: str, photos: list[Candidate], metadata: dict | None = None,
                   force: bool = False) -> Enrolment:
        person_id, outcomes = self.enroller.add_person(collection_name, name, photos, metadata, force)
        return Enrolment(person_id, self.store.person(person_id).name if person_id else name.strip(), outcomes)

    def add_faces(self, person_id: str, photos: list[Candidate], force: bool = False) -> list[Outcome]:
        return self.enroller.add_faces(person_id, photos, force)

    def enrol_folder(self, folder: str | Path, collection_name: str, force: bool = False, progress=None) -> dict:
        return self.enroller.enrol_folder(folder, collection_name, force, progress)

    # ------------------------------------------------------------------------------------------ API keys
    def create_key(self, name: str):
        """(record, key): the key is returned once and stored only as its sha256."""
        from .store import keys

        return keys.create_key(self.store, name)

    def keys(self):
        from .store import keys

        return keys.list_keys(self.store)

    def revoke_key(self, name: str):
        from .store import keys

        return keys.revoke_key(self.store, name)

    def verify_key(self, presented: str) -> str | None:
        """The name of the key equal to `presented` (constant-time comparison), or None."""
        from .store import keys

        return keys.verify_key(self.store, presented)

    def has_keys(self) -> bool:
        from .store import keys

        if not self.config.db_path.exists() and not self.create:
            return False
        return keys.count_keys(self.store) > 0

    # ------------------------------------------------------------------------------ maintenance, portability
    def reembed(self, collection_name: str) -> dict:
        from .store.portable import reembed_collection

        return reembed_collection(self.store, collection_name, self.pipeline.embedder.identity,
                                  self._embed_thumbnail)

    def export(self, collection_name: str, target: str | Path) -> dict:
        from .store.portable import export_collection

        return export_collection(self.store, collection_name, target)

    def import_(self, source: str | Path, name: str | None = None, reembed: bool = False) -> dict:
        from .store.portable import import_collection

        return import_collection(self.store, source, self.pipeline.embedder.identity, name,
                                 self._embed_thumbnail if reembed else None)

    def backup(self, target: str | Path) -> None:
        self.store.backup(target)

    def _embed_thumbnail(self, thumbnail: bytes) -> np.ndarray:
        from .store.portable import decode_thumbnail

        return self.pipeline.embedder.embed(decode_thumbnail(thumbnail))

    def database_summary(self) -> dict:
        """What doctor and /health say about the database (without creating it)."""
        path = self.config.db_path
        if not path.exists():
            return {"path": str(path), "exists": False}
        store = self.store
        collections = store.collections()
        return {"path": str(path), "exists": True, "bytes": store.file_bytes(), "read_only": store.read_only,
                "collections": len(collections), "faces": sum(c.faces for c in collections)}


def check_search_options(min_score, max_results) -> None:
    """min_score in [0, 1], max_results a whole number in 1..MAX_RESULTS_LIMIT (same rule for every front end)."""
    if isinstance(min_score, bool) or not isinstance(min_score, (int, float)) or not 0.0 <= min_score <= 1.0:
        raise InvalidInput(f"the minimum score must be a number from 0 to 1, got {min_score!r}", "INVALID_ARGUMENT")
    if isinstance(max_results, bool) or not isinstance(max_results, int) or not 1 <= max_results <= MAX_RESULTS_LIMIT:
        raise InvalidInput(f"max results must be a whole number from 1 to {MAX_RESULTS_LIMIT}, got {max_results!r}",
                           "INVALID_ARGUMENT")


__all__ = ["Engine", "Enrolment", "Recognition", "StoreError", "check_search_options"]
