"""tools/evaluate.py on the shared data: the verification pairs, detection boxes, and the JSON it writes."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np

from tests.conftest import REPO

sys.path.insert(0, str(REPO / "tools"))
import evaluate  # noqa: E402
from device.vision.face import Face  # noqa: E402


def _evaluate(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / "tools/evaluate.py"), *args], capture_output=True,
                          text=True, cwd=str(REPO), timeout=600)


def test_pairs_on_deepface(faces_dir, tmp_path):
    out = tmp_path / "pairs.json"
    result = _evaluate("pairs", str(faces_dir / "deepface/pairs_all.csv"), "--images",
                       str(faces_dir / "deepface"), "--json", str(out))
    assert result.returncode == 0, result.stderr[-2000:]
    summary = json.loads(out.read_text())
    for key in ("pairs", "failed_detections", "accuracy", "kfold_accuracy", "auc", "tar_at_far", "threshold"):
        assert key in summary
    assert set(summary["tar_at_far"]) == {"1e-2", "1e-3", "1e-4"}
    assert summary["pairs"] == 351
    assert summary["failed_detections"] == 0
    assert summary["auc"] >= 0.99
    assert (tmp_path / "pairs.roc.png").read_bytes()[:4] == b"\x89PNG"


def test_pairs_formats(tmp_path):
    root = tmp_path
    (root / "lfw.txt").write_text("2\t2\nAlice\t1\t2\nBob\t1\tCarol\t3\n")
    pairs = evaluate.read_pairs(root / "lfw.txt", root)
    assert pairs == [(root / "Alice/Alice_0001.jpg", root / "Alice/Alice_0002.jpg", 1),
                     (root / "Bob/Bob_0001.jpg", root / "Carol/Carol_0003.jpg", 0)]
    (root / "p.csv").write_text("first,second,label\na.png,b.webp,1\nc.jpg,d.jpg,0\n")
    assert evaluate.read_pairs(root / "p.csv", root) == [(root / "a.png", root / "b.webp", 1),
                                                         (root / "c.jpg", root / "d.jpg", 0)]


def test_failed_detection_counts_as_non_match(faces_dir, tmp_path):
    csv = tmp_path / "pairs.csv"
    csv.write_text(f"{faces_dir}/face_recognition/examples/obama.jpg,{faces_dir}/noface/brick.png,1\n"
                   f"{faces_dir}/face_recognition/examples/obama.jpg,"
                   f"{faces_dir}/face_recognition/examples/obama2.jpg,1\n")
    out = tmp_path / "out.json"
    result = _evaluate("pairs", str(csv), "--images", "/", "--json", str(out))
    assert result.returncode == 0, result.stderr[-2000:]
    summary = json.loads(out.read_text())
    assert summary["failed_detections"] == 1 and summary["accuracy"] == 0.5
    assert "brick.png" in summary["failed"][0]["missing"][0]


def test_boxes_with_negatives(faces_dir, tmp_path):
    out = tmp_path / "boxes.json"
    result = _evaluate("boxes", str(faces_dir / "dlib/examples/faces/testing.xml"), "--negatives",
                       str(faces_dir / "noface"), "--json", str(out))
    assert result.returncode == 0, result.stderr[-2000:]
    summary = json.loads(out.read_text())
    assert set(("labelled", "found", "recall", "recall_min20px", "false_detections",
                "false_on_negatives")) <= set(summary)
    assert summary["labelled"] == 25 and summary["recall"] >= 0.95
    assert summary["false_on_negatives"] == 0


def test_boxes_at_several_scales_with_two_label_files(faces_dir, tmp_path):
    """Issue 23's measurement: the 43 VOC faces at 1.0, 0.5 and 0.35 (faces >= 20 px counted at each scale), and
    every negative (noface with coins.png, the animals, dogs.jpg) without a detection."""
    folder = faces_dir / "dlib/examples/faces"
    out = tmp_path / "scales.json"
    result = _evaluate("boxes", str(folder / "training.xml"), str(folder / "testing.xml"), "--negatives",
                       str(faces_dir / "noface"), str(faces_dir / "animals/images"), str(folder / "dogs.jpg"),
                       "--scale", "1.0", "0.5", "0.35", "--json", str(out))
    assert result.returncode == 0, result.stderr[-2000:]
    summary = json.loads(out.read_text())
    by_scale = {s["scale"]: s for s in summary["scales"]}
    assert set(by_scale) == {1.0, 0.5, 0.35}
    assert by_scale[1.0]["labelled"] == 43 and by_scale[1.0]["found"] == 43
    # Labels shrink with the photo: fewer faces reach 20 px at smaller scales.
    assert by_scale[1.0]["labelled_min20px"] == 43
    assert by_scale[1.0]["labelled_min20px"] > by_scale[0.5]["labelled_min20px"] > by_scale[0.35]["labelled_min20px"] > 0
    for scale, item in by_scale.items():
        assert item["found_min20px"] == item["labelled_min20px"], scale
        assert item["negative_images"] == 51 and item["false_on_negatives"] == 0, scale
        assert item["false_detections"] == 0, scale


def test_metrics():
    labels = np.array([1, 1, 0, 0])
    assert evaluate.roc_auc(np.array([0.9, 0.8, 0.1, 0.2]), labels) == 1.0
    assert evaluate.roc_auc(np.array([0.1, 0.2, 0.9, 0.8]), labels) == 0.0
    assert evaluate.tar_at_far(np.array([0.9, 0.8, 0.1, 0.2]), labels, 1e-3) is None  # unresolvable
    scores = np.r_[np.linspace(0.5, 1, 50), np.linspace(0, 0.6, 1000)]
    labels = np.r_[np.ones(50), np.zeros(1000)].astype(int)
    assert 0 < evaluate.tar_at_far(scores, labels, 1e-2) <= 1


def test_pairs_sets_give_the_folds(tmp_path):
    """LFW pairs.txt's header `SETS<TAB>N` and a CSV's fourth column name each pair's official set."""
    (tmp_path / "lfw.txt").write_text("2\t1\nA\t1\t2\nB\t1\tC\t1\nD\t1\t2\nE\t1\tF\t1\n")
    pairs, sets = evaluate.read_pairs_and_sets(tmp_path / "lfw.txt", tmp_path)
    assert [p[2] for p in pairs] == [1, 0, 1, 0] and sets == ["1", "1", "2", "2"]
    (tmp_path / "one.txt").write_text("1\t1\nA\t1\t2\nB\t1\tC\t1\n")
    assert evaluate.read_pairs_and_sets(tmp_path / "one.txt", tmp_path)[1] is None
    (tmp_path / "p.csv").write_text("path1,path2,same,set\na,b,1,3\nc,d,0,3\ne,f,1,4\ng,h,0,4\n")
    assert evaluate.read_pairs_and_sets(tmp_path / "p.csv", tmp_path)[1] == ["3", "3", "4", "4"]
    assert evaluate.read_pairs_and_sets(tmp_path / "p.csv", tmp_path)[0] == evaluate.read_pairs(tmp_path / "p.csv",
                                                                                                 tmp_path)


def test_kfold_over_official_sets():
    # Set "a" separates at 0.5, set "b" at 0.8: a threshold learnt on one set misclassifies part of the other.
    scores = np.array([0.6, 0.4, 0.9, 0.7, 0.55, 0.45, 0.85, 0.75])
    labels = np.array([1, 0, 1, 0, 1, 0, 1, 0])
    groups = ["a", "a", "b", "b", "a", "a", "b", "b"]
    # Trained on "b" (threshold 0.85) -> on "a" all same pairs are rejected: 0.5; trained on "a" (threshold
    # 0.55) -> on "b" the different pairs 0.7 and 0.75 are accepted: 0.5.
    assert evaluate.kfold_accuracy(scores, labels, 2, groups=groups) == 0.5
    assert evaluate.kfold_accuracy(scores, labels, 2, groups=["a"] * 4 + ["b"] * 4) != 0.5


def test_central_face_choice():
    def face(x, y, w):
        return Face(box=np.array([x, y, w, w], np.float32), landmarks=np.zeros((5, 2), np.float32), score=0.9)

    big_off_centre, small_central = face(0, 0, 120), face(100, 110, 60)  # image 250x250, centre 125,125
    faces = [big_off_centre, small_central]  # largest first, as the detector orders them
    assert evaluate.choose_face(faces, (250, 250, 3), "largest") is big_off_centre
    assert evaluate.choose_face(faces, (250, 250, 3), "central") is small_central


def test_pairs_face_choice_flip_and_detection_cache(faces_dir, tmp_path):
    """--face, --flip and --eyes reach the summary; a second run reuses the cached detections and gives the same
    numbers as detecting again."""
    cache = tmp_path / "det.npz"
    args = ("pairs", str(faces_dir / "deepface/pairs_all.csv"), "--images", str(faces_dir / "deepface"))
    first = _evaluate("--flip", *args, "--face", "largest", "--cache", str(cache), "--json", str(tmp_path / "a.json"))
    assert first.returncode == 0, first.stderr[-2000:]
    assert cache.exists()
    second = _evaluate("--flip", *args, "--face", "largest", "--cache", str(cache), "--json", str(tmp_path / "b.json"))
    assert second.returncode == 0, second.stderr[-2000:]
    a, b = (json.loads((tmp_path / f"{n}.json").read_text()) for n in "ab")
    assert a["face"] == "largest" and a["fold_source"] == "random" and a["folds"] == 10
    assert a["embedder"]["precision"].endswith("+flip")
    assert a["kfold_accuracy"] == b["kfold_accuracy"] and a["auc"] == b["auc"] and a["auc"] >= 0.99
    plain = _evaluate("--no-flip", *args, "--cache", str(cache), "--json", str(tmp_path / "c.json"))
    assert plain.returncode == 0, plain.stderr[-2000:]
    c = json.loads((tmp_path / "c.json").read_text())
    assert c["face"] == "central" and not c["embedder"]["precision"].endswith("+flip")
    # the cache keeps the face check's eyes, which set the face mesh's crop for --eyes mesh
    mesh = _evaluate("--no-flip", "--eyes", "mesh", *args, "--cache", str(cache), "--json", str(tmp_path / "d.json"))
    assert mesh.returncode == 0, mesh.stderr[-2000:]
    d = json.loads((tmp_path / "d.json").read_text())
    assert d["embedder"]["precision"].endswith("+mesh-eyes") and d["auc"] >= 0.99


def test_onen_enrols_probes_and_counts_strangers(faces_dir, tmp_path):
    """1:N on the deepface people with >= 5 photos (2 enrolled each), strangers from face_recognition."""
    rows = (faces_dir / "deepface/labels.csv").read_text().splitlines()[1:]
    labels = ["path,identity"] + [f"deepface/{r.split(',')[0]},{r.split(',')[1]}" for r in rows if r.split(",")[1]]
    labels += ["face_recognition/examples/obama.jpg,obama", "face_recognition/examples/biden.jpg,biden"]
    (tmp_path / "labels.csv").write_text("\n".join(labels) + "\n")
    out = tmp_path / "onen.json"
    result = _evaluate("onen", str(tmp_path / "labels.csv"), "--images", str(faces_dir), "--strangers", "2",
                       "--json", str(out))
    assert result.returncode == 0, result.stderr[-2000:]
    summary = json.loads(out.read_text())
    assert summary["identities"] == 3 and summary["enrolment_photos"] == 6  # df01 (10), df05 (5), df07 (5)
    assert summary["probes"] + summary["probes_of_unenrolled"] == 20 - 6
    assert summary["strangers"] == 2 and summary["threshold"] == 0.7
    assert summary["rank1"] >= 0.9 and summary["strangers_rejected"] == 1.0
    assert not list(tmp_path.glob("**/*.db"))  # the database lived in a temporary folder
