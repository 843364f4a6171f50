"""Quality codes and score on real images (device/vision/quality.py decides them all)."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from device.imaging import read_image_file
from device.vision import quality


def _assessed(pipeline, image):
    return pipeline.assess(image, pipeline.detect(image))


@pytest.mark.parametrize("name", ["obama_partial_face.jpg", "obama_partial_face2.jpg"])
def test_partial_faces_are_flagged(pipeline, faces_dir, name):
    image = read_image_file(str(faces_dir / "face_recognition/tests/test_images" / name))
    (face,) = _assessed(pipeline, image)
    assert {"FACE_CROPPED", "FACE_CLOSE_TO_BORDER"} & set(face.quality.codes)


def _scaled_to_eye_distance(pipeline, image, target):
    face = pipeline.detect(image)[0]
    scale = target / face.eye_distance
    return cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)


def test_twenty_pixels_between_the_eyes_is_too_small(pipeline, faces_dir):
    image = read_image_file(str(faces_dir / "face_recognition/examples/obama.jpg"))
    small = _scaled_to_eye_distance(pipeline, image, 20)
    (face,) = _assessed(pipeline, small)
    assert 17 <= face.eye_distance <= 23
    assert "FACE_TOO_SMALL" in face.quality.codes


@pytest.mark.parametrize("eyes", [35, 40, 45])
def test_portrait_crop_sizes_are_not_too_small(pipeline, faces_dir, eyes):
    image = read_image_file(str(faces_dir / "face_recognition/examples/obama.jpg"))
    (face,) = _assessed(pipeline, _scaled_to_eye_distance(pipeline, image, eyes))
    assert "FACE_TOO_SMALL" not in face.quality.codes


def test_group_photo_where_one_face_is_required(pipeline, faces_dir):
    image = read_image_file(str(faces_dir / "dlib/examples/faces/2008_002470.jpg"))
    faces = pipeline.detect(image)
    assert quality.image_codes(faces, one_face_required=True) == ["TOO_MANY_FACES"]
    assert quality.image_codes(faces, one_face_required=False) == []
    assert quality.image_codes([], one_face_required=True) == ["FACE_NOT_FOUND"]


def test_turned_face_is_angle_too_large(pipeline, faces_dir):
    """A real photo of a face turned ~45 degrees to the image's right (liveness/real, CelebA-Spoof)."""
    image = read_image_file(str(faces_dir / "liveness/real/reynara_Live_246.jpg"))
    (face,) = _assessed(pipeline, image)
    assert "FACE_ANGLE_TOO_LARGE" in face.quality.codes
    assert face.mesh.pose()["yaw"] > 35


def test_frontal_face_has_no_codes_and_a_high_score(pipeline, faces_dir):
    image = read_image_file(str(faces_dir / "face_recognition/examples/obama.jpg"))
    (face,) = _assessed(pipeline, image)
    assert face.quality.codes == []
    assert face.quality.score >= 80


def test_face_too_close(pipeline, faces_dir):
    image = read_image_file(str(faces_dir / "face_recognition/examples/obama.jpg"))
    face = pipeline.detect(image)[0]
    x, y, w, h = (int(v) for v in face.box)
    tight = image[max(0, y - h // 10): y + h + h // 10, x + w // 20: x + w - w // 20]  # face wider than 80%
    faces = _assessed(pipeline, np.ascontiguousarray(tight))
    assert faces and "FACE_TOO_CLOSE" in faces[0].quality.codes


def test_score_drops_with_blur(pipeline, faces_dir):
    image = read_image_file(str(faces_dir / "face_recognition/examples/obama.jpg"))
    (sharp,) = _assessed(pipeline, image)
    (blurred,) = _assessed(pipeline, cv2.GaussianBlur(image, (0, 0), sharp.eye_distance / 15))
    assert blurred.quality.factors["sharpness"] < sharp.quality.factors["sharpness"]
    assert blurred.quality.score < sharp.quality.score


def test_thresholds_are_configurable(faces_dir):
    from device.config import load_config
    from device.vision.pipeline import Pipeline

    strict = Pipeline(load_config(env={}, overrides={"quality.min_eye_distance": 500.0}))
    image = read_image_file(str(faces_dir / "face_recognition/examples/obama.jpg"))
    (face,) = strict.assess(image, strict.detect(image))
    assert "FACE_TOO_SMALL" in face.quality.codes
