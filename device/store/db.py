"""The face store: one SQLite file with sqlite-vec (collections, persons, faces, vectors).

SQLite is the single source of truth. Every write is one transaction (BEGIN IMMEDIATE ... COMMIT): a person
and all its faces and vectors appear together or not at all, also after a power cut (WAL, synchronous=FULL).
Deleting erases: secure_delete overwrites freed pages, and `erase` checkpoints the WAL so that deleted bytes
do not linger in the -wal file either.
"""
from __future__ import annotations

import json
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from ..errors import FacedError
from . import schema
from .sqlite import connect

BUSY_TIMEOUT_MS = 10_000


class NotFound(FacedError):
    code = "NOT_FOUND"


class Conflict(FacedError):
    code = "CONFLICT"


class EmbedderMismatch(FacedError):
    code = "EMBEDDER_MISMATCH"


@contextmanager
def transaction(connection):
    """BEGIN IMMEDIATE ... COMMIT, or ROLLBACK on any error (the connection is in autocommit mode)."""
    connection.execute("BEGIN IMMEDIATE")
    try:
        yield connection
    except BaseException:
        connection.execute("ROLLBACK")
        raise
    connection.execute("COMMIT")


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def search_code(embedding: np.ndarray) -> bytes:
    """The face's 2-bit code for the in-memory search index, 32 bytes: 16 of sign bits (set where the value
    is positive), then 16 of magnitude bits (set on the half of the dimensions with the largest |value|)."""
    vector = np.asarray(embedding, dtype=np.float32).reshape(-1)
    magnitude = np.abs(vector)
    return np.packbits(vector > 0).tobytes() + np.packbits(magnitude > np.median(magnitude)).tobytes()


@dataclass
class Collection:
    id: int
    name: str
    created: str
    embedder: dict  # {"model", "precision", "sha256"}
    persons: int = 0
    faces: int = 0

    def to_dict(self) -> dict:
        return {"collection_name": self.name, "created": self.created, "persons": self.persons,
                "faces": self.faces, "embedder": self.embedder}


@dataclass
class Person:
    id: str
    collection: str
    name: str
    metadata: dict
    created: str
    face_ids: list[int]

    def to_dict(self) -> dict:
        return {"person_id": self.id, "person_name": self.name, "collection_name": self.collection,
                "metadata": self.metadata, "created": self.created, "face_ids": self.face_ids}


@dataclass
class NewFace:
    """A face to store: its unit embedding, the aligned 112x112 crop as JPEG, quality and where it came from."""

    embedding: np.ndarray
    thumbnail: bytes
    quality: int | None = None
    source: str = ""


class Store:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        if str(path) != ":memory:":
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self.connection = connect(str(path), isolation_level=None, check_same_thread=False,
                                  timeout=BUSY_TIMEOUT_MS / 1000)
        # auto_vacuum first: it only takes effect before the first table is created. vec0 reads vectors
        # through incremental BLOB I/O, and with auto_vacuum SQLite finds a blob's overflow pages in its
        # pointer map instead of walking their chain: point reads at a million faces get ~2.5x faster.
        for pragma in ("auto_vacuum = INCREMENTAL", "journal_mode = WAL", "foreign_keys = ON",
                       "secure_delete = ON", "synchronous = FULL", f"busy_timeout = {BUSY_TIMEOUT_MS}"):
            self.connection.execute(f"PRAGMA {pragma}")
        schema.migrate(self.connection)

    def close(self) -> None:
        self.connection.close()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def transaction(self):
        return transaction(self.connection)

    def data_version(self) -> int:
        """Changes whenever another connection commits (SQLite's PRAGMA data_version)."""
        return self.connection.execute("PRAGMA data_version").fetchone()[0]

    # ------------------------------------------------------------------------------------ collections
    def create_collection(self, name: str, embedder: dict) -> Collection:
        name = _clean_name(name, "collection name")
        with self.transaction():
            if self.connection.execute("SELECT 1 FROM collections WHERE name = ?", (name,)).fetchone():
                raise Conflict(f"collection {name!r} already exists", "COLLECTION_EXISTS")
            self.connection.execute(
                "INSERT INTO collections(name, created, embedder_model, embedder_precision, embedder_sha256) "
                "VALUES (?, ?, ?, ?, ?)", (name, now(), embedder["model"], embedder["precision"], embedder["sha256"]))
        return self.collection(name)

    def collection(self, name: str) -> Collection:
        row = self.connection.execute(
            "SELECT id, name, created, embedder_model, embedder_precision, embedder_sha256, "
            "(SELECT count(*) FROM persons p WHERE p.collection_id = c.id), "
            "(SELECT count(*) FROM faces f WHERE f.collection_id = c.id) FROM collections c WHERE name = ?",
            (name,)).fetchone()
        if row is None:
            raise NotFound(f"collection {name!r} does not exist", "COLLECTION_NOT_FOUND")
        return Collection(row[0], row[1], row[2], {"model": row[3], "precision": row[4], "sha256": row[5]},
                          row[6], row[7])

    def collections(self) -> list[Collection]:
        names = [r[0] for r in self.connection.execute("SELECT name FROM collections ORDER BY name")]
        return [self.collection(name) for name in names]

    def delete_collection(self, name: str) -> dict:
        """Erase a collection with its persons, faces, vectors and thumbnails; returns what was erased."""
        collection = self.collection(name)
        with self.transaction():
            self.connection.execute("DELETE FROM faces WHERE collection_id = ?", (collection.id,))
            self.connection.execute("DELETE FROM persons WHERE collection_id = ?", (collection.id,))
            self.connection.execute("DELETE FROM collections WHERE id = ?", (collection.id,))
        self.checkpoint()
        return {"collection_name": name, "persons": collection.persons, "faces": collection.faces,
                "vectors": collection.faces, "thumbnails": collection.faces}

    def check_embedder(self, collection: Collection, embedder: dict) -> None:
        """Refuse to mix vectors of different embedders (a model file or precision change)."""
        if collection.embedder["sha256"] != embedder["sha256"]:
            raise EmbedderMismatch(
                f"collection {collection.name!r} holds vectors of {collection.embedder['model']} "
                f"{collection.embedder['precision']} ({collection.embedder['sha256'][:12]}), but the embedder now "
                f"is {embedder['model']} {embedder['precision']} ({embedder['sha256'][:12]}): run "
                f"`faced reembed --collection {collection.name}` or select the same precision")

    # ---------------------------------------------------------------------------------------- persons
    def add_person(self, collection: Collection, name: str, faces: list[NewFace], metadata: dict | None = None
                   ) -> tuple[str, list[int]]:
        """A new person with its faces, in one transaction; returns (person id, face ids)."""
        with self.transaction():
            return self.insert_person(collection, name, faces, metadata)

    def insert_person(self, collection: Collection, name: str, faces: list[NewFace], metadata: dict | None = None,
                      person_id: str | None = None, created: str | None = None) -> tuple[str, list[int]]:
        """Write a person and its faces inside the caller's transaction (bulk writers: import, bench)."""
        name = _clean_name(name, "person name")
        person_id = person_id or str(uuid.uuid4())
        self.connection.execute(
            "INSERT INTO persons(id, collection_id, name, metadata, created) VALUES (?, ?, ?, ?, ?)",
            (person_id, collection.id, name, json.dumps(metadata or {}, ensure_ascii=False), created or now()))
        return person_id, self._insert_faces(collection, person_id, faces)

    def add_faces(self, person_id: str, faces: list[NewFace]) -> list[int]:
        person = self.person(person_id)
        collection = self.collection(person.collection)
        with self.transaction():
            return self._insert_faces(collection, person_id, faces)

    def _insert_faces(self, collection: Collection, person_id: str, faces: list[NewFace]) -> list[int]:
        ids = []
        for face in faces:
            vector = np.asarray(face.embedding, dtype=np.float32)
            cursor = self.connection.execute(
                "INSERT INTO faces(person_id, collection_id, quality, thumbnail, bits, source, created) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (person_id, collection.id, face.quality, face.thumbnail, search_code(vector), face.source, now()))
            self.connection.execute("INSERT INTO face_vectors(face_id, embedding, collection_id) VALUES (?, ?, ?)",
                                    (cursor.lastrowid, vector.tobytes(), collection.id))
            ids.append(cursor.lastrowid)
        return ids

    def person(self, person_id: str) -> Person:
        row = self.connection.execute(
            "SELECT p.id, c.name, p.name, p.metadata, p.created FROM persons p JOIN collections c "
            "ON c.id = p.collection_id WHERE p.id = ?", (person_id,)).fetchone()
        if row is None:
            raise NotFound(f"person {person_id!r} does not exist", "PERSON_NOT_FOUND")
        face_ids = [r[0] for r in self.connection.execute(
            "SELECT id FROM faces WHERE person_id = ? ORDER BY id", (person_id,))]
        return Person(row[0], row[1], row[2], json.loads(row[3]), row[4], face_ids)

    def persons(self, collection: Collection) -> list[Person]:
        ids = [r[0] for r in self.connection.execute(
            "SELECT id FROM persons WHERE collection_id = ? ORDER BY name, created", (collection.id,))]
        return [self.person(i) for i in ids]

    def person_vectors(self, person_id: str) -> np.ndarray:
        rows = self.connection.execute(
            "SELECT v.embedding FROM faces f JOIN face_vectors v ON v.face_id = f.id WHERE f.person_id = ?",
            (person_id,)).fetchall()
        return np.array([np.frombuffer(r[0], np.float32) for r in rows]).reshape(-1, schema.EMBEDDING_DIM)

    def delete_person(self, person_id: str) -> dict:
        """Erase a person with its faces, vectors and thumbnails; returns what was erased."""
        person = self.person(person_id)
        with self.transaction():
            self.connection.execute("DELETE FROM faces WHERE person_id = ?", (person_id,))
            self.connection.execute("DELETE FROM persons WHERE id = ?", (person_id,))
        self.checkpoint()
        return {"person_id": person.id, "person_name": person.name, "collection_name": person.collection,
                "faces": len(person.face_ids), "vectors": len(person.face_ids),
                "thumbnails": len(person.face_ids)}

    # ----------------------------------------------------------------------------------------- vectors
    def vector_matrix(self, face_ids) -> tuple[np.ndarray, np.ndarray]:
        """(ids, matrix) of the given faces' embeddings that exist, in one statement: json_each drives
        (CROSS JOIN keeps it the outer loop) and each row is a primary-key point read in the vec0 table."""
        rows = self.connection.execute(
            "SELECT v.face_id, v.embedding FROM json_each(?) AS j CROSS JOIN face_vectors AS v "
            "ON v.face_id = j.value", (_id_list(face_ids),)).fetchall()
        ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
        matrix = np.frombuffer(b"".join(r[1] for r in rows), dtype=np.float32).reshape(len(rows),
                                                                                       schema.EMBEDDING_DIM)
        return ids, matrix

    def vectors(self, face_ids) -> dict[int, np.ndarray]:
        """face id -> embedding, for the given faces that exist."""
        ids, matrix = self.vector_matrix(face_ids)
        return {int(face_id): row for face_id, row in zip(ids, matrix)}

    def face_owners(self, face_ids) -> dict[int, tuple[str, str, dict]]:
        """face id -> (person id, person name, metadata)."""
        rows = self.connection.execute(
            "SELECT f.id, p.id, p.name, p.metadata FROM json_each(?) AS j CROSS JOIN faces AS f "
            "ON f.id = j.value JOIN persons AS p ON p.id = f.person_id", (_id_list(face_ids),))
        return {r[0]: (r[1], r[2], json.loads(r[3])) for r in rows}

    def thumbnail(self, face_id: int) -> bytes:
        row = self.connection.execute("SELECT thumbnail FROM faces WHERE id = ?", (face_id,)).fetchone()
        if row is None:
            raise NotFound(f"face {face_id} does not exist", "FACE_NOT_FOUND")
        return row[0]

    # ------------------------------------------------------------------------------------ maintenance
    def checkpoint(self) -> None:
        """Move the WAL into the main file and truncate it (so that erased bytes leave the -wal file too)."""
        for _ in range(50):
            busy = self.connection.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
            if not busy:
                return
            time.sleep(0.1)  # a reader holds an old snapshot: the WAL is truncated once it lets go

    def integrity(self) -> str:
        return self.connection.execute("PRAGMA integrity_check").fetchone()[0]

    def backup(self, target: str | Path) -> None:
        """A consistent copy of the whole file while others keep reading and writing (SQLite backup API)."""
        target = Path(target)
        if target.exists():
            raise Conflict(f"{target} exists; choose a new file", "FILE_EXISTS")
        destination = connect(str(target))
        try:
            self.connection.backup(destination)
        finally:
            destination.close()


def _id_list(face_ids) -> str:
    return json.dumps([int(face_id) for face_id in face_ids])


def _clean_name(name: str, what: str) -> str:
    if not isinstance(name, str) or not name.strip():
        raise FacedError(f"the {what} is empty", "INVALID_NAME")
    if len(name) > 200:
        raise FacedError(f"the {what} is longer than 200 characters", "INVALID_NAME")
    return name.strip()
