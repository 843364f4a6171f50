"""Export a collection to one file, import it elsewhere, and recompute vectors after a model change.

An export is a SQLite file with faced's own schema holding one collection: persons (ids kept), faces with
thumbnails, vectors, and the embedder identity (model, precision, sha256) that made them. Import refuses a
file whose embedder differs from the importing device's, unless asked to re-embed from the thumbnails.
"""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import cv2
import numpy as np

from ..errors import Conflict, FacedError, InvalidInput, StoreError
from .codes import search_code
from .db import NewFace, Store, same_embedder


def export_collection(store: Store, name: str, target: str | Path) -> dict:
    target = Path(target)
    if target.exists():
        raise Conflict(f"{target} exists; choose a new file", "FILE_EXISTS")
    collection = store.collection(name)
    if not target.parent.is_dir():
        raise InvalidInput(f"cannot write {target}: the folder {target.parent} does not exist", "OUTPUT_ERROR")
    with Store(target, create=True) as out:
        copy = out.create_collection(collection.name, collection.embedder)
        for person in store.persons(collection):
            faces = [_stored_face(store, face_id) for face_id in person.face_ids]
            with out.transaction():
                out.insert_person(copy, person.name, faces, person.metadata, person.id, person.created)
        out.checkpoint()
        out.connection.execute("PRAGMA journal_mode = DELETE")  # one self-contained file, no -wal beside it
    return {"collection_name": collection.name, "file": str(target), "persons": collection.persons, "faces": collection.faces,
            "embedder": collection.embedder}


def import_collection(store: Store, source: str | Path, embedder: dict, name: str | None = None,
                      reembed=None) -> dict:
    """Add the collection of an export file to `store` (as `name`, default its own name).

    The export is opened read-only and never changed. Under a new `name` the persons get new ids (a clone
    beside the original); under its own name they keep theirs. `reembed(thumbnail_bytes) -> embedding`
    recomputes vectors when the file's embedder is not `embedder`.
    """
    source = Path(source)
    if not source.is_file():
        raise FacedError(f"{source} does not exist", "FILE_NOT_FOUND")
    with tempfile.TemporaryDirectory(prefix="faced-import-") as scratch, _open_export(source, scratch) as incoming:
        collections = incoming.collections()
        if len(collections) != 1:
            raise FacedError(f"{source} is not a faced export (it holds {len(collections)} collections)",
                             "INVALID_EXPORT")
        theirs = collections[0]
        if not same_embedder(theirs.embedder, embedder) and reembed is None:
            raise FacedError(
                f"{source} was made with {theirs.embedder['model']} {theirs.embedder['precision']} "
                f"({theirs.embedder['sha256'][:12]}), this device embeds with {embedder['model']} "
                f"{embedder['precision']} ({embedder['sha256'][:12]}): import with --reembed", "EMBEDDER_MISMATCH")
        mine = store.create_collection(name or theirs.name, embedder)
        persons = incoming.persons(theirs)
        try:
            _import_persons(store, incoming, theirs, mine, persons, embedder, reembed, new_ids=name is not None)
        except BaseException:
            store.delete_collection(mine.name)  # no half-imported collection is left behind
            raise
    return {"collection_name": mine.name, "file": str(source), "persons": len(persons),
            "faces": sum(len(p.face_ids) for p in persons), "reembedded": not same_embedder(theirs.embedder, embedder)}


def _open_export(source: Path, scratch: str) -> Store:
    """The export, read-only; an export of an older schema is upgraded in a scratch copy, never in place."""
    try:
        try:
            return Store(source, readonly=True)
        except StoreError as exc:
            if exc.code != "DB_READ_ONLY":
                raise
            copy = Path(scratch) / "export.db"
            shutil.copyfile(source, copy)
            return Store(copy)
    except StoreError as exc:
        if exc.code in ("NOT_A_FACED_DB", "DB_CORRUPT", "DB_TOO_NEW"):
            raise FacedError(f"{source} is not a faced export: {exc.message}", "INVALID_EXPORT") from None
        raise


def _import_persons(store, incoming, theirs, mine, persons, embedder, reembed, new_ids: bool) -> None:
    with store.transaction():
        for person in persons:
            if not new_ids and store.connection.execute("SELECT 1 FROM persons WHERE id = ?",
                                                        (person.id,)).fetchone():
                raise Conflict(f"person {person.id} already exists in this database: import a copy with new ids "
                               "with --as NEW_NAME", "PERSON_EXISTS")
            faces = [_stored_face(incoming, face_id) for face_id in person.face_ids]
            if not same_embedder(theirs.embedder, embedder):
                faces = [NewFace(reembed(f.thumbnail), f.thumbnail, f.quality, f.source, f.sha256) for f in faces]
            store.insert_person(mine, person.name, faces, person.metadata, None if new_ids else person.id,
                                person.created)


def reembed_collection(store: Store, name: str, embedder: dict, reembed) -> dict:
    """Recompute every vector of a collection from its stored aligned crops, in one transaction."""
    collection = store.collection(name)
    face_rows = store.connection.execute("SELECT id, thumbnail FROM faces WHERE collection_id = ?",
                                         (collection.id,)).fetchall()
    vectors = [(face_id, np.asarray(reembed(thumbnail), np.float32)) for face_id, thumbnail in face_rows]
    with store.transaction():
        for face_id, vector in vectors:
            store.connection.execute("DELETE FROM face_vectors WHERE face_id = ?", (face_id,))
            store.connection.execute("INSERT INTO face_vectors(face_id, embedding, collection_id) VALUES (?, ?, ?)",
                                     (face_id, vector.tobytes(), collection.id))
            # Re-log the face so that search indexes of other processes pick up its new code.
            store.connection.execute("UPDATE faces SET bits = ? WHERE id = ?", (search_code(vector), face_id))
            store.connection.execute("INSERT INTO face_log(collection_id, face_id, op) VALUES (?, ?, 'remove')",
                                     (collection.id, face_id))
            store.connection.execute("INSERT INTO face_log(collection_id, face_id, op) VALUES (?, ?, 'add')",
                                     (collection.id, face_id))
        store.connection.execute(
            "UPDATE collections SET embedder_model = ?, embedder_precision = ?, embedder_sha256 = ? WHERE id = ?",
            (embedder["model"], embedder["precision"], embedder["sha256"], collection.id))
    return {"collection_name": name, "faces": len(vectors), "embedder": embedder,
            "previous_embedder": collection.embedder}


def decode_thumbnail(data: bytes) -> np.ndarray:
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise FacedError("a stored thumbnail cannot be decoded", "INVALID_THUMBNAIL")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def _stored_face(store: Store, face_id: int) -> NewFace:
    quality, thumbnail, source, sha256 = store.connection.execute(
        "SELECT quality, thumbnail, source, sha256 FROM faces WHERE id = ?", (face_id,)).fetchone()
    return NewFace(store.vectors([face_id])[face_id], thumbnail, quality, source, sha256)
