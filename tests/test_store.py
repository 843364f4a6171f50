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

import pytest

from device.config import load_config
from device.engine import Engine
from device.enrolment import DUPLICATE_OF_OTHER_PERSON, FACE_DOES_NOT_MATCH_PERSON
from device.errors import EmbedderMismatch
from device.imaging import read_image_file
from device.store.db import Store
from device.store.index import CollectionIndex
from tests.conftest import REPO, run_faced


def make_engine(path, pipeline) -> Engine:
    """An engine on `path` that shares the session's loaded pipeline."""
    return Engine(load_config(env={}, overrides={"store.db": str(path)}), create=True, pipeline=pipeline)


@pytest.fixture
def engine(tmp_path, pipeline):
    with make_engine(tmp_path / "faced.db", pipeline) as opened:
        yield opened


def names(recognitions) -> list[str]:
    return [m.person_name for r in recognitions for m in r.matches]


def _deepface(faces_dir):
    rows = list(csv.DictReader(open(faces_dir / "deepface/labels.csv")))
    by_person: dict[str, list[Path]] = {}
    for row in rows:
        if row["prominent_faces"] == "1" and row["path"].startswith("images/"):
            by_person.setdefault(row["identity"], []).append(faces_dir / "deepface" / row["path"])
    return by_person


def test_enrol_deepface_and_search_held_back_photos(engine, faces_dir):
    engine.create_collection("celebs")
    held_back = []
    for identity, paths in sorted(_deepface(faces_dir).items()):
        enrolment = engine.add_person("celebs", identity, [engine.photo_file(str(p)) for p in paths[:2]])
        assert enrolment.person_id, [o.to_dict() for o in enrolment.outcomes]
        held_back += [(identity, p) for p in paths[2:]]
    correct = 0
    for identity, path in held_back:
        found = names(engine.search("celebs", read_image_file(str(path)), 0.7))
        correct += bool(found) and found[0] == identity
    assert correct / len(held_back) >= 0.9, (correct, len(held_back))
    # People who are not enrolled come back unknown.
    for name in ("obama.jpg", "biden.jpg", "lin-manuel-miranda.png"):
        result = engine.search("celebs", read_image_file(str(faces_dir / "face_recognition/examples" / name)), 0.7)
        assert len(result) == 1 and not result[0].known


def test_knn_examples_and_group_photo(engine, pipeline, faces_dir):
    folder = faces_dir / "face_recognition/examples/knn_examples"
    engine.create_collection("knn")
    summary = engine.enrol_folder(folder / "train", "knn")
    assert summary["accepted"] == 9 and not summary["rejected"]
    expected = {"alex_lacamoire1.jpg": {"alex_lacamoire"}, "johnsnow_test1.jpg": {"kit_harington"},
                "kit_with_rose.jpg": {"kit_harington", "rose_leslie"}, "obama1.jpg": {"obama"},
                "obama_and_biden.jpg": {"obama", "biden"}}
    for name, persons in expected.items():
        image = read_image_file(str(folder / "test" / name))
        result = engine.search("knn", image, 0.7)
        assert set(names(result)) == persons
        # N:N: every detected face gets an answer, matched or unrecognised, with its face and box.
        assert len(result) == len(pipeline.detect(image))
        assert all(len(r.face.box) == 4 and r.face.aligned is not None for r in result)


def test_photo_of_someone_else_is_flagged(engine, faces_dir):
    folder = faces_dir / "face_recognition/examples"
    engine.create_collection("c")
    obama = engine.add_person("c", "Obama", [engine.photo_file(str(folder / "obama.jpg"))]).person_id
    outcomes = engine.add_faces(obama, [engine.photo_file(str(folder / "biden.jpg")),
                                        engine.photo_file(str(folder / "obama2.jpg"))])
    assert outcomes[0].code == FACE_DOES_NOT_MATCH_PERSON and not outcomes[0].accepted
    assert outcomes[1].accepted
    # The same face under a second person is refused, naming the first one.
    outcomes = engine.add_person("c", "Barack", [engine.photo_file(str(folder / "obama2.jpg"))]).outcomes
    assert outcomes[0].code == DUPLICATE_OF_OTHER_PERSON and outcomes[0].details["duplicate_of"]["person_id"] == obama
    # A new person whose two photos disagree: neither is taken on trust.
    enrolment = engine.add_person("c", "Mixed", [engine.photo_file(str(folder / "lin-manuel-miranda.png")),
                                                 engine.photo_file(str(folder / "alex-lacamoire.png"))])
    assert enrolment.person_id is None and all(o.code == FACE_DOES_NOT_MATCH_PERSON for o in enrolment.outcomes)


def test_erasure_leaves_no_bytes(tmp_path, pipeline, faces_dir):
    path = tmp_path / "erase.db"
    with make_engine(path, pipeline) as engine:
        engine.create_collection("c")
        store = engine.store
        examples = faces_dir / "face_recognition/examples"
        keep = engine.add_person("c", "Biden", [engine.photo_file(str(examples / "biden.jpg"))]).person_id
        gone = engine.add_person("c", "Obama", [engine.photo_file(str(examples / "obama.jpg"))]).person_id
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
from device.engine import Engine
from device.imaging import read_image_file
from device.config import load_config
engine = Engine(load_config(env={}, overrides={"store.db": sys.argv[1]}))
image = read_image_file(sys.argv[2])
print("ready", flush=True)
found, errors, deadline = [], [], time.time() + 120
while time.time() < deadline:
    try:
        found = [m.person_name for r in engine.search("shared", image, 0.7) for m in r.matches]
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


def _answers(recognitions) -> list:
    return [(list(r.face.box), [(m.person_id, m.person_name, round(m.similarity_score, 6)) for m in r.matches])
            for r in recognitions]


def test_export_import_searches_the_same(tmp_path, pipeline, faces_dir):
    import hashlib

    from device.store.portable import import_collection

    folder = faces_dir / "face_recognition/examples/knn_examples"
    export = tmp_path / "knn.faced"
    image = read_image_file(str(folder / "test/obama_and_biden.jpg"))
    with make_engine(tmp_path / "a.db", pipeline) as first:
        first.create_collection("knn")
        first.enrol_folder(folder / "train", "knn")
        first.export("knn", export)
        before = _answers(first.search("knn", image, 0.7))
    digest = hashlib.sha256(export.read_bytes()).hexdigest()
    with make_engine(tmp_path / "b.db", pipeline) as second:
        result = second.import_(export)
        assert result["persons"] == 5 and result["faces"] == 9
        assert _answers(second.search("knn", image, 0.7)) == before
        # A second import of the same file clones it under a new name with new person ids.
        clone = second.import_(export, "knn-copy")
        assert clone["persons"] == 5
        ids = {p.id for p in second.persons("knn")} & {p.id for p in second.persons("knn-copy")}
        assert not ids
    assert hashlib.sha256(export.read_bytes()).hexdigest() == digest  # the export was never changed
    other = dict(pipeline.embedder.identity, sha256="0" * 64, precision="fp32")
    with Store(tmp_path / "c.db", create=True) as third, pytest.raises(Exception, match="--reembed"):
        import_collection(third, export, other)


def test_other_embedder_is_refused_until_reembedded(engine, pipeline, faces_dir):
    older = dict(pipeline.embedder.identity, sha256="f" * 64, precision="fp32")
    engine.store.create_collection("old", older)
    image = read_image_file(str(faces_dir / "face_recognition/examples/obama.jpg"))
    with pytest.raises(EmbedderMismatch, match="reembed"):
        engine.search("old", image, 0.7)
    result = engine.reembed("old")
    assert result["faces"] == 0
    assert not engine.search("old", image, 0.7)[0].known


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


def test_flip_is_part_of_the_embedder_identity(pipeline):
    """An identity without flip is exactly the plain embedder's (databases made before the option stay valid)."""
    from device.store.db import same_embedder
    from device.vision.embedder import SFaceEmbedder

    plain = pipeline.embedder.identity
    variant = pipeline.embedder.prepare().model.variant
    assert plain == {"model": variant.model, "precision": variant.precision, "sha256": variant.sha256}
    flipped = SFaceEmbedder(pipeline.manifest, variant.precision, flip=True).identity
    assert flipped == dict(plain, precision=variant.precision + "+flip")
    assert same_embedder(plain, dict(plain)) and not same_embedder(plain, flipped)
    mesh_eyes = SFaceEmbedder(pipeline.manifest, variant.precision, eyes="mesh").identity
    both = SFaceEmbedder(pipeline.manifest, variant.precision, flip=True, eyes="mesh").identity
    assert mesh_eyes["precision"] == variant.precision + "+mesh-eyes"
    assert both["precision"] == variant.precision + "+flip+mesh-eyes"
    assert not same_embedder(plain, mesh_eyes) and not same_embedder(flipped, both)


@pytest.mark.parametrize("variable, value, suffix", [("FACED_EMBEDDER_FLIP", "true", "+flip"),
                                                    ("FACED_EMBEDDER_EYES", "mesh", "+mesh-eyes")])
def test_collection_made_without_an_embedder_option_is_refused_after_it_until_reembedded(
        tmp_path, faces_dir, variable, value, suffix):
    db = str(tmp_path / "faced.db")
    examples = faces_dir / "face_recognition/examples"
    assert run_faced("--db", db, "collections", "create", "home").returncode == 0
    assert run_faced("--db", db, "persons", "add", "--collection", "home", "--name", "Obama",
                     str(examples / "obama.jpg")).returncode == 0
    flip = {variable: value}
    refused = run_faced("--db", db, "search", str(examples / "obama2.jpg"), "--collection", "home", env=flip)
    assert refused.returncode == 1 and "EMBEDDER_MISMATCH" in refused.stderr and "reembed" in refused.stderr
    assert run_faced("--db", db, "reembed", "--collection", "home", env=flip).returncode == 0
    found = run_faced("--db", db, "search", str(examples / "obama2.jpg"), "--collection", "home", "--json", env=flip)
    assert found.returncode == 0, found.stderr
    assert json.loads(found.stdout)["person_search_results"][0]["person_name"] == "Obama"
    listed = json.loads(run_faced("--db", db, "collections", "list", "--json", env=flip).stdout)
    assert suffix in json.dumps(listed)
    # Back to the plain embedder: the flipped collection is refused in turn.
    again = run_faced("--db", db, "search", str(examples / "obama2.jpg"), "--collection", "home")
    assert again.returncode == 1 and "EMBEDDER_MISMATCH" in again.stderr
