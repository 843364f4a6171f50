"""Passive liveness through the pipeline and the CLI: verdicts, the quality gates, and tools/evaluate.py."""
from __future__ import annotations

import json
import subprocess
import sys

import cv2
import numpy as np
import pytest

from device.imaging import read_image_file
from device.vision.face import Face
from tests.conftest import REPO, run_faced

SILENT = "silent-face/images/sample"


def _liveness(pipeline, image, faces=None):
    faces = pipeline.detect(image) if faces is None else faces
    return pipeline.add_liveness(image, faces)


@pytest.mark.parametrize("name, live", [("image_T1.jpg", True), ("image_F1.jpg", False), ("image_F2.jpg", False)])
def test_silent_face_samples(pipeline, faces_dir, name, live):
    face = _liveness(pipeline, read_image_file(str(faces_dir / SILENT / name)))[0]
    assert face.liveness["live"] is live
    assert 0.0 <= face.liveness["score"] <= 1.0
    assert face.liveness["codes"] == ([] if live else ["FACE_NOT_LIVE"])


def test_cli_liveness_json(faces_dir):
    paths = [str(faces_dir / SILENT / name) for name in ("image_T1.jpg", "image_F2.jpg")]
    result = run_faced("liveness", "--json", *paths)
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["image"] for line in lines] == paths
    assert set(lines[0]["faces"][0]) == {"box", "liveness"}
    assert lines[0]["faces"][0]["liveness"]["live"] is True
    assert lines[1]["faces"][0]["liveness"]["live"] is False


def test_detect_with_liveness_adds_the_key(faces_dir):
    result = run_faced("detect", "--json", "--liveness", "--no-attributes", str(faces_dir / SILENT / "image_T1.jpg"))
    face = json.loads(result.stdout)["faces"][0]
    assert set(face["liveness"]) == {"score", "live", "codes"}


# Each gate: a real image (or a real image changed in one known way) that the gate must stop, unscored.
def _gated(pipeline, image, code, faces=None):
    face = _liveness(pipeline, image, faces)[0]
    assert face.liveness["score"] is None and face.liveness["live"] is False
    assert code in face.liveness["codes"], face.liveness
    return face


def test_gate_cropped(pipeline, faces_dir):
    image = read_image_file(str(faces_dir / SILENT / "image_T1.jpg"))
    face = pipeline.detect(image)[0]
    x = int(face.box[0] + face.box[2] * 0.45)  # cut the image through the face
    _gated(pipeline, np.ascontiguousarray(image[:, x:]), "FACE_CROPPED")


def test_gate_too_small(pipeline, faces_dir):
    image = read_image_file(str(faces_dir / SILENT / "image_T1.jpg"))
    scale = 20 / pipeline.detect(image)[0].eye_distance
    _gated(pipeline, cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA), "FACE_TOO_SMALL")


def test_gate_turned_away(pipeline, faces_dir):
    _gated(pipeline, read_image_file(str(faces_dir / "liveness/real/reynara_Live_246.jpg")), "FACE_ANGLE_TOO_LARGE")


def test_gate_low_confidence(faces_dir):
    from device.config import load_config
    from device.vision.pipeline import Pipeline

    strict = Pipeline(load_config(env={}, overrides={"liveness.min_detector_score": 0.99}))
    _gated(strict, read_image_file(str(faces_dir / SILENT / "image_T1.jpg")), "FACE_LOW_CONFIDENCE")


def test_gate_degenerate_box(pipeline, faces_dir):
    image = read_image_file(str(faces_dir / SILENT / "image_T1.jpg"))
    face = pipeline.detect(image)[0]
    flat = Face(box=np.array([face.box[0], face.box[1], face.box[2], face.box[2] * 0.3]),
                landmarks=face.landmarks, score=face.score)
    _gated(pipeline, image, "FACE_BOX_DEGENERATE", faces=[flat])


def test_gate_eyes_closed(pipeline, faces_dir):
    """No photo in ../shared/data has closed eyes: the real face's mesh gets closed lids (see test_mesh)."""
    from tests.test_mesh import close_eyes

    image = read_image_file(str(faces_dir / SILENT / "image_T1.jpg"))
    face = pipeline.add_mesh(image, pipeline.detect(image)[:1])[0]
    face.mesh = close_eyes(face.mesh)
    _gated(pipeline, image, "EYES_CLOSED", faces=[face])


def test_evaluate_liveness(faces_dir, tmp_path):
    out = tmp_path / "liveness.json"
    result = subprocess.run([sys.executable, str(REPO / "tools/evaluate.py"), "liveness",
                             str(faces_dir / "liveness"), "--json", str(out)],
                            capture_output=True, text=True, cwd=str(REPO), timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    summary = json.loads(out.read_text())
    assert {"images", "no_face", "apcer", "bpcer", "acer", "threshold", "eer_threshold"} <= set(summary)
    assert summary["images"] == 50
    for key in ("apcer", "bpcer", "acer", "eer_threshold"):
        assert 0.0 <= summary[key] <= 1.0
    assert (tmp_path / "liveness.det.png").read_bytes()[:4] == b"\x89PNG"
