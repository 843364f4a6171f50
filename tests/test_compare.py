"""1:1 comparison with calibrated scores, on real photos."""
from __future__ import annotations

import json

import numpy as np
import pytest

from device.imaging import read_image_file
from device.vision.calibration import Calibration
from tests.conftest import run_faced


def _face(pipeline, path):
    return pipeline.main_face(read_image_file(str(path)))


def test_embedding_is_unit_length(pipeline, faces_dir):
    face = _face(pipeline, faces_dir / "face_recognition/examples/obama.jpg")
    assert face.embedding.shape == (128,)
    assert abs(float(np.linalg.norm(face.embedding)) - 1) < 1e-5


def test_same_person(pipeline, faces_dir):
    folder = faces_dir / "face_recognition/examples"
    result = pipeline.compare_faces(_face(pipeline, folder / "obama.jpg"), _face(pipeline, folder / "obama2.jpg"))
    assert result.same and result.score >= 0.7


def test_different_people(pipeline, faces_dir):
    folder = faces_dir / "face_recognition/examples"
    result = pipeline.compare_faces(_face(pipeline, folder / "obama.jpg"), _face(pipeline, folder / "biden.jpg"))
    assert not result.same and result.score < 0.5


def test_png_with_alpha_matches_its_jpeg(pipeline, faces_dir):
    folder = faces_dir / "face_recognition/tests/test_images"
    result = pipeline.compare_faces(_face(pipeline, folder / "32bit.png"), _face(pipeline, folder / "obama2.jpg"))
    assert result.cosine > 0.95


def test_calibration_is_monotonic_and_hits_its_operating_points(pipeline):
    calibration = pipeline.calibration
    cosines = np.linspace(-1, 1, 401)
    scores = calibration.score(cosines)
    assert np.all(np.diff(scores) >= 0) and scores[0] == 0 and scores[-1] == 1
    for score in (0.6, 0.7):
        assert calibration.score(calibration.cosine_for(score)) == pytest.approx(score, abs=1e-6)
    assert calibration.cosine_for(0.7) > calibration.cosine_for(0.6)


def test_missing_calibration_is_an_error():
    from device.errors import ModelError

    with pytest.raises(ModelError):
        Calibration.from_manifest({})


def test_cli_compare_json(faces_dir):
    folder = faces_dir / "face_recognition/examples"
    same = run_faced("compare", "--json", str(folder / "obama.jpg"), str(folder / "obama2.jpg"))
    assert same.returncode == 0, same.stderr
    result = json.loads(same.stdout)
    assert set(result) == {"score", "cosine", "same", "threshold"} and result["same"] is True
    other = run_faced("compare", "--json", str(folder / "obama.jpg"), str(folder / "biden.jpg"))
    assert json.loads(other.stdout)["same"] is False


def test_cli_compare_without_face(faces_dir):
    folder = faces_dir / "face_recognition/examples"
    result = run_faced("compare", str(folder / "obama.jpg"), str(faces_dir / "noface/brick.png"))
    assert result.returncode == 1
    assert "FACE_NOT_FOUND" in result.stderr and "brick.png" in result.stderr
    assert "Traceback" not in result.stderr


def test_mesh_eyes_align_on_the_mesh_and_fall_back_to_the_detector(pipeline, faces_dir):
    """eyes="mesh": the crop is aligned on the mesh's eye centres (the detector's nose and mouth kept), the mesh
    is kept on the face for later stages, and a mesh that sees no face leaves the detector's eyes."""
    import dataclasses

    from device.vision.align import Aligner, align_face

    image = read_image_file(str(faces_dir / "face_recognition/examples/obama.jpg"))
    face = dataclasses.replace(pipeline.detect(image)[0], aligned=None, embedding=None, mesh=None)
    aligner = Aligner("mesh", pipeline.mesh)
    points = aligner.points(image, face)
    assert face.mesh is not None and face.mesh.presence >= 0.5
    assert np.allclose(points[:2], face.mesh.eye_centres()) and np.allclose(points[2:], face.landmarks[2:])
    eye_distance = float(np.linalg.norm(face.landmarks[1] - face.landmarks[0]))
    assert 0 < float(np.abs(points[:2] - face.landmarks[:2]).max()) < 0.15 * eye_distance
    crop = aligner.align(image, face)
    assert np.array_equal(crop, align_face(image, points))
    same = float(np.dot(pipeline.embedder.embed(crop), pipeline.embedder.embed(align_face(image, face.landmarks))))
    assert 0.8 < same < 0.9999  # the same face, aligned a little differently
    blank = np.full_like(image, 128)
    nobody = dataclasses.replace(face, mesh=None)
    assert np.allclose(aligner.points(blank, nobody), nobody.landmarks) and nobody.mesh.presence < 0.5
    with pytest.raises(ValueError):
        Aligner("nose")


def test_flip_embedding_averages_the_face_and_its_mirror(pipeline, faces_dir):
    """With flip, a face and its mirror image give the same unit vector, unlike the plain embedding."""
    from device.vision.embedder import SFaceEmbedder, l2_normalise

    image = read_image_file(str(faces_dir / "face_recognition/examples/obama.jpg"))
    aligned = pipeline.align(image, pipeline.detect(image)[:1])[0].aligned
    mirror = np.ascontiguousarray(aligned[:, ::-1])
    plain = pipeline.embedder
    flip = SFaceEmbedder(pipeline.manifest, plain.prepare().model.variant.precision, flip=True)
    vector = flip.embed(aligned)
    assert abs(float(np.linalg.norm(vector)) - 1) < 1e-5
    assert np.allclose(vector, flip.embed(mirror), atol=1e-5)
    assert not np.allclose(plain.embed(aligned), plain.embed(mirror), atol=1e-3)
    assert np.allclose(vector, l2_normalise(plain.embed(aligned) + plain.embed(mirror)), atol=1e-5)
