"""In-memory search index of one collection: each face's 2-bit search code, kept in step with SQLite.

SQLite stays the source of truth. The index holds each face's search code (db.search_code: 16 bytes of sign
bits and 16 of magnitude bits, set on the half of the dimensions with the largest |value|) and its 8-byte id:
40 MB per million faces. A query runs three passes:

1. Hamming: every face whose weighted Hamming distance from the query's sign bits (a differing sign counts 2
   where |q| is among its 64 largest, else 1) is at most that of its `SHORTLIST`-th nearest, ties included
   (XOR, AND and popcount passes in cache-sized blocks).
2. 2-bit score: the shortlist is ranked by q . x', where x' is the face rebuilt from its code (sign times a
   small or a large magnitude), through per-byte lookup tables. Unlike Hamming distance this keeps the
   query's magnitudes, and the magnitude bits rank weak neighbours far better than signs alone.
3. Exact: the best `candidates` of that ranking are re-scored with their float vectors, read from the vec0
   table in one SQL statement, and the best `count` are returned.

Scores are therefore exact; a true neighbour can only be missed if its code is unusually far from the query,
which for faces above the match threshold is rare (`faced bench search` measures it).

Catching up: every add and remove is written to `face_log` by triggers in the same transaction. Before each
search, when the log's newest entry says something was committed, the index applies the log entries after the
last one it saw (up to the newest entry it read first; each face's last entry decides); if the log was trimmed
past that point, it reloads.

Threads: one index serves every thread of a process. Catching up happens under the index's lock; the arrays
are replaced, never changed in place, so a search reads a consistent (ids, codes) pair taken under the lock
and scans it without holding it.
"""
from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass

import numpy as np

from .codes import search_code
from .db import Collection, Store

WORDS = 2  # 64-bit words of sign bits (128 dimensions)
CODE_WORDS = 2 * WORDS  # sign words, then magnitude words
DIM = 64 * WORDS
# Faces kept by the Hamming pass (ties included) for the 2-bit pass.
SHORTLIST = 10_000
# Faces re-scored exactly from SQLite. With SHORTLIST 10k, 64 find 99.95% of the top-10 neighbours above the
# match threshold (score 0.6) of clustered 128-d faces at a million faces (`faced bench search`); ranking by
# sign bits alone needed 200 for 99.35%. Each costs a point read in the vec0 table.
CANDIDATES = 64
# |x| of a unit vector's dimensions is close to half-normal: the mean of its upper half over the mean of its
# lower half (1.2711 / 0.3247). The code's large magnitude is this many times its small one.
MAGNITUDE_RATIO = 3.915
# Collections up to MIRROR_MAX_FACES also keep their vectors in memory (512 bytes a face, 100 MB at the limit):
# the exact re-score then reads no SQLite, and up to BRUTE_FORCE_MAX faces every face is scored exactly (there
# the code passes would cost more than the arithmetic they save). `faced bench search` measures both against
# numpy brute force.
MIRROR_MAX_FACES = 200_000
BRUTE_FORCE_MAX = 20_000
# How often, at most, a searcher re-reads the change log for other processes' commits (its own are seen at once).
RECHECK_S = 0.05
_LOAD_BATCH = 65_536
_BLOCK = 65_536  # faces per block of the Hamming pass
_SAMPLE = 160_000  # distances sampled (at most about) to place the shortlist cutoff

# _BITS[v, b] = 1 where bit b (most significant first, as np.packbits) of byte value v is set, else 0.
_BITS = np.unpackbits(np.arange(256, dtype=np.uint8)[:, None], axis=1).astype(np.float32)
# Where byte j of a face's 48 code bytes (signs, magnitudes, signs AND magnitudes) starts in the flat table.
_OFFSETS = 256 * np.arange(6 * 8, dtype=np.intp)


def _as_words(blob_rows) -> np.ndarray:
    """Rows of 32-byte search codes -> array (CODE_WORDS, n) of uint64, each word contiguous."""
    data = b"".join(blob_rows)
    if len(data) % (8 * CODE_WORDS):
        raise ValueError("a face's search code is not 32 bytes: the database needs schema version 3")
    words = np.frombuffer(data, dtype=np.uint64).reshape(-1, CODE_WORDS)
    return np.ascontiguousarray(words.T)


@dataclass(frozen=True)
class Snapshot:
    """What one search scans: face ids, their search codes and, for a small collection, their vectors."""

    face_ids: np.ndarray  # int64 (n,)
    codes: np.ndarray  # uint64 (CODE_WORDS, n)
    vectors: np.ndarray | None  # float32 (n, 128), only up to MIRROR_MAX_FACES faces

    def keep(self, mask: np.ndarray) -> "Snapshot":
        return Snapshot(self.face_ids[mask], np.ascontiguousarray(self.codes[:, mask]),
                        None if self.vectors is None else self.vectors[mask])

    def extend(self, face_ids: np.ndarray, codes: np.ndarray, vectors: np.ndarray | None) -> "Snapshot":
        total = len(self.face_ids) + len(face_ids)
        mirror = None
        if self.vectors is not None and vectors is not None and total <= MIRROR_MAX_FACES:
            mirror = np.concatenate([self.vectors, vectors])
        return Snapshot(np.concatenate([self.face_ids, face_ids]), np.concatenate([self.codes, codes], axis=1),
                        mirror)


class CollectionIndex:
    def __init__(self, store: Store, collection: Collection):
        self.store = store
        self.collection = collection
        self._lock = threading.Lock()
        self._checked_at = 0.0
        self._commits_seen = -1
        with self._lock:
            self._reload()

    @property
    def face_ids(self) -> np.ndarray:
        return self.snapshot.face_ids

    @property
    def codes(self) -> np.ndarray:
        return self.snapshot.codes

    def _reload(self) -> None:
        connection = self.store.connection
        self.last_seq = self.store.log_position()
        capacity = connection.execute("SELECT count(*) FROM faces WHERE collection_id = ?",
                                      (self.collection.id,)).fetchone()[0]
        exact = capacity <= MIRROR_MAX_FACES
        face_ids = np.empty(capacity, dtype=np.int64)
        codes = np.empty((CODE_WORDS, capacity), dtype=np.uint64)
        vectors = []
        # One statement, read in batches: a million rows as Python objects would take ~250 MB at once.
        cursor = connection.execute(
            "SELECT f.id, f.bits, v.embedding FROM faces AS f JOIN face_vectors AS v ON v.face_id = f.id "
            "WHERE f.collection_id = ? ORDER BY f.id" if exact else
            "SELECT id, bits FROM faces WHERE collection_id = ? ORDER BY id", (self.collection.id,))
        filled = 0
        while rows := cursor.fetchmany(_LOAD_BATCH):
            end = filled + len(rows)
            if end > capacity:  # faces committed since the count
                capacity = max(end, capacity + capacity // 4)
                face_ids = np.resize(face_ids, capacity)
                grown = np.empty((CODE_WORDS, capacity - codes.shape[1]), np.uint64)
                codes = np.concatenate([codes, grown], axis=1)
            face_ids[filled:end] = [r[0] for r in rows]
            codes[:, filled:end] = _as_words([r[1] for r in rows])
            if exact:
                vectors.append(_as_vectors([r[2] for r in rows]))
            filled = end
        mirror = np.concatenate(vectors) if exact and vectors else (
            np.empty((0, DIM), np.float32) if exact else None)
        if mirror is not None and len(mirror) > MIRROR_MAX_FACES:
            mirror = None
        self.snapshot = Snapshot(face_ids[:filled], np.ascontiguousarray(codes[:, :filled]), mirror)

    def refresh(self) -> Snapshot:
        """The snapshot to search, after applying what was committed since the last look.

        Commits of this process are seen at once (the store counts them); those of other processes (the CLI
        next to the daemon) within RECHECK_S, when the change log is read again. The check itself costs no
        SQL, so that a search of a small collection costs what brute force costs."""
        if self.store.commits == self._commits_seen and time.monotonic() - self._checked_at < RECHECK_S:
            return self.snapshot
        with self._lock:
            commits = self.store.commits  # read first: a commit landing meanwhile is applied next time
            self._catch_up()
            self._commits_seen, self._checked_at = commits, time.monotonic()
            return self.snapshot

    def _catch_up(self) -> None:
        connection = self.store.connection
        latest = self.store.log_position()
        if latest == self.last_seq:
            return
        oldest = connection.execute("SELECT min(seq) FROM face_log").fetchone()[0]
        if oldest is not None and oldest > self.last_seq + 1:
            self._reload()  # the log no longer reaches back to our last entry
            return
        entries = connection.execute(
            "SELECT seq, face_id, op FROM face_log WHERE seq > ? AND seq <= ? AND collection_id = ? ORDER BY seq",
            (self.last_seq, latest, self.collection.id)).fetchall()
        # Each face's last entry decides: every face mentioned leaves the index, and those whose last entry is
        # an add come back with the code (and vector) the tables hold now (a re-embedded face is logged
        # remove + add; a face the reload already held is not held twice).
        last_op = {face_id: op for _, face_id, op in entries}
        snapshot = self.snapshot
        if last_op:
            snapshot = snapshot.keep(~np.isin(snapshot.face_ids, np.fromiter(last_op, dtype=np.int64,
                                                                             count=len(last_op))))
        added = [face_id for face_id, op in last_op.items() if op == "add"]
        rows = connection.execute(
            "SELECT f.id, f.bits, v.embedding FROM json_each(?) AS j CROSS JOIN faces AS f ON f.id = j.value "
            "JOIN face_vectors AS v ON v.face_id = f.id", (json.dumps(added),)).fetchall() if added else []
        if rows:  # a face added and removed again after `latest` is not in the table any more
            snapshot = snapshot.extend(np.array([r[0] for r in rows], np.int64), _as_words([r[1] for r in rows]),
                                       _as_vectors([r[2] for r in rows]))
        self.snapshot = snapshot
        self.last_seq = latest

    def __len__(self) -> int:
        return len(self.snapshot.face_ids)

    def nearest(self, embedding: np.ndarray, count: int, candidates: int = CANDIDATES, floor: float | None = None
                ) -> list[tuple[int, float]]:
        """Up to `count` (face id, cosine) pairs, best first (see `search`)."""
        ids, cosines = self.search(embedding, count, candidates, floor)
        return list(zip(ids.tolist(), cosines.tolist()))

    def search(self, embedding: np.ndarray, count: int, candidates: int = CANDIDATES, floor: float | None = None
               ) -> tuple[np.ndarray, np.ndarray]:
        """(face ids, cosines) of up to `count` faces, best first, with exact cosines; with `floor`, only faces
        whose cosine is at least `floor` (an open-set search never needs the others: they are unknown anyway).

        Up to BRUTE_FORCE_MAX faces every face is scored from the in-memory vectors. Above, the code passes
        shortlist `candidates` faces (at least), which are re-scored exactly: from the in-memory vectors up to
        MIRROR_MAX_FACES, else from the vec0 table."""
        snapshot = self.refresh()
        face_ids, codes, vectors = snapshot.face_ids, snapshot.codes, snapshot.vectors
        total = len(face_ids)
        if not total or count <= 0:
            return _EMPTY_IDS, _EMPTY_COSINES
        query = np.asarray(embedding, dtype=np.float32).reshape(-1)
        if vectors is not None and total <= BRUTE_FORCE_MAX:
            return _best(face_ids, vectors @ query, count, floor)
        rescore = max(int(candidates), int(count))
        if total <= rescore:
            chosen = np.arange(total)
        else:
            pool = _shortlist(codes, query) if total > SHORTLIST else np.arange(total)
            if len(pool) > rescore:
                scores = _code_scores(codes, query, pool)
                chosen = pool[np.argpartition(-scores, rescore - 1)[:rescore]]
            else:
                chosen = pool
        if vectors is not None:
            return _best(face_ids[chosen], vectors[chosen] @ query, count, floor)
        ids, matrix = self.store.vector_matrix(np.sort(face_ids[chosen]))
        return _best(ids, matrix @ query, count, floor)


# ---------------------------------------------------------------------------------------------- passes
def _best(face_ids: np.ndarray, cosines: np.ndarray, count: int, floor: float | None = None
          ) -> tuple[np.ndarray, np.ndarray]:
    """The `count` best (face ids, cosines), best first; with `floor`, of those at or above it only (usually a
    handful: selecting among them is cheaper than partitioning every score)."""
    best = np.flatnonzero(cosines >= floor) if floor is not None else np.arange(len(cosines))
    if len(best) > count:
        best = best[np.argpartition(cosines[best], len(best) - count)[len(best) - count:]]
    best = best[np.argsort(-cosines[best], kind="stable")]
    return face_ids[best], cosines[best]


_EMPTY_IDS, _EMPTY_COSINES = np.empty(0, np.int64), np.empty(0, np.float32)


def _as_vectors(blobs) -> np.ndarray:
    return np.frombuffer(b"".join(blobs), dtype=np.float32).reshape(-1, DIM).copy()


def _shortlist(all_codes: np.ndarray, query: np.ndarray) -> np.ndarray:
    """Positions of every face at or below the weighted Hamming distance of the SHORTLIST-th nearest
    (estimated from a sample above 160k faces), ties included.

    A sign that differs where the query is strong (the 64 dimensions of largest |q|) counts 2, elsewhere 1:
    a two-level version of the asymmetric score that keeps the weak neighbours plain Hamming distance
    loses. At most 128 + 64, so it fits uint8."""
    code = np.frombuffer(search_code(query), dtype=np.uint64)  # the query's own signs and strong dimensions
    words, strong = code[:WORDS], code[WORDS:]
    total = all_codes.shape[1]
    distances = np.empty(total, dtype=np.uint8)
    block = min(total, _BLOCK)
    differ, counts = np.empty(block, np.uint64), np.empty(block, np.uint8)
    for start in range(0, total, _BLOCK):  # in blocks that stay in cache: ~2.5x faster than whole arrays
        end = min(total, start + _BLOCK)
        size, out = end - start, distances[start:end]
        out[:] = 0
        for w in range(WORDS):
            np.bitwise_xor(all_codes[w, start:end], words[w], out=differ[:size])
            np.bitwise_count(differ[:size], out=counts[:size])
            out += counts[:size]
            np.bitwise_and(differ[:size], strong[w], out=differ[:size])
            np.bitwise_count(differ[:size], out=counts[:size])
            out += counts[:size]
    # The cutoff from a regular sample of the distances (a million-face bincount costs ~1 ms).
    step = max(1, total // _SAMPLE)
    histogram = np.cumsum(np.bincount(distances[::step], minlength=DIM + DIM // 2 + 1))
    cutoff = int(np.searchsorted(histogram, -(-SHORTLIST // step)))
    return np.flatnonzero(distances <= cutoff)

def _code_scores(all_codes: np.ndarray, query: np.ndarray, pool: np.ndarray) -> np.ndarray:
    """q . x' for the faces at `pool`, x' rebuilt from their codes: sign s = +-1 times magnitude 1, or
    MAGNITUDE_RATIO where the magnitude bit m is set. With P, M, PM the sums of q over the set bits of
    s, m and s AND m: q . x' = 2P - sum(q) + (MAGNITUDE_RATIO - 1) (2 PM - M); each sum is one table
    look-up per byte, all 48 of a face in one gather."""
    sums = query.reshape(-1, 8) @ _BITS.T  # (16, 256): sum of q over the set bits of byte j valued v
    extra = MAGNITUDE_RATIO - 1
    table = np.concatenate([2 * sums, -extra * sums, 2 * extra * sums]).ravel()
    codes = all_codes[:, pool]
    words = np.concatenate([codes, np.bitwise_and(codes[:WORDS], codes[WORDS:])])  # (6, len(pool))
    octets = np.ascontiguousarray(words.T).view(np.uint8)  # (len(pool), 48), np.packbits byte order
    return table[octets + _OFFSETS].sum(axis=1) - float(query.sum())
