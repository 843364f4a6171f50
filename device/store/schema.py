"""Schema of the SQLite file and its forward migrations.

PRAGMA user_version holds the schema version; `migrate` applies every step above it, each in its own
transaction, so a file is always at one version or the next, never between.
"""
from __future__ import annotations

from .sqlite import transaction

EMBEDDING_DIM = 128


def _recode_faces(connection) -> None:
    """Step 3: every face's search code, recomputed from its stored vector."""
    import numpy as np

    from .codes import search_code

    rows = connection.execute("SELECT face_id, embedding FROM face_vectors")
    while batch := rows.fetchmany(10_000):
        connection.executemany("UPDATE faces SET bits = ? WHERE id = ?",
                               [(search_code(np.frombuffer(blob, np.float32)), face_id) for face_id, blob in batch])


def _photo_hashes_and_keys(connection) -> None:
    """Step 4: the sha256 of the photo each face came from (enrolling a folder again adds only the new photos),
    and the API keys (only their sha256 is stored; a key is shown once, at creation)."""
    columns = {row[1] for row in connection.execute("PRAGMA table_info(faces)")}
    if "sha256" not in columns:
        connection.execute("ALTER TABLE faces ADD COLUMN sha256 TEXT")
    connection.execute("CREATE INDEX IF NOT EXISTS faces_by_photo ON faces(person_id, sha256)")
    connection.execute("""
        CREATE TABLE IF NOT EXISTS api_keys (
            name TEXT PRIMARY KEY,
            hash BLOB NOT NULL UNIQUE,  -- sha256 of the key
            created TEXT NOT NULL,
            last_used TEXT
        )""")


# Step 5: camera events. `events` is the history (GET /events; pruned after events.history_days); `event_outbox`
# holds what the broker has not acknowledged yet, in order (events and retained person states); `event_counters`
# keeps the device's event seq and what the bounded outbox dropped, so both survive restarts and pruning;
# `person_state` is the presence last published per person. Idempotent, like step 4. Erasing a person erases their events, queued
# messages and state, and queues the removal of their retained state topic (an empty retained message).
EVENTS_SCHEMA = """
    CREATE TABLE IF NOT EXISTS events (
        seq INTEGER PRIMARY KEY,          -- increasing per device, never reused
        event_id TEXT NOT NULL UNIQUE,    -- uuid4
        ts TEXT NOT NULL,                 -- ISO 8601 UTC, milliseconds
        type TEXT NOT NULL,
        camera TEXT NOT NULL,
        person_id TEXT,
        payload TEXT NOT NULL             -- the published JSON without its thumbnail
    );
    CREATE INDEX IF NOT EXISTS events_by_ts ON events(ts);
    CREATE INDEX IF NOT EXISTS events_by_person ON events(person_id);
    CREATE TABLE IF NOT EXISTS event_outbox (
        id INTEGER PRIMARY KEY AUTOINCREMENT,  -- publishing order
        seq INTEGER,                      -- the event's seq (NULL: a person state)
        topic TEXT NOT NULL,              -- below <prefix>/<device_id>/
        payload TEXT NOT NULL,
        retain INTEGER NOT NULL DEFAULT 0,
        person_id TEXT,
        created TEXT NOT NULL
    );
    CREATE INDEX IF NOT EXISTS event_outbox_by_person ON event_outbox(person_id);
    CREATE TABLE IF NOT EXISTS event_counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
    INSERT OR IGNORE INTO event_counters(name, value) VALUES ('seq', 0), ('outbox_dropped', 0);
    CREATE TABLE IF NOT EXISTS person_state (
        person_id TEXT PRIMARY KEY,
        state TEXT NOT NULL CHECK (state IN ('present', 'absent')),
        camera TEXT,
        changed TEXT NOT NULL
    );
    CREATE TRIGGER IF NOT EXISTS person_events_erased AFTER DELETE ON persons BEGIN
        DELETE FROM events WHERE person_id = old.id;
        DELETE FROM event_outbox WHERE person_id = old.id;
        INSERT INTO event_outbox(seq, topic, payload, retain, person_id, created)
            SELECT NULL, 'person/' || old.id || '/state', '', 1, NULL, strftime('%Y-%m-%dT%H:%M:%fZ', 'now')
            WHERE EXISTS (SELECT 1 FROM person_state WHERE person_id = old.id);
        DELETE FROM person_state WHERE person_id = old.id;
    END;
"""


def _visitors(connection) -> None:
    """Step 6: recurring unknown visitors (device/visitors.py). A visitor (uuid4) belongs to a collection and
    keeps a few best faces (unit embedding as float32 bytes, aligned 112x112 JPEG, quality 0..1); times are Unix
    seconds (retention compares them). Events and queued messages name their visitor, so that erasing one
    (forget, retention) erases its events too. Idempotent."""
    connection.execute("""
        CREATE TABLE IF NOT EXISTS visitors (
            id TEXT PRIMARY KEY,
            collection_id INTEGER NOT NULL REFERENCES collections(id) ON DELETE CASCADE,
            first_seen REAL NOT NULL,
            last_seen REAL NOT NULL,
            visits INTEGER NOT NULL DEFAULT 1,
            camera TEXT
        )""")
    connection.execute("CREATE INDEX IF NOT EXISTS visitors_by_last_seen ON visitors(last_seen)")
    connection.execute("""
        CREATE TABLE IF NOT EXISTS visitor_faces (
            id INTEGER PRIMARY KEY,
            visitor_id TEXT NOT NULL REFERENCES visitors(id) ON DELETE CASCADE,
            quality REAL NOT NULL,
            embedding BLOB NOT NULL,
            thumbnail BLOB NOT NULL,
            created REAL NOT NULL
        )""")
    connection.execute("CREATE INDEX IF NOT EXISTS visitor_faces_by_visitor ON visitor_faces(visitor_id)")
    for table in ("events", "event_outbox"):
        columns = {row[1] for row in connection.execute(f"PRAGMA table_info({table})")}
        if "visitor_id" not in columns:
            connection.execute(f"ALTER TABLE {table} ADD COLUMN visitor_id TEXT")
        connection.execute(f"CREATE INDEX IF NOT EXISTS {table}_by_visitor ON {table}(visitor_id)")
    connection.execute("""
        CREATE TRIGGER IF NOT EXISTS visitor_erased AFTER DELETE ON visitors BEGIN
            DELETE FROM visitor_faces WHERE visitor_id = old.id;
            DELETE FROM events WHERE visitor_id = old.id;
            DELETE FROM event_outbox WHERE visitor_id = old.id;
        END""")


# Each step takes the file from version i to i + 1. Append new steps; never edit a released one.
MIGRATIONS: list = [  # SQL scripts, or functions of the connection
    f"""
    CREATE TABLE collections (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        created TEXT NOT NULL,
        -- what produced the vectors: a collection never mixes vectors of different embedders
        embedder_model TEXT NOT NULL,
        embedder_precision TEXT NOT NULL,
        embedder_sha256 TEXT NOT NULL
    );
    CREATE TABLE persons (
        id TEXT PRIMARY KEY,  -- uuid4
        collection_id INTEGER NOT NULL REFERENCES collections(id) ON DELETE CASCADE,
        name TEXT NOT NULL,
        metadata TEXT NOT NULL DEFAULT '{{}}',
        created TEXT NOT NULL
    );
    CREATE INDEX persons_by_collection ON persons(collection_id, name);
    CREATE TABLE faces (
        id INTEGER PRIMARY KEY,
        person_id TEXT NOT NULL REFERENCES persons(id) ON DELETE CASCADE,
        collection_id INTEGER NOT NULL REFERENCES collections(id) ON DELETE CASCADE,
        quality INTEGER,
        thumbnail BLOB NOT NULL,  -- the aligned 112x112 crop, JPEG: lets `faced reembed` recompute vectors
        bits BLOB NOT NULL,       -- the search code of the embedding (db.search_code; 16 bytes before v3)
        source TEXT NOT NULL DEFAULT '',
        created TEXT NOT NULL
    );
    CREATE INDEX faces_by_person ON faces(person_id);
    CREATE INDEX faces_by_collection ON faces(collection_id);
    CREATE VIRTUAL TABLE face_vectors USING vec0(
        face_id INTEGER PRIMARY KEY,
        embedding float[{EMBEDDING_DIM}] distance_metric=cosine,
        collection_id INTEGER PARTITION KEY
    );
    -- Every face added or removed, in commit order: processes holding a search index catch up from it.
    CREATE TABLE face_log (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        collection_id INTEGER NOT NULL,
        face_id INTEGER NOT NULL,
        op TEXT NOT NULL CHECK (op IN ('add', 'remove'))
    );
    CREATE TRIGGER faces_added AFTER INSERT ON faces BEGIN
        INSERT INTO face_log(collection_id, face_id, op) VALUES (new.collection_id, new.id, 'add');
    END;
    -- Cascading deletes fire this too: the vector leaves with its face, in the same transaction.
    CREATE TRIGGER faces_removed AFTER DELETE ON faces BEGIN
        DELETE FROM face_vectors WHERE face_id = old.id;
        INSERT INTO face_log(collection_id, face_id, op) VALUES (old.collection_id, old.id, 'remove');
    END;
    """,
    # 2: loading a collection's search index reads (id, bits) of its faces from a covering index, in id
    # order, instead of visiting every row with its thumbnail (start-up at a million faces: 3.6 s -> 0.6 s).
    """
    CREATE INDEX faces_bits ON faces(collection_id, id, bits);
    DROP INDEX faces_by_collection;
    """,
    # 3: faces.bits becomes the 32-byte search code (sign bits, then magnitude bits), recomputed from the
    # stored vectors: the index ranks its shortlist with 2 bits per dimension instead of 1.
    _recode_faces,
    _photo_hashes_and_keys,
    EVENTS_SCHEMA,
    _visitors,
]

SCHEMA_VERSION = len(MIGRATIONS)


def migrate(connection) -> int:
    """Bring the file up to SCHEMA_VERSION; returns the version it had."""
    found = connection.execute("PRAGMA user_version").fetchone()[0]
    if found > SCHEMA_VERSION:
        from ..errors import StoreError

        raise StoreError(f"the database is at schema version {found}, newer than this faced ({SCHEMA_VERSION})",
                         "DB_TOO_NEW")
    for version in range(found, SCHEMA_VERSION):
        step = MIGRATIONS[version]
        with transaction(connection):
            if callable(step):  # a step that rewrites data in Python
                step(connection)
            else:
                for statement in _statements(step):
                    connection.execute(statement)
            connection.execute(f"PRAGMA user_version = {version + 1}")
    return found


def _statements(script: str) -> list[str]:
    """Split a migration into complete statements (triggers hold ';' between BEGIN and END)."""
    import sqlite3

    statements, current = [], []
    for line in script.strip().splitlines():
        current.append(line)
        text = "\n".join(current).strip()
        if sqlite3.complete_statement(text):
            statements.append(text)
            current = []
    return statements
