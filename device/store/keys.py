"""API keys: random, shown once, stored as sha256 only, checked in constant time.

A key is `secrets.token_urlsafe(32)` (256 random bits). The table `api_keys` (migration 4) holds its name and
the sha256 of the key; the key itself is never stored or logged. Verification hashes the presented value and
compares it with every stored hash using `hmac.compare_digest`, without stopping at the first match, so the
answer's timing says nothing about which bytes or which key were close.
"""
from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from ..errors import Conflict, NotFound, StoreError
from ..validation import clean_name, lookup_name
from .db import Store, now

# last_used is written at most this often per key (a write per request would contend with enrolment).
LAST_USED_RESOLUTION = timedelta(seconds=60)


@dataclass
class ApiKey:
    name: str
    created: str
    last_used: str | None

    def to_dict(self) -> dict:
        return {"name": self.name, "created": self.created, "last_used": self.last_used}


def key_hash(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).digest()


def create_key(store: Store, name: str) -> tuple[ApiKey, str]:
    """A new key named `name`: (its record, the key itself, to be shown once)."""
    name = clean_name(name, "key name")
    key = secrets.token_urlsafe(32)
    with store.transaction() as connection:
        if connection.execute("SELECT 1 FROM api_keys WHERE name = ?", (name,)).fetchone():
            raise Conflict(f"an API key named {name!r} exists; revoke it first or choose another name",
                           "KEY_EXISTS")
        created = now()
        connection.execute("INSERT INTO api_keys(name, hash, created) VALUES (?, ?, ?)",
                           (name, key_hash(key), created))
    return ApiKey(name, created, None), key


def list_keys(store: Store) -> list[ApiKey]:
    return [ApiKey(*row) for row in store.connection.execute(
        "SELECT name, created, last_used FROM api_keys ORDER BY name")]


def count_keys(store: Store) -> int:
    return store.connection.execute("SELECT count(*) FROM api_keys").fetchone()[0]


def revoke_key(store: Store, name: str) -> ApiKey:
    with store.transaction() as connection:
        row = connection.execute("SELECT name, created, last_used FROM api_keys WHERE name = ?",
                                 (lookup_name(name),)).fetchone()
        if row is None:
            raise NotFound(f"no API key named {name!r}", "KEY_NOT_FOUND")
        connection.execute("DELETE FROM api_keys WHERE name = ?", (row[0],))
    return ApiKey(*row)


def verify_key(store: Store, presented: str) -> str | None:
    """The name of the key equal to `presented`, or None. Constant time in the presented value."""
    digest = key_hash(presented)
    found = None
    for name, stored, last_used in store.connection.execute("SELECT name, hash, last_used FROM api_keys"):
        if hmac.compare_digest(digest, bytes(stored)) and found is None:
            found = (name, last_used)
    if found is None:
        return None
    _touch(store, *found)
    return found[0]


def _touch(store: Store, name: str, last_used: str | None) -> None:
    """Record the key's use, at most once per LAST_USED_RESOLUTION (never fails a request)."""
    if store.read_only:
        return
    current = datetime.now(timezone.utc)
    if last_used:
        try:
            if current - datetime.fromisoformat(last_used) < LAST_USED_RESOLUTION:
                return
        except ValueError:
            pass
    try:
        with store.transaction() as connection:
            connection.execute("UPDATE api_keys SET last_used = ? WHERE name = ?", (now(), name))
    except StoreError:  # a busy or read-only database must not turn a valid key into an error
        pass
