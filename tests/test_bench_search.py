"""`faced bench search` at a tiny size: the JSON rows carry the documented keys and sane values.

No timing assertions: speed is what the bench itself reports.
"""
from __future__ import annotations

import json

import numpy as np

from device.bench_search import ROW_KEYS, make_data
from tests.conftest import run_faced


def test_bench_search_tiny_run_writes_rows(tmp_path):
    out = tmp_path / "search.json"
    work = tmp_path / "work"
    result = run_faced("bench", "search", "--sizes", "2000", "--queries", "20", "--thumbnail-bytes", "600",
                       "--workdir", str(work), "--json", str(out))
    assert result.returncode == 0, result.stderr
    assert "insert/s" in result.stdout and "numpy p95" in result.stdout
    rows = json.loads(out.read_text())
    assert len(rows) == 1
    row = rows[0]
    assert list(row) == list(ROW_KEYS)
    assert row["n"] == 2000
    for key in ("insert_per_s", "startup_s", "p50_ms", "p95_ms", "numpy_p95_ms", "db_mb", "peak_rss_mb"):
        assert isinstance(row[key], (int, float)) and row[key] > 0, key
    assert row["same_scores"] is True and len(row["p95_runs_ms"]) == 3
    assert 0.95 <= row["recall_at_10"] <= 1.0
    assert row["recall_at_10_strangers"] is None or 0.0 <= row["recall_at_10_strangers"] <= 1.0
    assert 10 < row["peak_rss_mb"] < 1000
    assert not list(work.iterdir())  # the temporary database is gone


def test_synthetic_faces_look_like_sface():
    vectors, enrolled, strangers = make_data(2000, 10)
    assert vectors.shape == (2000, 128) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-5)
    same = vectors[:10] @ vectors[:10].T
    same = same[~np.eye(10, dtype=bool)]
    assert 0.55 < same.mean() < 0.8 and same.min() > 0.3
    different = (vectors[::10][:100] @ vectors[5::10][100:200].T).ravel()
    assert abs(different.mean()) < 0.02 and 0.07 < different.std() < 0.11
    assert enrolled.shape == strangers.shape == (10, 128)
    again = make_data(2000, 10)
    assert np.array_equal(again[0], vectors) and np.array_equal(again[2], strangers)  # fixed seeds
