"""tools/evaluate.py on the shared data: the verification pairs, detection boxes, and the JSON it writes."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np

from tests.conftest import REPO

sys.path.insert(0, str(REPO / "tools"))
import evaluate  # noqa: E402


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
