"""Detection on real photos: VOC group photos, large photos with big faces, and photos without people."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from device.imaging import read_image_file

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
import evaluate  # noqa: E402


def test_voc_group_photos_recall(pipeline, faces_dir):
    folder = faces_dir / "dlib/examples/faces"
    labelled = found = 0
    for xml in ("training.xml", "testing.xml"):
        for path, boxes in evaluate.read_imglab(folder / xml).items():
            faces = pipeline.detect(read_image_file(str(path)))
            used = set()
            for face in faces:
                match = next((i for i, b in enumerate(boxes) if i not in used and evaluate.box_matches(face.box, b)),
                             None)
                if match is not None:
                    used.add(match)
            labelled += len(boxes)
            found += len(used)
    assert labelled == 43
    assert found == 43


@pytest.mark.parametrize("name", ["dogs.jpg"])
def test_no_face_on_dogs(pipeline, faces_dir, name):
    assert pipeline.detect(read_image_file(str(faces_dir / "dlib/examples/faces" / name))) == []


def test_no_face_on_face_free_photos(pipeline, faces_dir):
    found = {}
    for path in sorted((faces_dir / "noface").iterdir()):
        if path.suffix.lower() in (".png", ".jpg", ".jpeg"):
            found[path.name] = len(pipeline.detect(read_image_file(str(path))))
    assert found and all(count == 0 for count in found.values()), found


def test_big_faces_in_large_photos(pipeline, faces_dir):
    """Faces taller than ~650 px are missed by YuNet at full size: detection runs on a downscaled copy."""
    large = []
    for path in sorted((faces_dir / "deepface/images").iterdir()):
        image = read_image_file(str(path))
        if max(image.shape[:2]) > 1200:
            large.append(path.name)
            faces = pipeline.detect(image)
            assert faces, path.name
            # Coordinates are in the full image: the box is large and inside it.
            assert faces[0].box[2] > 150
            assert 0 <= faces[0].landmarks[:, 0].min() and faces[0].landmarks[:, 0].max() <= image.shape[1]
    assert large, "expected some photos over 1200 px in deepface/images"


def test_landmark_order_and_largest_first(pipeline, faces_dir):
    faces = pipeline.detect(read_image_file(str(faces_dir / "face_recognition/examples/two_people.jpg")))
    assert len(faces) == 2
    assert faces[0].area >= faces[1].area
    for face in faces:
        right_eye, left_eye, nose, mouth_right, mouth_left = face.landmarks
        # Frontal faces: the subject's right eye and mouth corner are on the image's left.
        assert right_eye[0] < left_eye[0] and mouth_right[0] < mouth_left[0]
        assert max(right_eye[1], left_eye[1]) < nose[1] < min(mouth_right[1], mouth_left[1])


def test_small_faces_found_by_the_fine_pass(pipeline, faces_dir):
    """A VOC photo enlarged 3x: its 25-45 px faces become small for the 640 px coarse pass only if the
    coarse pass were alone; with the fine pass they are all still found."""
    import cv2

    path = faces_dir / "dlib/examples/faces/2008_002470.jpg"
    image = read_image_file(str(path))
    big = cv2.resize(image, None, fx=3, fy=3, interpolation=cv2.INTER_CUBIC)
    assert len(pipeline.detect(big)) >= len(pipeline.detect(image)) - 1


def test_face_check_scores_recorded(pipeline, faces_dir):
    faces = pipeline.detect(read_image_file(str(faces_dir / "face_recognition/examples/obama.jpg")))
    assert len(faces) == 1
    assert faces[0].check_score is not None and 0.0 <= faces[0].check_score <= 1.0
    assert np.sqrt(faces[0].score * faces[0].check_score) >= pipeline.config.detector.accept_threshold
    assert faces[0].check_eyes is not None and faces[0].check_eyes.shape == (2, 2)
    # BlazeFace's eyes are near YuNet's on an upright face (within a fifth of the eye distance).
    assert np.abs(faces[0].check_eyes - faces[0].landmarks[:2]).max() < 0.2 * faces[0].eye_distance


def test_blazeface_backend(faces_dir):
    """The alternative back-end gives the same 5 landmarks (mouth corners from the mesh) on a portrait."""
    from device.config import load_config
    from device.vision.pipeline import Pipeline

    blaze = Pipeline(load_config(env={}, overrides={"detector.backend": "blazeface"}))
    image = read_image_file(str(faces_dir / "face_recognition/examples/two_people.jpg"))
    faces = blaze.detect(image)
    assert len(faces) == 2
    for face in faces:
        right_eye, left_eye, nose, mouth_right, mouth_left = face.landmarks
        assert right_eye[0] < left_eye[0] and mouth_right[0] < mouth_left[0]
        assert max(right_eye[1], left_eye[1]) < nose[1] < min(mouth_right[1], mouth_left[1])
    assert blaze.detect(read_image_file(str(faces_dir / "dlib/examples/faces/dogs.jpg"))) == []
