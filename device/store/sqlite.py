"""Open SQLite with the sqlite-vec extension loaded.

Python's own sqlite3 is used when it can load extensions; builds without `enable_load_extension` (pyenv's
default, some distributions') fall back to sqlean.py, which bundles a recent SQLite that can.
"""
from __future__ import annotations

import sqlite3

import sqlite_vec


def _stdlib_can_load_extensions() -> bool:
    return hasattr(sqlite3.Connection, "enable_load_extension")


def sqlite_module():
    """(module, name): the DB-API module faced uses for SQLite."""
    if _stdlib_can_load_extensions():
        return sqlite3, "sqlite3 (Python standard library)"
    import sqlean

    return sqlean, "sqlean.py"


def connect(path: str, **kwargs):
    """A connection to `path` with sqlite-vec loaded."""
    module, _ = sqlite_module()
    connection = module.connect(path, **kwargs)
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
