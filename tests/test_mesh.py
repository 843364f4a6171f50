"""The face mesh: head pose and eye openness, on real photos and documented substitutes.

../shared/data has turned faces (tested on them) but no face with closed eyes: EYES_CLOSED is tested on the
mesh of a real face whose eyelid points are moved onto the eye's axis, i.e. on the geometry that a closed
eye gives the mesh. That checks faced's measure and threshold, not how well the model sees closed eyes.
Roll is tested on a real face rotated in-plane by a known angle.
"""
from __future__ import annotations

import copy

import cv2
import numpy as np
import pytest

from device.imaging import read_image_file
from device.vision import mesh as mesh_module
from device.vision import quality


@pytest.fixture(scope="module")
def obama(faces_dir):
    return read_image_file(str(faces_dir / "face_recognition/examples/obama.jpg"))


def _mesh(pipeline, image):
    face = pipeline.detect(image)[0]
    pipeline.add_mesh(image, [face])
    return face


def test_mesh_fits_the_detected_face(pipeline, obama):
    face = _mesh(pipeline, obama)
    points = face.mesh.points
    assert points.shape == (468, 3) and face.mesh.presence > 0.9
    # The mesh's eye corners and mouth corners agree with YuNet's landmarks to a fraction of the eye distance.
    mesh_eyes = (points[[33, 133], :2].mean(axis=0), points[[263, 362], :2].mean(axis=0))
    assert np.linalg.norm(mesh_eyes[0] - face.landmarks[0]) < 0.25 * face.eye_distance
    assert np.linalg.norm(mesh_eyes[1] - face.landmarks[1]) < 0.25 * face.eye_distance
    assert np.abs(face.mesh.mouth_corners - face.landmarks[3:]).max() < 0.3 * face.eye_distance


@pytest.mark.parametrize("angle", [-30, 15, 30])
def test_roll_follows_an_in_plane_rotation(pipeline, obama, angle):
    level = _mesh(pipeline, obama).mesh.pose()["roll"]
    height, width = obama.shape[:2]
    matrix = cv2.getRotationMatrix2D((width / 2, height / 3), angle, 1.0)  # counter-clockwise for angle > 0
    rotated = cv2.warpAffine(obama, matrix, (width, height), borderMode=cv2.BORDER_REPLICATE)
    assert _mesh(pipeline, rotated).mesh.pose()["roll"] - level == pytest.approx(angle, abs=4)


def test_yaw_changes_sign_in_a_mirror(pipeline, faces_dir):
    image = read_image_file(str(faces_dir / "liveness/real/reynara_Live_246.jpg"))
    turned = _mesh(pipeline, image).mesh.pose()["yaw"]
    mirrored = _mesh(pipeline, np.ascontiguousarray(image[:, ::-1])).mesh.pose()["yaw"]
    assert turned > 35 and mirrored < -35


def test_open_eyes(pipeline, obama):
    assert _mesh(pipeline, obama).mesh.eye_openness() > 0.5


def close_eyes(mesh):
    """A copy of a mesh with each lid point projected onto its eye's corner-to-corner axis: the lids meet."""
    closed = copy.deepcopy(mesh)
    for eye in (mesh_module.RIGHT_EYE, mesh_module.LEFT_EYE):
        outer, inner = closed.points[eye["outer"], :2], closed.points[eye["inner"], :2]
        axis = (inner - outer) / np.linalg.norm(inner - outer)
        for index in (*eye["upper"], *eye["lower"]):
            closed.points[index, :2] = outer + axis * float((closed.points[index, :2] - outer) @ axis)
    return closed


def test_closed_eye_geometry_gives_eyes_closed(pipeline, obama):
    face = _mesh(pipeline, obama)
    closed = close_eyes(face.mesh)
    assert closed.eye_openness() == 0.0
    face.mesh = closed
    result = quality.assess(face, obama.shape, pipeline.config.quality, mesh=closed, aligned=face.aligned)
    assert "EYES_CLOSED" in result.codes
