"""Similarity alignment to the 112x112 template."""
from __future__ import annotations

import numpy as np

from device.vision.align import TEMPLATE_112, align_face, similarity_transform


def test_transform_recovers_a_known_similarity():
    angle, scale, shift = np.radians(17), 2.5, np.array([40.0, -12.0])
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    points = (TEMPLATE_112 - shift) @ np.linalg.inv(scale * rotation).T
    matrix = similarity_transform(points)
    mapped = points @ matrix[:, :2].T + matrix[:, 2]
    assert np.allclose(mapped, TEMPLATE_112, atol=1e-6)


def test_aligned_face_puts_landmarks_on_the_template(pipeline, faces_dir):
    from device.imaging import read_image_file

    image = read_image_file(str(faces_dir / "face_recognition/examples/obama.jpg"))
    face = pipeline.detect(image)[0]
    aligned = align_face(image, face.landmarks)
    assert aligned.shape == (112, 112, 3) and aligned.dtype == np.uint8
    # Detecting again on the aligned crop (padded, since YuNet needs context) lands near the template.
    padded = np.pad(aligned, ((56, 56), (56, 56), (0, 0)), mode="edge")
    again = pipeline.detect(padded)[0].landmarks - 56
    assert np.abs(again - TEMPLATE_112).max() < 6
