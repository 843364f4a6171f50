"""Face collections on sqlite-vec: enrolment, search, erasure, crash safety, concurrency, portability."""
from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from device.imaging import read_image_file
from device.store.db import EmbedderMismatch, Store
from device.store.enrol import DUPLICATE_OF_OTHER_PERSON, FACE_DOES_NOT_MATCH_PERSON, Enroller
from device.store.index import CollectionIndex
from device.store.search import Searcher
from tests.conftest import REPO, run_faced


@pytest.fixture
def store(tmp_path):
    with Store(tmp_path / "faced.db") as opened:
        yield opened


def _deepface(faces_dir):
    rows = list(csv.DictReader(open(faces_dir / "deepface/labels.csv")))
    by_person: dict[str, list[Path]] = {}
    for row in rows:
        if row["prominent_faces"] == "1" and row["path"].startswith("images/"):
            by_person.setdefault(row["identity"], []).append(faces_dir / "deepface" / row["path"])
    return by_person


def test_enrol_deepface_and_search_held_back_photos(store, pipeline, faces_dir):
    store.create_collection("celebs", pipeline.embedder.identity)
    enroller, searcher = Enroller(store, pipeline), Searcher(store, pipeline)
    held_back = []
    for identity, paths in sorted(_deepface(faces_dir).items()):
        person_id, outcomes = enroller.add_person("celebs", identity, [enroller.read(str(p)) for p in paths[:2]])
        assert person_id, [o.to_dict() for o in outcomes]
        held_back += [(identity, p) for p in paths[2:]]
    correct = 0
    for identity, path in held_back:
        result = searcher.search_image("celebs", read_image_file(str(path)), 0.7)
        names = [r["person_name"] for r in result["person_search_results"]]
        correct += bool(names) and names[0] == identity
    assert correct / len(held_back) >= 0.9, (correct, len(held_back))
    # People who are not enrolled come back unknown.
    for name in ("obama.jpg", "biden.jpg", "lin-manuel-miranda.png"):
        result = searcher.search_image("celebs", read_image_file(str(faces_dir / "face_recognition/examples" / name)),
                                       0.7)
        assert result["person_search_results"] == [] and len(result["unrecognized_faces"]) == 1


def test_knn_examples_and_group_photo(store, pipeline, faces_dir):
    folder = faces_dir / "face_recognition/examples/knn_examples"
    store.create_collection("knn", pipeline.embedder.identity)
    summary = Enroller(store, pipeline).enrol_folder(folder / "train", "knn")
    assert summary["accepted"] == 9 and not summary["rejected"]
    searcher = Searcher(store, pipeline)
    expected = {"alex_lacamoire1.jpg": {"alex_lacamoire"}, "johnsnow_test1.jpg": {"kit_harington"},
                "kit_with_rose.jpg": {"kit_harington", "rose_leslie"}, "obama1.jpg": {"obama"},
                "obama_and_biden.jpg": {"obama", "biden"}}
    for name, persons in expected.items():
        image = read_image_file(str(folder / "test" / name))
        result = searcher.search_image("knn", image, 0.7)
        assert {r["person_name"] for r in result["person_search_results"]} == persons
        # N:N: every detected face gets an answer, matched or unrecognised, with its box.
        assert len(result["person_search_results"]) + len(result["unrecognized_faces"]) == len(pipeline.detect(image))
        assert len(result["unrecognized_face_thumbnails_base_64"]) == len(result["unrecognized_faces"])
        assert all(len(r["box"]) == 4 and r["face_base_64"] for r in result["person_search_results"])


def test_photo_of_someone_else_is_flagged(store, pipeline, faces_dir):
    folder = faces_dir / "face_recognition/examples"
    store.create_collection("c", pipeline.embedder.identity)
    enroller = Enroller(store, pipeline)
    obama, _ = enroller.add_person("c", "Obama", [enroller.read(str(folder / "obama.jpg"))])
    outcomes = enroller.add_faces(obama, [enroller.read(str(folder / "biden.jpg")),
                                          enroller.read(str(folder / "obama2.jpg"))])
    assert outcomes[0].code == FACE_DOES_NOT_MATCH_PERSON and not outcomes[0].accepted
    assert outcomes[1].accepted
    # The same face under a second person is refused, naming the first one.
    _, outcomes = enroller.add_person("c", "Barack", [enroller.read(str(folder / "obama2.jpg"))])
    assert outcomes[0].code == DUPLICATE_OF_OTHER_PERSON and outcomes[0].details["duplicate_of"]["person_id"] == obama
    # A new person whose two photos disagree: neither is taken on trust.
    person, outcomes = enroller.add_person("c", "Mixed", [enroller.read(str(folder / "lin-manuel-miranda.png")),
                                                          enroller.read(str(folder / "alex-lacamoire.png"))])
    assert person is None and all(o.code == FACE_DOES_NOT_MATCH_PERSON for o in outcomes)


def test_erasure_leaves_no_bytes(tmp_path, pipeline, faces_dir):
    path = tmp_path / "erase.db"
    with Store(path) as store:
        store.create_collection("c", pipeline.embedder.identity)
        enroller = Enroller(store, pipeline)
        keep, _ = enroller.add_person("c", "Biden", [enroller.read(str(faces_dir / "face_recognition/examples/biden.jpg"))])
        gone, _ = enroller.add_person("c", "Obama", [enroller.read(str(faces_dir / "face_recognition/examples/obama.jpg"))])
        face_id = store.person(gone).face_ids[0]
        vector = store.vectors([face_id])[face_id].tobytes()
        thumbnail = store.thumbnail(face_id)
        erased = store.delete_person(gone)
        assert erased["faces"] == erased["vectors"] == erased["thumbnails"] == 1
        store.checkpoint()
        for suffix in ("", "-wal"):
            data = Path(str(path) + suffix).read_bytes() if Path(str(path) + suffix).exists() else b""
            assert vector not in data and vector[:64] not in data, suffix
            # The middle of the JPEG is its own scan data (the start is headers every JPEG shares).
            middle = len(thumbnail) // 2
            assert thumbnail[middle:middle + 64] not in data, suffix
        assert store.person(keep).face_ids
        assert store.integrity() == "ok"


def _enrol_folder(tmp_path, faces_dir, persons: int) -> Path:
    """A bulk-enrolment folder of symlinks to shared photos: <person>/<photo> (the data stays in place)."""
    photos = sorted((faces_dir / "liveness/real").glob("*.jpg"))
    folder = tmp_path / "people"
    for number in range(persons):
        person = folder / f"person_{number:03d}"
        person.mkdir(parents=True)
        source = photos[number % len(photos)]
        (person / source.name).symlink_to(source)
    return folder


def test_sigkill_during_bulk_enrolment_leaves_a_consistent_file(tmp_path, faces_dir):
    db = tmp_path / "crash.db"
    folder = _enrol_folder(tmp_path, faces_dir, 25)
    assert run_faced("--db", str(db), "collections", "create", "bulk").returncode == 0
    env = {k: v for k, v in os.environ.items() if not k.startswith("FACED_")}
    process = subprocess.Popen([sys.executable, "-m", "device.cli", "--db", str(db), "enroll", str(folder),
                                "--collection", "bulk", "--force"], cwd=str(REPO), env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        with Store(db) as watcher:
            deadline = time.time() + 120
            while time.time() < deadline:
                count = watcher.connection.execute("SELECT count(*) FROM persons").fetchone()[0]
                if count >= 2:
                    break
                time.sleep(0.05)
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait()
    with Store(db) as store:
        assert store.integrity() == "ok"
        persons = store.connection.execute("SELECT count(*) FROM persons").fetchone()[0]
        assert 2 <= persons < 25
        faces = store.connection.execute("SELECT count(*) FROM faces").fetchone()[0]
        vectors = store.connection.execute("SELECT count(*) FROM face_vectors").fetchone()[0]
        assert faces == vectors >= persons
        # Every person whole: the one photo of each committed person is there with its vector.
        empty = store.connection.execute(
            "SELECT count(*) FROM persons p WHERE NOT EXISTS (SELECT 1 FROM faces f WHERE f.person_id = p.id)"
        ).fetchone()[0]
        assert empty == 0
        # What search sees equals what the tables hold.
        collection = store.collection("bulk")
        index = CollectionIndex(store, collection)
        table_ids = [r[0] for r in store.connection.execute("SELECT id FROM faces ORDER BY id")]
        assert sorted(index.face_ids.tolist()) == table_ids


SEARCH_LOOP = r"""
import sys, json, time
sys.path.insert(0, sys.argv[3])
from device.store.db import Store
from device.store.search import Searcher
from device.vision.pipeline import Pipeline
from device.imaging import read_image_file
from device.config import load_config
store = Store(sys.argv[1])
searcher = Searcher(store, Pipeline(load_config(env={})))
image = read_image_file(sys.argv[2])
print("ready", flush=True)
found, errors, deadline = [], [], time.time() + 120
while time.time() < deadline:
    try:
        result = searcher.search_image("shared", image, 0.7)
        found = [r["person_name"] for r in result["person_search_results"]]
    except Exception as exc:
        errors.append(repr(exc))
    if found:
        break
print(json.dumps({"found": found, "errors": errors}), flush=True)
"""


def test_daemon_sees_cli_enrolment_without_lock_errors(tmp_path, faces_dir):
    db = tmp_path / "shared.db"
    folder = faces_dir / "face_recognition/examples"
    assert run_faced("--db", str(db), "collections", "create", "shared").returncode == 0
    assert run_faced("--db", str(db), "persons", "add", "--collection", "shared", "--name", "Biden",
                     str(folder / "biden.jpg")).returncode == 0
    env = {k: v for k, v in os.environ.items() if not k.startswith("FACED_")}
    searcher = subprocess.Popen([sys.executable, "-c", SEARCH_LOOP, str(db), str(folder / "obama2.jpg"), str(REPO)],
                                cwd=str(REPO), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert searcher.stdout.readline().strip() == "ready"
        time.sleep(0.5)  # the searcher is now searching in a loop and holds the file open
        added = run_faced("--db", str(db), "persons", "add", "--collection", "shared", "--name", "Obama",
                          str(folder / "obama.jpg"))
        assert added.returncode == 0, added.stderr
        assert "locked" not in added.stderr
        report = json.loads(searcher.stdout.readline())
    finally:
        searcher.kill()
        searcher.wait()
    assert report["errors"] == [] and report["found"] == ["Obama"]


def test_export_import_searches_the_same(tmp_path, pipeline, faces_dir):
    folder = faces_dir / "face_recognition/examples/knn_examples"
    with Store(tmp_path / "a.db") as first:
        first.create_collection("knn", pipeline.embedder.identity)
        Enroller(first, pipeline).enrol_folder(folder / "train", "knn")
        from device.store.portable import export_collection, import_collection

        export_collection(first, "knn", tmp_path / "knn.faced")
        image = read_image_file(str(folder / "test/obama_and_biden.jpg"))
        before = Searcher(first, pipeline).search_image("knn", image, 0.7)
    with Store(tmp_path / "b.db") as second:
        result = import_collection(second, tmp_path / "knn.faced", pipeline.embedder.identity)
        assert result["persons"] == 5 and result["faces"] == 9
        after = Searcher(second, pipeline).search_image("knn", image, 0.7)
    assert before == after
    other = dict(pipeline.embedder.identity, sha256="0" * 64, precision="fp32")
    with Store(tmp_path / "c.db") as third, pytest.raises(Exception, match="--reembed"):
        import_collection(third, tmp_path / "knn.faced", other)


def test_other_embedder_is_refused_until_reembedded(store, pipeline, faces_dir):
    from device.store.portable import decode_thumbnail, reembed_collection

    older = dict(pipeline.embedder.identity, sha256="f" * 64, precision="fp32")
    store.create_collection("old", older)
    searcher = Searcher(store, pipeline)
    image = read_image_file(str(faces_dir / "face_recognition/examples/obama.jpg"))
    with pytest.raises(EmbedderMismatch, match="reembed"):
        searcher.search_image("old", image, 0.7)
    result = reembed_collection(store, "old", pipeline.embedder.identity,
                                lambda data: pipeline.embedder.embed(decode_thumbnail(data)))
    assert result["faces"] == 0
    assert searcher.search_image("old", image, 0.7)["unrecognized_faces"]


def test_cli_search_json_shape(tmp_path, faces_dir):
    db = str(tmp_path / "cli.db")
    folder = faces_dir / "face_recognition/examples/knn_examples"
    assert run_faced("--db", db, "collections", "create", "knn").returncode == 0
    enrolled = run_faced("--db", db, "enroll", str(folder / "train"), "--collection", "knn", "--json")
    assert enrolled.returncode == 0 and json.loads(enrolled.stdout)["accepted"] == 9
    result = run_faced("--db", db, "search", str(folder / "test/obama_and_biden.jpg"), "--collection", "knn", "--json")
    body = json.loads(result.stdout)
    assert set(body) == {"person_search_results", "unrecognized_face_thumbnails_base_64", "unrecognized_faces"}
    assert set(body["person_search_results"][0]) == {"person_id", "person_name", "metadata", "face_base_64",
                                                     "similarity_score", "box"}
    scores = [r["similarity_score"] for r in body["person_search_results"]]
    assert scores == sorted(scores, reverse=True) and min(scores) >= 0.7
    backup = run_faced("--db", db, "backup", str(tmp_path / "copy.db"))
    assert backup.returncode == 0
    with Store(tmp_path / "copy.db") as copy:
        assert copy.collection("knn").faces == 9 and copy.integrity() == "ok"
    missing = run_faced("--db", db, "search", str(folder / "test/obama1.jpg"), "--collection", "nope")
    assert missing.returncode == 1 and "COLLECTION_NOT_FOUND" in missing.stderr
