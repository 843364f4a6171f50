"""Open faced's SQLite file with sqlite-vec loaded, safely, and translate SQLite's failures into faced's codes.

Python's own sqlite3 is used when it can load extensions; builds without `enable_load_extension` (pyenv's
default, some distributions') fall back to sqlean.py, which bundles a recent SQLite that can.

Opening decides, before SQLite touches the file, whether it may be used at all:
- a missing file is created only when the caller creates data (`create=True`), else DB_NOT_FOUND;
- a directory, a device, or a file that is not SQLite is NOT_A_FACED_DB;
- a file that cannot be written (no write bit, or a read-only folder for the -wal file) is opened read-only
  (`mode=ro`, no journal-mode switch, no migration) for readers, and refused with DB_READ_ONLY for writers;
- a SQLite file of another application (a non-empty schema without faced's tables, or another
  `application_id`) is NOT_A_FACED_DB; faced's own unmarked files (made before the mark existed) are marked on
  their first write.
"""
from __future__ import annotations

import os
import sqlite3
import stat
from contextlib import contextmanager
from pathlib import Path

import sqlite_vec

from ..errors import StoreError

# PRAGMA application_id of faced's files: "face" in ASCII.
APPLICATION_ID = 0x66616365
SQLITE_HEADER = b"SQLite format 3\x00"
FACED_TABLES = {"collections", "persons", "faces", "face_vectors"}


def _stdlib_can_load_extensions() -> bool:
    return hasattr(sqlite3.Connection, "enable_load_extension")


def sqlite_module():
    """(module, name): the DB-API module faced uses for SQLite."""
    if _stdlib_can_load_extensions():
        return sqlite3, "sqlite3 (Python standard library)"
    import sqlean

    return sqlean, "sqlean.py"


def connect(path: str, uri: bool = False, **kwargs):
    """A connection to `path` with sqlite-vec loaded."""
    module, _ = sqlite_module()
    connection = module.connect(path, uri=uri, **kwargs)
    connection.enable_load_extension(True)
    sqlite_vec.load(connection)
    connection.enable_load_extension(False)
    return connection


def describe() -> dict:
    """What `faced doctor` reports: loader, SQLite version, sqlite-vec version."""
    module, name = sqlite_module()
    connection = connect(":memory:")
    try:
        sqlite_version = connection.execute("select sqlite_version()").fetchone()[0]
        vec_version = connection.execute("select vec_version()").fetchone()[0]
    finally:
        connection.close()
    return {"loader": name, "sqlite": sqlite_version, "sqlite_vec": vec_version}


# ------------------------------------------------------------------------------------------- errors
def store_error(exc: Exception, path: str | os.PathLike) -> StoreError:
    """faced's code for a SQLite failure on `path`."""
    text = str(exc).lower()
    if "locked" in text or "busy" in text:
        return StoreError(f"{path}: another process held the database too long ({exc}); try again", "DB_BUSY")
    if "readonly" in text or "read-only" in text:
        return StoreError(f"{path} is read-only ({exc})", "DB_READ_ONLY")
    if "not a database" in text or "file is encrypted" in text:
        return StoreError(f"{path} is not a faced database (not SQLite)", "NOT_A_FACED_DB")
    if "malformed" in text or "corrupt" in text or "disk i/o" in text:
        return StoreError(f"{path} is damaged ({exc}): restore it from a backup (`faced backup`)", "DB_CORRUPT")
    if "no such table" in text or "no such column" in text:
        return StoreError(f"{path} is not a faced database ({exc})", "NOT_A_FACED_DB")
    return StoreError(f"{path}: {exc}", "DB_UNAVAILABLE")


@contextmanager
def translated(path: str | os.PathLike):
    """Raise SQLite's errors inside the block as faced's StoreError with a code."""
    module, _ = sqlite_module()
    try:
        yield
    except module.Error as exc:
        raise store_error(exc, path) from None


@contextmanager
def transaction(connection):
    """BEGIN IMMEDIATE ... COMMIT, or ROLLBACK on any error (the connection is in autocommit mode)."""
    connection.execute("BEGIN IMMEDIATE")
    try:
        yield connection
    except BaseException:
        if connection.in_transaction:
            connection.execute("ROLLBACK")
        raise
    connection.execute("COMMIT")


# ------------------------------------------------------------------------------------------ opening
def _writable(path: Path) -> bool:
    """Whether faced should write `path` (and its folder, for the -wal file). Root ignores permission bits, so
    for root a file without any write bit counts as read-only: its owner marked it so."""
    try:
        mode = path.stat().st_mode
    except OSError:
        return False
    if os.geteuid() == 0:
        return bool(mode & 0o222) and bool(path.parent.stat().st_mode & 0o222)
    return os.access(path, os.W_OK) and os.access(path.parent, os.W_OK)


def check_file(path: Path, create: bool) -> str:
    """Decide how `path` may be opened: "new" (create it), "rw" or "ro". Raises StoreError otherwise."""
    try:
        info = path.stat()
    except FileNotFoundError:
        if not create:
            raise StoreError(f"{path} does not exist (create it with `faced collections create NAME`, or check "
                             "--db)", "DB_NOT_FOUND") from None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create the folder of {path}: {exc.strerror or exc}", "DB_UNAVAILABLE") from None
        if not os.access(path.parent, os.W_OK):
            raise StoreError(f"cannot create {path}: its folder is read-only", "DB_READ_ONLY")
        return "new"
    except OSError as exc:
        raise StoreError(f"cannot open {path}: {exc.strerror or exc}", "DB_UNAVAILABLE") from None
    if stat.S_ISDIR(info.st_mode):
        raise StoreError(f"{path} is a folder, not a faced database file", "NOT_A_FACED_DB")
    if not stat.S_ISREG(info.st_mode):
        raise StoreError(f"{path} is not a regular file (a device or a pipe), not a faced database",
                         "NOT_A_FACED_DB")
    try:
        with path.open("rb") as handle:
            header = handle.read(len(SQLITE_HEADER))
    except OSError as exc:
        raise StoreError(f"cannot read {path}: {exc.strerror or exc}", "DB_UNAVAILABLE") from None
    if header and header != SQLITE_HEADER:
        raise StoreError(f"{path} is not a faced database (not an SQLite file)", "NOT_A_FACED_DB")
    if not header and not create:
        raise StoreError(f"{path} is an empty file, not a faced database", "NOT_A_FACED_DB")
    return "rw" if _writable(path) else "ro"


def open_connection(path: Path, mode: str, busy_timeout_s: float):
    """A connection in `mode` ("new", "rw" or "ro") with faced's per-connection settings."""
    if mode == "ro":
        target, uri = f"file:{_uri_path(path)}?mode=ro", True
    elif mode == "rw":
        target, uri = f"file:{_uri_path(path)}?mode=rw", True  # never create a file that vanished meanwhile
    else:
        target, uri = str(path), False
    with translated(path):
        connection = connect(target, uri=uri, isolation_level=None, check_same_thread=False,
                             timeout=busy_timeout_s)
        try:
            pragmas = [f"busy_timeout = {int(busy_timeout_s * 1000)}", "foreign_keys = ON"]
            if mode != "ro":
                pragmas += ["secure_delete = ON", "synchronous = FULL"]
            for pragma in pragmas:
                connection.execute(f"PRAGMA {pragma}")
        except BaseException:
            connection.close()
            raise
    return connection


def _uri_path(path: Path) -> str:
    from urllib.parse import quote

    return quote(str(path.resolve()))


def check_faced_schema(connection, path: Path) -> None:
    """Refuse another application's SQLite file (faced's own files are marked, or hold faced's tables)."""
    with translated(path):
        application_id = connection.execute("PRAGMA application_id").fetchone()[0]
        tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if application_id == APPLICATION_ID:
        return
    if application_id != 0:
        raise StoreError(f"{path} belongs to another application (application_id {application_id:#x}), not faced",
                         "NOT_A_FACED_DB")
    if tables and not FACED_TABLES <= tables:
        raise StoreError(f"{path} is another application's SQLite database (tables: "
                         f"{', '.join(sorted(tables)[:5])}); faced will not add its tables to it", "NOT_A_FACED_DB")
