"""Face crops served by URL (contract 4's `return_face_url`): GET /faces/{token}.jpg with the key
(`Authorization: Bearer KEY`, else `x-api-key`), for api.face_url_ttl_s seconds.

- The token is secrets.token_urlsafe(24) (192 random bits): the URL cannot be guessed, and it is useless
  without a key anyway.
- Crops live in memory only (a restart forgets them), at most MAX_BYTES in all: the oldest go first when a new
  one would pass the bound. An expired crop is removed when it is asked for and at every new store.
- Person erasure: contract 4 recognises no one, so a crop belongs to no person and faced cannot tell whose
  face it shows without running recognition on it. Erasing a person, a face or a collection through the API
  therefore removes every crop held (they are at most face_url_ttl_s old). Erasure by the CLI in another
  process does not reach this memory; those crops still expire on time.
"""
from __future__ import annotations

import secrets
import threading
import time
from collections import OrderedDict

from ..errors import NotFound

MAX_BYTES = 64 * 1024 * 1024


class Crops:
    def __init__(self, ttl_s: float, max_bytes: int = MAX_BYTES, clock=time.monotonic):
        self.ttl_s = ttl_s
        self.max_bytes = max_bytes
        self.clock = clock
        self._items: OrderedDict[str, tuple[float, bytes]] = OrderedDict()  # token -> (expiry, JPEG)
        self._bytes = 0
        self._lock = threading.Lock()

    def put(self, jpeg: bytes) -> str:
        token = secrets.token_urlsafe(24)
        with self._lock:
            self._expire()
            while self._items and self._bytes + len(jpeg) > self.max_bytes:
                self._drop(next(iter(self._items)))
            self._items[token] = (self.clock() + self.ttl_s, jpeg)
            self._bytes += len(jpeg)
        return token

    def get(self, token: str) -> bytes:
        with self._lock:
            item = self._items.get(token)
            if item is not None and item[0] <= self.clock():
                self._drop(token)
                item = None
        if item is None:
            raise NotFound("no face crop at this URL: it expired (api.face_url_ttl_s) or was erased",
                           "FACE_URL_NOT_FOUND")
        return item[1]

    def clear(self) -> int:
        with self._lock:
            count = len(self._items)
            self._items.clear()
            self._bytes = 0
        return count

    def __len__(self) -> int:
        with self._lock:
            self._expire()
            return len(self._items)

    def _expire(self) -> None:
        now = self.clock()
        while self._items:
            token, (expiry, _) = next(iter(self._items.items()))
            if expiry > now:
                break  # insertion order is expiry order (one ttl for all)
            self._drop(token)

    def _drop(self, token: str) -> None:
        _, jpeg = self._items.pop(token)
        self._bytes -= len(jpeg)
