"""The face store: one SQLite file with sqlite-vec (collections, persons, faces, vectors).

SQLite is the single source of truth. Every write is one transaction (BEGIN IMMEDIATE ... COMMIT): a person
and all its faces and vectors appear together or not at all, also after a power cut (WAL, synchronous=FULL).
Deleting erases: secure_delete overwrites freed pages, and `erase` checkpoints the WAL so that deleted bytes
do not linger in the -wal file either.
"""
from __future__ import annotations

import functools
from contextlib import contextmanager
import json
import threading
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from ..errors import Conflict, EmbedderMismatch, InvalidInput, NotFound, StoreError
from ..validation import check_metadata, clean_name, lookup_name
from . import schema
from .codes import search_code
from .sqlite import APPLICATION_ID, check_faced_schema, check_file, open_connection, transaction, translated

DEFAULT_BUSY_TIMEOUT_S = 10.0


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def same_embedder(a: dict, b: dict) -> bool:
    """Whether vectors of embedder identities `a` and `b` mix: the same model file run the same way. The
    precision names the variant and any option that changes the vectors (e.g. "dynamic+flip"), so an identity
    recorded before such an option existed is still equal to the embedder's without it."""
    return a["sha256"] == b["sha256"] and a["precision"] == b["precision"]


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
    sha256: str | None = None  # of the photo it came from: enrolling the same folder again skips known photos


def _translating(cls):
    """Wrap each public method so that SQLite's own errors leave it as StoreError with faced's code."""
    for name, method in list(vars(cls).items()):
        if name.startswith("_") or not callable(method):
            continue

        def wrapper(self, *args, __method=method, **kwargs):
            with translated(self.path):
                return __method(self, *args, **kwargs)

        functools.update_wrapper(wrapper, method)
        setattr(cls, name, wrapper)
    return cls


@_translating
class Store:
    """faced's SQLite file. Safe to share between threads: each thread gets a connection of its own (SQLite
    serialises writers across connections with its busy timeout; WAL lets readers go on meanwhile).

    `create`: a missing file may be created (only commands that create data pass it). `readonly`: open with
    `mode=ro` whatever the file's permissions (reading an export); a file that cannot be written opens that way
    too, and then every write says DB_READ_ONLY.
    """

    def __init__(self, path: str | Path, create: bool = False, readonly: bool = False,
                 busy_timeout_s: float = DEFAULT_BUSY_TIMEOUT_S):
        self.path = Path(path)
        self.busy_timeout_s = busy_timeout_s
        mode = check_file(self.path, create)
        self.mode = "ro" if readonly and mode != "new" else mode
        self._local = threading.local()
        self._connections: list = []
        self._lock = threading.Lock()
        self.commits = 0  # transactions committed through this Store (searchers watch it)
        first = self._open()
        try:
            check_faced_schema(first, self.path)
            if self.mode == "ro":
                found = first.execute("PRAGMA user_version").fetchone()[0]
                if found != schema.SCHEMA_VERSION:
                    raise StoreError(
                        f"{self.path} is at schema version {found}; this faced needs {schema.SCHEMA_VERSION} and "
                        "cannot upgrade a read-only file", "DB_READ_ONLY" if found < schema.SCHEMA_VERSION
                        else "DB_TOO_NEW")
            else:
                self._prepare_for_writing(first)
        except BaseException:
            self.close()
            raise
        self.mode = "ro" if self.mode == "ro" else "rw"

    def _prepare_for_writing(self, connection) -> None:
        # auto_vacuum first: it only takes effect before the first table is created. vec0 reads vectors
        # through incremental BLOB I/O, and with auto_vacuum SQLite finds a blob's overflow pages in its
        # pointer map instead of walking their chain: point reads at a million faces get ~2.5x faster.
        if self.mode == "new":
            connection.execute("PRAGMA auto_vacuum = INCREMENTAL")
        if connection.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
            connection.execute("PRAGMA journal_mode = WAL")
        schema.migrate(connection)
        if connection.execute("PRAGMA application_id").fetchone()[0] != APPLICATION_ID:
            connection.execute(f"PRAGMA application_id = {APPLICATION_ID}")  # faced's file from now on

    def _open(self):
        connection = open_connection(self.path, self.mode, self.busy_timeout_s)
        with self._lock:
            self._connections.append(connection)
        self._local.connection = connection
        return connection

    @property
    def connection(self):
        """This thread's connection."""
        connection = getattr(self._local, "connection", None)
        return connection if connection is not None else self._open()

    @property
    def read_only(self) -> bool:
        return self.mode == "ro"

    def close(self) -> None:
        with self._lock:
            connections, self._connections = self._connections, []
        for connection in connections:
            connection.close()
        self._local = threading.local()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @contextmanager
    def transaction(self):
        """BEGIN IMMEDIATE ... COMMIT on this thread's connection; SQLite's errors become StoreError."""
        if self.read_only:
            raise StoreError(f"{self.path} is read-only: this command writes to it", "DB_READ_ONLY")
        try:
            with translated(self.path), transaction(self.connection) as connection:
                yield connection
        finally:
            with self._lock:  # also after a failed COMMIT: a needless re-check costs less than a missed one
                self.commits += 1

    def log_position(self) -> int:
        """The newest entry of face_log: changes whenever any connection adds or removes a face."""
        return self.connection.execute("SELECT coalesce(max(seq), 0) FROM face_log").fetchone()[0]

    def trim_log(self, connection) -> int:
        """Delete every face_log entry but the newest (log_position); returns how many went. The log only has to
        reach back to what a running index has seen: an index behind its oldest entry reloads from the tables
        (device/store/index.py)."""
        return connection.execute("DELETE FROM face_log WHERE seq < (SELECT max(seq) FROM face_log)").rowcount

    # ------------------------------------------------------------------------------------ collections
    def create_collection(self, name: str, embedder: dict) -> Collection:
        name = clean_name(name, "collection name")
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
            (lookup_name(name),)).fetchone()
        if row is None:
            raise NotFound(f"collection {name!r} does not exist (create it with `faced collections create "
                           f"{name}` or POST /collections)", "COLLECTION_NOT_FOUND")
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
        return {"collection_name": collection.name, "persons": collection.persons, "faces": collection.faces,
                "vectors": collection.faces, "thumbnails": collection.faces}

    def check_embedder(self, collection: Collection, embedder: dict) -> None:
        """Refuse to mix vectors of different embedders (a model file, precision or flip change)."""
        if not same_embedder(collection.embedder, embedder):
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
        name = clean_name(name, "person name")
        metadata = check_metadata(metadata)
        person_id = person_id or str(uuid.uuid4())
        self.connection.execute(
            "INSERT INTO persons(id, collection_id, name, metadata, created) VALUES (?, ?, ?, ?, ?)",
            (person_id, collection.id, name, _metadata_json(metadata), created or now()))
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
                "INSERT INTO faces(person_id, collection_id, quality, thumbnail, bits, source, created, sha256) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (person_id, collection.id, face.quality, face.thumbnail, search_code(vector), face.source, now(),
                 face.sha256))
            self.connection.execute("INSERT INTO face_vectors(face_id, embedding, collection_id) VALUES (?, ?, ?)",
                                    (cursor.lastrowid, vector.tobytes(), collection.id))
            ids.append(cursor.lastrowid)
        return ids

    def person(self, person_id: str) -> Person:
        row = self.connection.execute(
            "SELECT p.id, c.name, p.name, p.metadata, p.created FROM persons p JOIN collections c "
            "ON c.id = p.collection_id WHERE p.id = ?", (str(person_id),)).fetchone()
        if row is None:
            raise NotFound(f"person {person_id!r} does not exist", "PERSON_NOT_FOUND")
        face_ids = [r[0] for r in self.connection.execute(
            "SELECT id FROM faces WHERE person_id = ? ORDER BY id", (row[0],))]
        return Person(row[0], row[1], row[2], json.loads(row[3]), row[4], face_ids)

    def persons(self, collection: Collection, offset: int = 0, limit: int | None = None) -> list[Person]:
        """Persons of a collection ordered by name, then creation (a page of them with offset/limit)."""
        ids = [r[0] for r in self.connection.execute(
            "SELECT id FROM persons WHERE collection_id = ? ORDER BY name, created, id LIMIT ? OFFSET ?",
            (collection.id, -1 if limit is None else int(limit), int(offset)))]
        return [self.person(i) for i in ids]

    def person_named(self, collection: Collection, name: str) -> Person | None:
        """The first-created person of that name in the collection, if any."""
        row = self.connection.execute(
            "SELECT id FROM persons WHERE collection_id = ? AND name = ? ORDER BY created, id LIMIT 1",
            (collection.id, lookup_name(name))).fetchone()
        return self.person(row[0]) if row else None

    def photo_hashes(self, person_id: str) -> set[str]:
        """sha256 of the photos a person's faces came from (where known)."""
        return {r[0] for r in self.connection.execute(
            "SELECT sha256 FROM faces WHERE person_id = ? AND sha256 IS NOT NULL", (person_id,))}

    def update_person(self, person_id: str, name: str | None = None, metadata: dict | None = None) -> Person:
        """Rename a person and/or replace its metadata."""
        person = self.person(person_id)
        new_name = person.name if name is None else clean_name(name, "person name")
        new_metadata = person.metadata if metadata is None else check_metadata(metadata)
        with self.transaction():
            self.connection.execute("UPDATE persons SET name = ?, metadata = ? WHERE id = ?",
                                    (new_name, _metadata_json(new_metadata), person.id))
        return self.person(person.id)

    def person_vectors(self, person_id: str) -> np.ndarray:
        rows = self.connection.execute(
            "SELECT v.embedding FROM faces f JOIN face_vectors v ON v.face_id = f.id WHERE f.person_id = ?",
            (person_id,)).fetchall()
        return np.array([np.frombuffer(r[0], np.float32) for r in rows]).reshape(-1, schema.EMBEDDING_DIM)

    def delete_person(self, person_id: str) -> dict:
        """Erase a person with its faces, vectors and thumbnails; returns what was erased."""
        person = self.person(person_id)
        with self.transaction():
            self.connection.execute("DELETE FROM faces WHERE person_id = ?", (person.id,))
            self.connection.execute("DELETE FROM persons WHERE id = ?", (person.id,))
        self.checkpoint()
        return {"person_id": person.id, "person_name": person.name, "collection_name": person.collection,
                "faces": len(person.face_ids), "vectors": len(person.face_ids),
                "thumbnails": len(person.face_ids)}

    def delete_face(self, person_id: str, face_id: int) -> dict:
        """Erase one face of a person (its vector and thumbnail)."""
        person = self.person(person_id)
        if int(face_id) not in person.face_ids:
            raise NotFound(f"person {person.id} has no face {face_id}", "FACE_ID_NOT_FOUND")
        with self.transaction():
            self.connection.execute("DELETE FROM faces WHERE id = ?", (int(face_id),))
        self.checkpoint()
        return {"person_id": person.id, "face_id": int(face_id), "faces_left": len(person.face_ids) - 1}

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
        row = self.connection.execute("SELECT thumbnail FROM faces WHERE id = ?", (int(face_id),)).fetchone()
        if row is None:
            raise NotFound(f"face {face_id} does not exist", "FACE_ID_NOT_FOUND")
        return row[0]

    # ------------------------------------------------------------------------------------ maintenance
    def checkpoint(self) -> None:
        """Move the WAL into the main file and truncate it (so that erased bytes leave the -wal file too).

        SQLite's busy handler waits up to busy_timeout_s for readers of older snapshots to let go; if one still
        holds on, the erasure is committed but its old bytes stay in the -wal file until the next checkpoint."""
        busy = self.connection.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
        if busy:
            raise StoreError(
                f"the change is saved, but a long reader kept {self.path}'s -wal file from being cleaned within "
                f"{self.busy_timeout_s:g} s; the next checkpoint removes the erased bytes", "DB_BUSY")

    def integrity(self) -> str:
        return self.connection.execute("PRAGMA integrity_check").fetchone()[0]

    def file_bytes(self) -> int:
        """Size of the database file and its -wal file."""
        wal = self.path.with_name(self.path.name + "-wal")
        return sum(p.stat().st_size for p in (self.path, wal) if p.exists())

    def backup(self, target: str | Path) -> None:
        """A consistent copy of the whole file while others keep reading and writing (SQLite backup API)."""
        target = Path(target)
        if target.exists():
            raise Conflict(f"{target} exists; choose a new file", "FILE_EXISTS")
        if not target.parent.is_dir():
            raise InvalidInput(f"cannot write {target}: the folder {target.parent} does not exist", "OUTPUT_ERROR")
        from .sqlite import connect

        destination = connect(str(target))
        try:
            self.connection.backup(destination)
        finally:
            destination.close()


def _id_list(face_ids) -> str:
    return json.dumps([int(face_id) for face_id in face_ids])


def _metadata_json(metadata: dict) -> str:
    return json.dumps(metadata or {}, ensure_ascii=False, allow_nan=False)
