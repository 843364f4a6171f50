"""Roll on rotated copies of frontal photos, every 15 degrees to +-60 (issue 23).

Bounds from measurement on 16 frontal photos of ../shared/data (README "Head pose"): the mesh's roll within
2.8 degrees, the face check's (BlazeFace's) eye line within 13.2, while YuNet's own eye line reports ~15 for
a 60-degree roll. Tested bounds: 5 and 15 degrees.
"""
from __future__ import annotations

import sys

import numpy as np
import pytest

from device.imaging import read_image_file
from device.vision.quality import landmark_pose
from tests.conftest import REPO

sys.path.insert(0, str(REPO / "tools"))
from fit_human_check import rotated  # noqa: E402

ANGLES = list(range(-60, 61, 15))
MESH_BOUND, CHECK_BOUND = 5.0, 15.0


def _yunet_roll(face) -> float:
    eyes = face.landmarks[1] - face.landmarks[0]
    return float(np.degrees(np.arctan2(-eyes[1], eyes[0])))


@pytest.mark.parametrize("name", ["obama.jpg", "biden.jpg"])
def test_roll_of_rotated_copies(pipeline, faces_dir, name):
    image = read_image_file(str(faces_dir / "face_recognition/examples" / name))
    base = pipeline.add_mesh(image, pipeline.detect(image)[:1])[0]
    base_mesh, base_check, base_yunet = base.mesh.pose()["roll"], landmark_pose(base)["roll"], _yunet_roll(base)
    centre = base.box[:2] + base.box[2:] / 2
    yunet_errors = {}
    for degrees in ANGLES:
        turned, matrix = rotated(image, degrees)
        moved = matrix[:, :2] @ centre + matrix[:, 2]
        faces = [f for f in pipeline.detect(turned)
                 if np.linalg.norm(f.box[:2] + f.box[2:] / 2 - moved) < 0.5 * base.box[2]]
        assert len(faces) == 1, degrees
        face = pipeline.add_mesh(turned, faces)[0]
        assert abs(face.mesh.pose()["roll"] - base_mesh - degrees) <= MESH_BOUND, degrees
        assert abs(landmark_pose(face)["roll"] - base_check - degrees) <= CHECK_BOUND, degrees
        yunet_errors[degrees] = abs(_yunet_roll(face) - base_yunet - degrees)
    # What the check's eyes replace: YuNet's eye line misses most of a strong tilt.
    assert yunet_errors[60] > 25 and yunet_errors[-60] > 25, yunet_errors
