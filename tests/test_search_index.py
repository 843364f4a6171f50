"""The in-memory search index (device/store/index.py): exact cosines, the prefilter's recall, catching up
with another connection's adds and removes."""
from __future__ import annotations

import numpy as np
import pytest

from device.bench_search import make_data
from device.store.db import NewFace, Store
from device.store.index import CollectionIndex

EMBEDDER = {"model": "synthetic", "precision": "fp32", "sha256": "1" * 64}


def _fill(store, collection, vectors, prefix="p"):
    ids = []
    for person in range(len(vectors) // 10):
        faces = [NewFace(v, b"jpeg") for v in vectors[person * 10:(person + 1) * 10]]
        ids += store.add_person(collection, f"{prefix}{person}", faces)[1]
    return np.array(ids)


@pytest.mark.parametrize("path", ["brute force", "codes + vectors in memory", "codes + vec0 table"])
def test_nearest_matches_brute_force(tmp_path, monkeypatch, path):
    # Each of the index's three ways to search, forced at a small size.
    from device.store import index as index_module

    if path != "brute force":
        monkeypatch.setattr(index_module, "BRUTE_FORCE_MAX", 0)
        monkeypatch.setattr(index_module, "SHORTLIST", 500)
    if path == "codes + vec0 table":
        monkeypatch.setattr(index_module, "MIRROR_MAX_FACES", 0)
    vectors, enrolled, strangers = make_data(3000, 20)
    with Store(tmp_path / "faced.db", create=True) as store:
        collection = store.create_collection("c", EMBEDDER)
        ids = _fill(store, collection, vectors)
        index = CollectionIndex(store, collection)
        assert (index.snapshot.vectors is None) == (path == "codes + vec0 table")
        hits = wanted = 0
        for query in np.concatenate([enrolled, strangers]):
            cosines = vectors @ query
            exact = np.argsort(-cosines)[:10]
            # Every face re-scored: the exact answer, best first, with exact cosines.
            everything = index.nearest(query, 10, candidates=len(vectors))
            assert [face_id for face_id, _ in everything] == ids[exact].tolist()
            assert np.allclose([c for _, c in everything], cosines[exact], atol=1e-5)
            # The default prefilter: cosines still exact, neighbours above the threshold found.
            found = index.nearest(query, 10)
            assert all(abs(c - cosines[np.searchsorted(ids, f)]) < 1e-5 for f, c in found)
            assert [c for _, c in found] == sorted((c for _, c in found), reverse=True)
            above = set(ids[exact[cosines[exact] > 0.386]].tolist())
            wanted += len(above)
            hits += len(above & {f for f, _ in found})
        assert hits / wanted >= 0.99


def test_index_follows_another_connection(tmp_path):
    vectors, enrolled, _ = make_data(200, 1)
    path = tmp_path / "faced.db"
    with Store(path, create=True) as store, Store(path) as other:
        collection = store.create_collection("c", EMBEDDER)
        ids = _fill(store, collection, vectors[:100])
        index = CollectionIndex(store, collection)
        added = _fill(other, other.collection("c"), vectors[100:], "q")
        gone = store.person(store.face_owners([int(ids[0])])[int(ids[0])][0])
        other.delete_person(gone.id)
        index.refresh()
        expected = sorted(set(ids.tolist() + added.tolist()) - set(gone.face_ids))
        assert sorted(index.face_ids.tolist()) == expected
        assert index.codes.shape == (4, len(expected))
        best = index.nearest(vectors[150], 1)
        assert best[0][0] == int(added[50]) and abs(best[0][1] - 1.0) < 1e-5


def test_face_committed_while_loading_is_held_once(tmp_path):
    vectors, _, _ = make_data(100, 1)
    with Store(tmp_path / "faced.db", create=True) as store:
        collection = store.create_collection("c", EMBEDDER)
        ids = _fill(store, collection, vectors)
        index = CollectionIndex(store, collection)
        # As if the last person had been committed after the log position was read but before the rows were.
        index.last_seq -= 10
        index.refresh()
        assert sorted(index.face_ids.tolist()) == sorted(ids.tolist())
        assert len(index.nearest(vectors[99], 100, candidates=100)) == 100


def test_reembedded_face_stays_in_another_connections_index(tmp_path):
    from device.store.portable import reembed_collection

    vectors, _, _ = make_data(100, 1)
    path = tmp_path / "faced.db"
    with Store(path, create=True) as store, Store(path) as other:
        collection = store.create_collection("c", EMBEDDER)
        ids = store.add_person(collection, "p", [NewFace(v, b"jpeg %d" % i) for i, v in enumerate(vectors)])[1]
        index = CollectionIndex(store, collection)
        assert len(index) == 100
        # The other process re-embeds every face (each logged remove + add): here, with the sign flipped.
        reembed_collection(other, "c", dict(EMBEDDER, sha256="2" * 64),
                           lambda thumbnail: -vectors[int(thumbnail.split()[1])])
        best = index.nearest(-vectors[42], 1)
        assert sorted(index.face_ids.tolist()) == sorted(ids)
        assert best[0][0] == ids[42] and abs(best[0][1] - 1.0) < 1e-5


def test_version_2_file_gets_search_codes(tmp_path):
    from device.store.codes import search_code
    from device.store.schema import SCHEMA_VERSION

    vectors, _, _ = make_data(30, 1)
    path = tmp_path / "faced.db"
    with Store(path, create=True) as store:
        collection = store.create_collection("c", EMBEDDER)
        ids = _fill(store, collection, vectors)
        # As a version 2 file was: 16 bytes of sign bits per face.
        for face_id, vector in zip(ids, vectors):
            store.connection.execute("UPDATE faces SET bits = ? WHERE id = ?",
                                     (np.packbits(vector > 0).tobytes(), int(face_id)))
        store.connection.execute("PRAGMA user_version = 2")
    with Store(path) as store:
        assert store.connection.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        codes = dict(store.connection.execute("SELECT id, bits FROM faces"))
        assert all(codes[int(i)] == search_code(v) for i, v in zip(ids, vectors))
        index = CollectionIndex(store, store.collection("c"))
        assert index.nearest(vectors[7], 1)[0][0] == int(ids[7])
