"""Passive liveness model math: upstream's crop rule, the shipped MiniFASNet variants, scores on real images.

Fidelity of the converted files against the upstream ONNX models is measured by `tools/convert.py` (and
re-checked by `tools/convert.py --check`, which needs the tools extra); these tests check behaviour only.
"""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from device.vision import liveness
from device.vision.liveness import CROP_SCALES, PassiveLiveness, crop_box, liveness_crop
from device.vision.manifest import Manifest

MODELS = tuple(CROP_SCALES)
SILENT_FACE = {"image_T1.jpg": True, "image_F1.jpg": False, "image_F2.jpg": False}


def read_bgr(path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert image is not None, path
    return image


@pytest.fixture(scope="module")
def passive():
    return PassiveLiveness(Manifest(), threads=1).prepare()


def main_box(pipeline, image_bgr) -> np.ndarray:
    faces = pipeline.detect(cv2.cvtColor(image_bgr, cv2.COLOR_BGR2RGB))
    assert faces, "no face found"
    return np.asarray(faces[0].box, dtype=np.float64)


# ------------------------------------------------------------------------------------------- the crop rule


def test_crop_box_by_hand():
    # 300x200 image; box (10, 50, 40, 55) at scale 2.7: 108 x 148.5 around (30, 77.5), i.e. x from -24 to 84:
    # shifted right by 24 to 0..108; y from 3.25 to 151.75; truncated.
    assert crop_box((200, 300, 3), [10, 50, 40, 55], 2.7) == (0, 3, 108, 151)
    # Near the bottom-right corner it is shifted back up and left, not clipped: x 216..324 -> 191..299,
    # y 108.25..256.75 -> 50.5..199.
    assert crop_box((200, 300, 3), [250, 155, 40, 55], 2.7) == (191, 50, 299, 199)
    # Too big for the image at 4.0: scale = min(4.0, 199/55, 299/40) = 3.618; height 199, width 144.7.
    assert crop_box((200, 300, 3), [100, 50, 40, 55], 4.0) == (47, 0, 192, 199)


def test_crop_of_a_face_near_the_border_is_shifted_inside_and_keeps_the_aspect(faces_dir, pipeline):
    # image_T1 (face box about x 119-289, y 114-354 of 480x640) with room added on the right and at the bottom:
    # the face is near the top-left corner, and the image is big enough that neither scale is clamped. Cut
    # just below and right of the face, with the room added on the left and at the top: near the bottom-right.
    original = read_bgr(faces_dir / "silent-face/images/sample/image_T1.jpg")
    grey = (90, 120, 150)
    top_left = cv2.copyMakeBorder(original, 0, 700, 0, 700, cv2.BORDER_CONSTANT, value=grey)
    bottom_right = cv2.copyMakeBorder(original[:400, :320], 700, 0, 700, 0, cv2.BORDER_CONSTANT, value=grey)
    for image in (top_left, bottom_right):
        height, width = image.shape[:2]
        x, y, w, h = box = main_box(pipeline, image)
        assert h / w > 1.2  # YuNet's tall box
        for name, scale in CROP_SCALES.items():
            assert min((height - 1) / h, (width - 1) / w) > scale  # not clamped
            left, top, right, bottom = crop_box(image.shape, box, scale)
            # It would stick out on two sides: it is moved back against both borders, whole.
            assert x + w / 2 - w * scale / 2 < 0 or x + w / 2 + w * scale / 2 > width - 1
            assert y + h / 2 - h * scale / 2 < 0 or y + h / 2 + h * scale / 2 > height - 1
            assert left == 0 or right == width - 1, name
            assert top == 0 or bottom == height - 1, name
            assert 0 <= left < right <= width - 1 and 0 <= top < bottom <= height - 1
            # Size w*scale x h*scale (up to the integer corners), so the box's aspect is kept.
            assert abs((right - left) - w * scale) <= 1 and abs((bottom - top) - h * scale) <= 1, name
            crop = liveness_crop(image, box, scale)
            assert crop.shape == (liveness.INPUT_SIZE, liveness.INPUT_SIZE, 3) and crop.dtype == np.uint8
            expected = cv2.resize(image[top:bottom + 1, left:right + 1], (liveness.INPUT_SIZE, liveness.INPUT_SIZE))
            np.testing.assert_array_equal(crop, expected)


def test_large_face_is_cropped_at_a_clamped_scale(faces_dir, pipeline):
    image = read_bgr(faces_dir / "face_recognition/tests/test_images/obama_partial_face.jpg")
    height, width = image.shape[:2]
    x, y, w, h = box = main_box(pipeline, image)
    scale = min((height - 1) / h, (width - 1) / w, CROP_SCALES["minifasnet_v1se"])
    assert scale < CROP_SCALES["minifasnet_v1se"]
    left, top, right, bottom = crop_box(image.shape, box, CROP_SCALES["minifasnet_v1se"])
    assert 0 <= left and 0 <= top and right <= width - 1 and bottom <= height - 1
    assert abs((right - left) - w * scale) <= 1 and abs((bottom - top) - h * scale) <= 1


def test_rgb_crops_equal_the_bgr_crops_upstream_cuts(faces_dir, pipeline, passive):
    bgr = read_bgr(faces_dir / "silent-face/images/sample/image_F2.jpg")
    box = main_box(pipeline, bgr)
    crops = passive.crops(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), box)
    for name, scale in CROP_SCALES.items():
        np.testing.assert_array_equal(crops[name], liveness_crop(bgr, box, scale))


@pytest.mark.parametrize("box", [[10, 10, 0, 20], [10, 10, 20, -1], [np.nan, 0, 10, 10], [0, 0, np.inf, 10]])
def test_degenerate_box_is_refused(box):
    with pytest.raises(ValueError, match="degenerate"):
        liveness_crop(np.zeros((100, 100, 3), np.uint8), box, 2.7)


# ------------------------------------------------------------------------------------------- the models


def test_shipped_variants_verify_and_the_default_pair_passes():
    manifest = Manifest()
    for name in MODELS:
        shipped = [v for v in manifest.variants(name) if v.shipped]
        assert {"fp32", "fp16"} <= {v.precision for v in shipped}
        for variant in manifest.variants(name):
            # DESIGN's bar as tools/convert.py applies it per model (any two passing variants keep the fused
            # score within 0.05); a variant is shipped exactly when it passes.
            assert variant.shipped == variant.passes == (variant.fidelity["live_diff_max"] <= 0.05)
            if variant.shipped:
                assert manifest.variant(name, variant.precision).path.is_file()  # sha256-checked
        assert manifest.variant(name).precision == manifest.default_precision(name)
    fused = manifest.data["minifasnet_fused"]
    assert fused["default"] == {name: manifest.model(name)["default_precision"] for name in MODELS}
    assert fused["fused"]["passes"] and fused["fused"]["fused_diff_max"] <= 0.05
    assert fused["fused"]["decision_flips"] == 0
    for pair in fused["pairs"].values():
        if pair["shipped"]:
            assert pair["passes"], pair


def test_identity_names_both_models(passive):
    identity = passive.identity
    manifest = Manifest()
    assert set(identity) == set(MODELS)
    for name, entry in identity.items():
        assert entry["precision"] == manifest.default_precision(name)
        assert entry["sha256"] == manifest.variant(name).sha256


@pytest.mark.parametrize("image_name,live", SILENT_FACE.items())
def test_silent_face_samples(faces_dir, pipeline, passive, image_name, live):
    rgb = cv2.cvtColor(read_bgr(faces_dir / "silent-face/images/sample" / image_name), cv2.COLOR_BGR2RGB)
    box = pipeline.detect(rgb)[0].box
    score = passive.score(rgb, box)
    assert 0.0 <= score <= 1.0
    assert (score >= 0.5) == live, score
    details = passive.details(rgb, box)
    assert details["score"] == pytest.approx(score, abs=1e-9)
    assert details["score"] == pytest.approx(np.mean([m["live"] for m in details["models"].values()]))
    for name, model in details["models"].items():
        assert sum(model["probabilities"]) == pytest.approx(1.0)
        assert model["live"] == model["probabilities"][liveness.LIVE_CLASS]
        assert model["precision"] == passive.identity[name]["precision"]


def test_every_shipped_precision_gives_the_same_answers(faces_dir, pipeline):
    manifest = Manifest()
    images = {name: cv2.cvtColor(read_bgr(faces_dir / "silent-face/images/sample" / name), cv2.COLOR_BGR2RGB)
              for name in SILENT_FACE}
    boxes = {name: pipeline.detect(rgb)[0].box for name, rgb in images.items()}
    for pair in manifest.data["minifasnet_fused"]["pairs"].values():
        if not pair["shipped"]:
            continue
        model = PassiveLiveness(manifest, pair["minifasnet_v2"], pair["minifasnet_v1se"], threads=1)
        for name, live in SILENT_FACE.items():
            score = model.score(images[name], boxes[name])
            assert 0.0 <= score <= 1.0 and (score >= 0.5) == live, (pair, name, score)


def test_scores_stay_in_range_on_odd_inputs(passive):
    rng = np.random.default_rng(0)
    for image, box in [
        (rng.integers(0, 256, (120, 90, 3), dtype=np.uint8), [30, 40, 20, 30]),  # noise
        (np.zeros((64, 64, 3), np.uint8), [0, 0, 63, 63]),  # black, box as large as the image
        (np.full((50, 400, 3), 255, np.uint8), [390, 45, 9, 12]),  # corner of a thin white strip
    ]:
        score = passive.score(image, box)
        assert 0.0 <= score <= 1.0
