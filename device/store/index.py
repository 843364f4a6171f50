"""In-memory search index of one collection: the sign bits of every embedding, kept in step with SQLite.

SQLite stays the source of truth. The index holds 16 bytes per face (two uint64 words of sign bits): a
query takes every face whose Hamming distance is at most that of its `candidates`-th nearest (ties
included), and those are re-scored exactly with their float vectors read from the vec0 table. Scores are
therefore exact; a true neighbour can only be missed if its sign pattern is unusually far from the query's,
which for faces above the match threshold is rare (see README "Search").

Catching up: every add and remove is written to `face_log` by triggers in the same transaction. Before each
search, when PRAGMA data_version says another connection committed, the index applies the log entries after
the last one it saw; if the log was trimmed past that point, it reloads.
"""
from __future__ import annotations

import numpy as np

from .db import Collection, Store

WORDS = 2  # 128 bits


def _as_words(blob_rows) -> np.ndarray:
    data = b"".join(blob_rows)
    return np.frombuffer(data, dtype=np.uint64).reshape(-1, WORDS) if data else np.zeros((0, WORDS), np.uint64)


def query_words(embedding: np.ndarray) -> np.ndarray:
    return np.frombuffer(np.packbits(np.asarray(embedding) > 0).tobytes(), dtype=np.uint64)


class CollectionIndex:
    def __init__(self, store: Store, collection: Collection):
        self.store = store
        self.collection = collection
        self._version = None
        self.reload()

    def reload(self) -> None:
        connection = self.store.connection
        self.last_seq = connection.execute("SELECT coalesce(max(seq), 0) FROM face_log").fetchone()[0]
        rows = connection.execute("SELECT id, bits FROM faces WHERE collection_id = ? ORDER BY id",
                                  (self.collection.id,)).fetchall()
        self.face_ids = np.array([r[0] for r in rows], dtype=np.int64)
        self.bits = _as_words([r[1] for r in rows]).copy()
        self._version = self.store.data_version()

    def refresh(self) -> None:
        """Apply what other connections (and this one) committed since the last look."""
        version = self.store.data_version()
        connection = self.store.connection
        latest = connection.execute("SELECT coalesce(max(seq), 0) FROM face_log").fetchone()[0]
        if version == self._version and latest == self.last_seq:
            return
        oldest = connection.execute("SELECT min(seq) FROM face_log").fetchone()[0]
        if oldest is not None and oldest > self.last_seq + 1:
            self.reload()  # the log no longer reaches back to our last entry
            return
        entries = connection.execute(
            "SELECT seq, face_id, op FROM face_log WHERE seq > ? AND collection_id = ? ORDER BY seq",
            (self.last_seq, self.collection.id)).fetchall()
        removed = {face_id for _, face_id, op in entries if op == "remove"}
        added = [face_id for _, face_id, op in entries if op == "add" and face_id not in removed]
        if removed:
            keep = ~np.isin(self.face_ids, np.fromiter(removed, dtype=np.int64))
            self.face_ids, self.bits = self.face_ids[keep], self.bits[keep]
        if added:
            rows = []
            for face_id in added:
                row = connection.execute("SELECT id, bits FROM faces WHERE id = ?", (face_id,)).fetchone()
                if row is not None:  # added and removed again after our snapshot
                    rows.append(row)
            if rows:
                self.face_ids = np.concatenate([self.face_ids, np.array([r[0] for r in rows], np.int64)])
                self.bits = np.concatenate([self.bits, _as_words([r[1] for r in rows])])
        self.last_seq = latest
        self._version = version

    def __len__(self) -> int:
        return len(self.face_ids)

    def nearest(self, embedding: np.ndarray, count: int, candidates: int = 1000) -> list[tuple[int, float]]:
        """Up to `count` (face id, cosine) pairs, best first, exact cosines of the prefiltered faces."""
        self.refresh()
        if not len(self.face_ids):
            return []
        query = query_words(embedding)
        distances = np.bitwise_count(np.bitwise_xor(self.bits, query)).sum(axis=1)
        if len(distances) > candidates:
            cutoff = np.partition(distances, candidates - 1)[candidates - 1]
            chosen = np.nonzero(distances <= cutoff)[0]
        else:
            chosen = np.arange(len(distances))
        vectors = self.store.vectors(self.face_ids[chosen].tolist())
        ids = np.array(list(vectors), dtype=np.int64)
        if not len(ids):
            return []
        matrix = np.stack(list(vectors.values()))
        cosines = matrix @ np.asarray(embedding, dtype=np.float32)
        order = np.argsort(-cosines)[:count]
        return [(int(ids[i]), float(cosines[i])) for i in order]
