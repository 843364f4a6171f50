"""`faced bench search`: face search at 10k, 100k and 1M faces next to numpy brute force, in one run.

For each size n the driver makes synthetic faces, writes them to a fresh SQLite file through the real Store
schema (several thousand faces per transaction), then measures in separate processes:

- the search worker (`python -m device.bench_search search ...`): it only opens the file and the collection
  and searches, so its peak RSS (VmHWM: see device.bench.peak_rss_mb) is that of a process holding the collection open
  for search: start-up (open + index load), p50/p95 latency of `CollectionIndex.search(query, 10)` over
  all queries (both kinds), after a few untimed warm-up queries;
- the numpy worker (`python -m device.bench_search numpy ...`, OPENBLAS/OMP/MKL_NUM_THREADS=1, and
  threadpoolctl's limit when it is installed): brute force `X @ q` + top-10 over the same float32 matrix and
  the same queries; its results are the exact top-10 used for recall.

Synthetic faces: unit vectors in 128-d clustered like identities. Identity centres are random unit vectors;
each identity has 10 samples normalize(centre + s * g / sqrt(128)), g ~ N(0, I), s ~ U(0.4, 1.0), so that
same-identity cosines spread over ~0.5-0.9 like SFace's and different-identity cosines are ~N(0, 0.09).
Queries: `--queries` held-out samples of enrolled identities, and as many strangers (people not enrolled):
half random identities, half look-alikes whose centre is normalize(b * enrolled centre + sqrt(1 - b^2) * r),
b ~ U(0.3, 0.8), so that some of their neighbours score above the match threshold (random strangers alone
have none, and their recall would say nothing).

recall_at_10 counts, over the queries of enrolled identities, how many of the exact top-10 neighbours with
a cosine above the match threshold (calibrated score 0.6, the 1:1 operating point: cosine 0.386 with
SFace's calibration) the search returned in its top-10; recall_at_10_strangers the same for strangers
(null when none of their neighbours is above the threshold). Seeds are fixed: a run is repeatable.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from .measure import peak_rss_mb, run_worker

DIM = 128
SAMPLES_PER_IDENTITY = 10
TOP = 10
COLLECTION = "bench"
EMBEDDER = {"model": "synthetic", "precision": "fp32", "sha256": "0" * 64}
DEFAULT_SIZES = "1000,10000,100000,1000000"
FALLBACK_THRESHOLD_COSINE = 0.386  # SFace's cosine at calibrated score 0.6
THRESHOLD_SCORE = 0.6
SEED = 20261126
WARMUP = 5
ROW_KEYS = ("n", "insert_per_s", "startup_s", "p50_ms", "p95_ms", "numpy_p95_ms", "speedup", "p95_runs_ms",
            "numpy_p95_runs_ms", "same_scores", "recall_at_10", "recall_at_10_strangers", "db_mb", "peak_rss_mb")


def add_arguments(parser) -> None:
    # SUPPRESS: under `faced bench`, an unset --json here must not hide `faced bench --json OUT search`.
    parser.add_argument("--json", metavar="OUT", default=argparse.SUPPRESS, help="write the rows as JSON")
    parser.add_argument("--sizes", default=DEFAULT_SIZES, help=f"faces per run (default {DEFAULT_SIZES})")
    parser.add_argument("--queries", type=int, default=200,
                        help="queries of enrolled identities, and as many of strangers (default 200)")
    parser.add_argument("--thumbnail-bytes", type=int, default=6000,
                        help="bytes of thumbnail stored per face (a 112x112 JPEG at quality 95 is 5-7 kB; "
                             "default 6000)")
    parser.add_argument("--batch", type=int, default=5000, help="faces per insert transaction (default 5000)")
    parser.add_argument("--repeats", type=int, default=3,
                        help="search and numpy runs per size, alternated; p95s are their medians (default 3)")
    parser.add_argument("--workdir", metavar="DIR", help="where to build the databases (default: system temp)")
    parser.add_argument("--keep", action="store_true", help="keep the databases (printed on standard error)")


# ------------------------------------------------------------------------------------------ driver
def run(args, config=None) -> int:
    from .errors import FacedError

    try:
        sizes = [int(s) for s in str(args.sizes).split(",") if s.strip()]
    except ValueError:
        raise FacedError(f"--sizes takes numbers separated by commas, not {args.sizes!r}", "INVALID_ARGUMENT")
    if not sizes or min(sizes) < SAMPLES_PER_IDENTITY or args.queries < 1 or args.batch < 1:
        raise FacedError("--sizes must be >= 10 faces and --queries, --batch >= 1", "INVALID_ARGUMENT")
    threshold = threshold_cosine(config)
    out = getattr(args, "json", None)
    rows = []
    for n in sizes:
        rows.append(bench_size(n, args, threshold))
        if out:  # after every size: a long run leaves what it measured so far
            Path(out).parent.mkdir(parents=True, exist_ok=True)
            Path(out).write_text(json.dumps(rows, indent=2) + "\n")
    print_table(rows, threshold)
    return 0


def threshold_cosine(config=None) -> float:
    """The cosine of calibrated score 0.6 from the manifest's SFace calibration (0.386 without one)."""
    try:
        from .vision.calibration import Calibration
        from .vision.manifest import Manifest

        models_dir = getattr(getattr(config, "vision", None), "models_dir", None) or None
        calibration = Calibration.from_manifest(Manifest(models_dir).calibration("sface"))
        return round(calibration.cosine_for(THRESHOLD_SCORE), 6)
    except Exception:  # no manifest or no calibration: the documented value
        return FALLBACK_THRESHOLD_COSINE


def bench_size(n: int, args, threshold: float) -> dict:
    root = Path(args.workdir) if args.workdir else None
    if root:
        root.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f"faced-bench-search-{n}-", dir=root))
    try:
        _say(f"bench search: {n} faces: making vectors")
        vectors, enrolled, strangers = make_data(n, args.queries, SEED)
        queries = np.concatenate([enrolled, strangers])
        db = work / "faced.db"
        _say(f"bench search: {n} faces: inserting into {db}")
        face_ids, insert_s = build_database(db, vectors, args.thumbnail_bytes, args.batch)
        db_mb = sum(p.stat().st_size for p in work.glob("faced.db*")) / 1e6
        np.save(work / "queries.npy", queries)
        np.save(work / "vectors.npy", vectors)
        del vectors
        searches, brutes = [], []
        for run in range(max(1, args.repeats)):  # alternated, so that a busy moment hits both alike
            _say(f"bench search: {n} faces: searching ({len(queries)} queries), run {run + 1}")
            searches.append(_worker("search", {"db": str(db), "collection": COLLECTION, "floor": threshold,
                                               "queries": str(work / "queries.npy"), "count": TOP}))
            _say(f"bench search: {n} faces: numpy brute force, run {run + 1}")
            brutes.append(_worker("numpy", {"vectors": str(work / "vectors.npy"),
                                            "queries": str(work / "queries.npy"), "count": TOP}))
    finally:
        if args.keep:
            _say(f"bench search: kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    search, brute = searches[0], brutes[0]
    split = len(enrolled)
    exact_ids = [face_ids[np.asarray(rows, dtype=np.int64)] for rows in brute["top"]]
    exact_cos = [np.asarray(c, dtype=np.float64) for c in brute["cosines"]]
    found = [[face_id for face_id, _ in result] for result in search["results"]]
    times = np.asarray(search["times_ms"])
    p95s = [float(np.percentile(s["times_ms"], 95)) for s in searches]
    numpy_p95s = [float(np.percentile(b["times_ms"], 95)) for b in brutes]
    # Where both hold a face, its cosine must be the same: a search never invents or bends a score.
    same = all(abs(cosine - exact.get(face_id, cosine)) < 1e-5
               for result, ids, cosines in zip(search["results"], exact_ids, exact_cos)
               for exact in [dict(zip(ids.tolist(), cosines.tolist()))] for face_id, cosine in result)
    recall, relevant = recall_at(exact_ids[:split], exact_cos[:split], found[:split], threshold)
    recall_strangers, relevant_strangers = recall_at(exact_ids[split:], exact_cos[split:], found[split:],
                                                     threshold)
    _say(f"bench search: {n} faces: neighbours above cosine {threshold}: {relevant} of enrolled-identity "
         f"queries, {relevant_strangers} of strangers; worker start-up {search['startup_s']:.2f} s "
         f"(+{search['import_s']:.2f} s imports); numpy threads limited by {brute['limited_by']}")
    row = {
        "n": n,
        "insert_per_s": round(n / insert_s, 1),
        "startup_s": round(search["startup_s"], 3),
        "p50_ms": round(float(np.percentile(times, 50)), 3),
        "p95_ms": round(float(np.median(p95s)), 3),
        "numpy_p95_ms": round(float(np.median(numpy_p95s)), 3),
        "speedup": round(float(np.median(numpy_p95s)) / max(float(np.median(p95s)), 1e-9), 2),
        "p95_runs_ms": [round(v, 3) for v in p95s],
        "numpy_p95_runs_ms": [round(v, 3) for v in numpy_p95s],
        "same_scores": same,
        "recall_at_10": None if recall is None else round(recall, 4),
        "recall_at_10_strangers": None if recall_strangers is None else round(recall_strangers, 4),
        "db_mb": round(db_mb, 1),
        "peak_rss_mb": round(search["peak_rss_mb"], 1),
    }
    return {key: row[key] for key in ROW_KEYS}


def recall_at(exact_ids, exact_cos, found, threshold: float) -> tuple[float | None, int]:
    """Share of the exact top-k neighbours above `threshold` that the search returned; (None, 0) if none."""
    relevant = hits = 0
    for ids, cosines, got in zip(exact_ids, exact_cos, found):
        wanted = set(ids[cosines > threshold].tolist())
        relevant += len(wanted)
        hits += len(wanted & set(got))
    return (hits / relevant if relevant else None), relevant


# ---------------------------------------------------------------------------------------- synthetic data
def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def _samples(rng, centres: np.ndarray) -> np.ndarray:
    spread = rng.uniform(0.4, 1.0, (len(centres), 1)).astype(np.float32)
    return _unit(centres + spread * rng.standard_normal(centres.shape, dtype=np.float32) / np.sqrt(DIM))


def make_data(n: int, queries: int, seed: int = SEED) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(vectors n x 128, enrolled-identity queries, stranger queries), float32 unit vectors; fixed seeds."""
    identities = -(-n // SAMPLES_PER_IDENTITY)
    rng = np.random.default_rng([seed, n])
    centres = _unit(rng.standard_normal((identities, DIM), dtype=np.float32))
    vectors = np.empty((n, DIM), dtype=np.float32)
    step = 10_000  # identities per block: bounded temporaries at a million faces
    for block, first in enumerate(range(0, identities, step)):
        block_rng = np.random.default_rng([seed, n, 1, block])
        chunk = np.repeat(centres[first:first + step], SAMPLES_PER_IDENTITY, axis=0)
        start = first * SAMPLES_PER_IDENTITY
        end = min(n, start + len(chunk))
        vectors[start:end] = _samples(block_rng, chunk[:end - start])
    enrolled_of = rng.integers(0, identities, queries)
    enrolled = _samples(rng, centres[enrolled_of])
    random_centres = _unit(rng.standard_normal((queries, DIM), dtype=np.float32))
    likeness = rng.uniform(0.3, 0.8, (queries, 1)).astype(np.float32)
    lookalike = _unit(likeness * centres[rng.integers(0, identities, queries)]
                      + np.sqrt(1 - likeness ** 2) * random_centres)
    stranger_centres = np.where(np.arange(queries)[:, None] % 2 == 0, random_centres, lookalike)
    strangers = _samples(rng, stranger_centres)
    return vectors, enrolled, strangers


def build_database(path: Path, vectors: np.ndarray, thumbnail_bytes: int, batch: int) -> tuple[np.ndarray, float]:
    """Insert the faces (10 per person) through the Store's schema and insert path, `batch` faces per
    transaction; returns (face id of each row, seconds spent inserting)."""
    from .store.db import NewFace, Store

    thumbnail = np.random.default_rng(SEED).bytes(max(0, thumbnail_bytes))  # incompressible, like a JPEG
    face_ids = np.empty(len(vectors), dtype=np.int64)
    persons = -(-len(vectors) // SAMPLES_PER_IDENTITY)
    per_transaction = max(1, batch // SAMPLES_PER_IDENTITY)
    with Store(path, create=True) as store:
        collection = store.create_collection(COLLECTION, EMBEDDER)
        start = time.perf_counter()
        for first in range(0, persons, per_transaction):
            with store.transaction():
                for person in range(first, min(persons, first + per_transaction)):
                    rows = slice(person * SAMPLES_PER_IDENTITY, (person + 1) * SAMPLES_PER_IDENTITY)
                    faces = [NewFace(vector, thumbnail, None, "synthetic") for vector in vectors[rows]]
                    face_ids[rows] = store.insert_person(collection, f"identity {person}", faces)[1]
        elapsed = time.perf_counter() - start
        store.checkpoint()
    return face_ids, elapsed


# ------------------------------------------------------------------------------------------- table
def print_table(rows: list[dict], threshold: float) -> None:
    def cell(value, spec):
        return format(value, spec) if value is not None else "n/a"

    print(f"{'faces':>9} {'insert/s':>9} {'start s':>8} {'p50 ms':>7} {'p95 ms':>7} {'numpy p95':>9} "
          f"{'speedup':>7} {'recall@10':>9} {'strangers':>9} {'DB MB':>8} {'RSS MB':>7}")
    for row in rows:
        speedup = row["speedup"]
        print(f"{row['n']:>9} {row['insert_per_s']:>9.0f} {row['startup_s']:>8.2f} {row['p50_ms']:>7.2f} "
              f"{row['p95_ms']:>7.2f} {row['numpy_p95_ms']:>9.2f} {cell(speedup, '>6.1f')}x "
              f"{cell(row['recall_at_10'], '>9.4f')} {cell(row['recall_at_10_strangers'], '>9.4f')} "
              f"{row['db_mb']:>8.1f} {row['peak_rss_mb']:>7.1f}")
    print(f"recall: exact top-{TOP} neighbours above cosine {threshold} (calibrated score {THRESHOLD_SCORE}); "
          "speedup: numpy p95 / search p95 (medians over the runs); RSS: the search process alone; scores equal "
          f"numpy's: {'yes' if all(row['same_scores'] for row in rows) else 'NO'}")


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------------------- workers
def _worker(kind: str, work: dict) -> dict:
    env = dict(os.environ)
    # One BLAS thread for both, set before numpy loads: the same arithmetic, not a race for the cores.
    env.update({"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"})
    return run_worker("device.bench_search", [kind, json.dumps(work)], f"bench search {kind}", env)


def _search_worker(work: dict) -> dict:
    began = time.perf_counter()
    from .store.db import Store
    from .store.index import CollectionIndex

    opened = time.perf_counter()
    store = Store(work["db"])
    index = CollectionIndex(store, store.collection(work["collection"]))
    ready = time.perf_counter()
    queries = np.load(work["queries"])
    count = work["count"]
    warm = _unit(np.random.default_rng(SEED + 1).standard_normal((WARMUP, DIM), dtype=np.float32))
    for query in warm:  # not the timed queries: their pages stay cold
        index.search(query, count, floor=work["floor"])
    times, results = [], []
    for query in queries:
        start = time.perf_counter()
        # Arrays, as numpy's top-k below; only faces at or above the 1:1 threshold, as faced's search asks
        # (recall is counted on those).
        ids, cosines = index.search(query, count, floor=work["floor"])
        times.append((time.perf_counter() - start) * 1000)
        results.append([[face_id, round(cosine, 6)] for face_id, cosine in zip(ids.tolist(), cosines.tolist())])
    store.close()
    return {"import_s": opened - began, "startup_s": ready - opened, "times_ms": times, "results": results,
            "faces": len(index), "peak_rss_mb": peak_rss_mb()}


def _numpy_worker(work: dict) -> dict:
    limited_by = "environment"
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(1)
        limited_by = "threadpoolctl"
    except ImportError:
        pass
    vectors = np.load(work["vectors"])
    queries = np.load(work["queries"])
    count = min(work["count"], len(vectors))

    def top(query):
        cosines = vectors @ query
        best = np.argpartition(-cosines, count - 1)[:count] if len(cosines) > count else np.arange(len(cosines))
        best = best[np.argsort(-cosines[best])]
        return best, cosines[best]

    for query in queries[:WARMUP]:
        top(query)
    times, tops, cosines = [], [], []
    for query in queries:
        start = time.perf_counter()
        best, scores = top(query)
        times.append((time.perf_counter() - start) * 1000)
        tops.append(best.tolist())
        cosines.append([float(c) for c in scores])
    return {"times_ms": times, "top": tops, "cosines": cosines, "limited_by": limited_by,
            "peak_rss_mb": peak_rss_mb()}


def _worker_main(argv: list[str]) -> int:
    kind, payload = argv[0], json.loads(argv[1])
    result = {"search": _search_worker, "numpy": _numpy_worker}[kind](payload)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(_worker_main(sys.argv[1:]))
