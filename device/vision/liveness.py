"""Passive liveness: Silent-Face MiniFASNetV2 (crop 2.7x) + MiniFASNetV1SE (crop 4.0x), fused into one 0..1 score.

Upstream (../shared/data/models-upstream/minifasnet-onnx/SOURCE.md, minivision-ai/Silent-Face-Anti-Spoofing):
each model takes an 80x80 BGR crop, 0-255 float, no normalisation, and gives 3 logits (class 1 = real, classes
0 and 2 = two kinds of spoof). The crop is cut around the face box by `liveness_crop` (upstream's CropImage
rule, one scale per model). Each model's logits go through a softmax; the live score is the mean of the two
class-1 probabilities. Upstream adds the two softmaxes and takes the argmax; faced thresholds the mean (0.5 by
default): a mean >= 0.5 is always upstream's "real" too, while below 0.5 upstream may still say "real" when the
two spoof classes split the rest, so faced's default is the stricter of the two.

Box convention: faced passes the detector's (YuNet's) box as it comes, [x, y, w, h] in pixels of the image.
Upstream's own detector (a Caffe RetinaFace) gives nearly square boxes; YuNet's are taller (height/width 1.32 on
average on the liveness samples, 1.36 on the 139 faces of the other photos of ../shared/data). The crop keeps the
box's aspect and is then squeezed to 80x80, so a YuNet crop is a little narrower than upstream's. Measured with
faced's default detector, the upstream ONNX models on onnxruntime and the shipped TFLite pair on the same boxes:
YuNet's box against the same box made square around its centre (side = w, h, or their mean), decision at 0.5.

    ../shared/data/faces/liveness: 25 real, 25 spoof; 3 spoofs give no face and count as rejected
                           APCER      BPCER      AUC (scored faces)   median score real / spoof
      YuNet box as it is   2/25  8%   1/25  4%   0.956                0.992 / 0.005
      square, side = w     3/25 12%   1/25  4%   0.938                0.985 / 0.007
      square, side = h     2/25  8%   1/25  4%   0.964                0.985 / 0.005
      square, side = mean  2/25  8%   1/25  4%   0.958                0.985 / 0.005
    The TFLite fp16 pair (the default) and fp32 pair make the same decisions as the ONNX models on every
    sample with every convention (fused score within 0.0023 of ONNX's).
    silent-face samples (YuNet boxes): image_T1 0.9999 (live), image_F1 0.22, image_F2 0.003 (not live); every
    convention gets all three right.
    real photos of deepface / face_recognition / dlib judged live, all faces YuNet finds: YuNet boxes 32/35,
    36/36, 52/68; square (mean) 30/35, 36/36, 54/68.

No squared convention is clearly better (the differences are one or two faces either way, within the noise of 50
samples) and squaring lowers real faces' scores slightly, so faced uses the detector's box unchanged. The two
spoofs judged live are the two printed-mask samples (0.76 and 1.00): passive liveness does not stop masks or
cut-outs. Scores depend on the box: compare a port with the reference on the same boxes.
"""
from __future__ import annotations

import math

import cv2
import numpy as np

from .manifest import Manifest
from .runtime import TFLiteModel

INPUT_SIZE = 80
LIVE_CLASS = 1  # upstream's label order: 0 and 2 are spoof classes, 1 is a real face
# manifest model name -> crop scale (upstream's model file names: 2.7_80x80_MiniFASNetV2, 4_0_0_80x80_MiniFASNetV1SE)
CROP_SCALES = {"minifasnet_v2": 2.7, "minifasnet_v1se": 4.0}


def crop_box(image_shape: tuple[int, ...], box, scale: float) -> tuple[int, int, int, int]:
    """Upstream's enlarged box (left, top, right, bottom; integer pixels, right and bottom inclusive).

    1. scale = min(scale, (H-1)/h, (W-1)/w): the enlarged box never exceeds the image;
    2. size (w*scale, h*scale) around the box centre, the box's aspect kept;
    3. if it sticks out on one side it is shifted back inside (not clipped);
    4. corners truncated to integers.
    """
    height, width = image_shape[:2]
    x, y, w, h = (float(v) for v in np.asarray(box, dtype=np.float64).reshape(-1)[:4])
    if not all(math.isfinite(v) for v in (x, y, w, h)) or w <= 0 or h <= 0:
        raise ValueError(f"degenerate face box {[x, y, w, h]}")
    scale = min((height - 1) / h, (width - 1) / w, float(scale))
    new_w, new_h = w * scale, h * scale
    cx, cy = x + w / 2, y + h / 2
    left, top, right, bottom = cx - new_w / 2, cy - new_h / 2, cx + new_w / 2, cy + new_h / 2
    if left < 0:
        right -= left
        left = 0.0
    if top < 0:
        bottom -= top
        top = 0.0
    if right > width - 1:
        left -= right - width + 1
        right = width - 1.0
    if bottom > height - 1:
        top -= bottom - height + 1
        bottom = height - 1.0
    # int() truncates towards zero, as upstream; max(0, ...) only guards float rounding (-1e-13 -> 0 anyway).
    return max(int(left), 0), max(int(top), 0), int(right), int(bottom)


def liveness_crop(image_bgr: np.ndarray, box, scale: float, size: int = INPUT_SIZE) -> np.ndarray:
    """The size x size crop upstream feeds a MiniFASNet model: the box enlarged `scale` times by `crop_box`,
    the pixels from its top-left to its bottom-right corner inclusive, resized with cv2.resize (bilinear).

    Channel order is kept (give BGR for the models). Raises ValueError for an empty or non-finite box.
    """
    if image_bgr.ndim != 3 or image_bgr.shape[0] < 1 or image_bgr.shape[1] < 1:
        raise ValueError(f"expected an HxWxC image, got shape {image_bgr.shape}")
    left, top, right, bottom = crop_box(image_bgr.shape, box, scale)
    return cv2.resize(image_bgr[top:bottom + 1, left:right + 1], (size, size))


def softmax(logits: np.ndarray) -> np.ndarray:
    """Softmax of one row of logits (float64)."""
    z = np.asarray(logits, dtype=np.float64).reshape(-1)
    e = np.exp(z - z.max())
    return e / e.sum()


def fuse(live_probabilities) -> float:
    """The live score: the mean of the models' class-1 probabilities."""
    values = list(live_probabilities)
    return float(sum(values) / len(values))


def model_input(crop_bgr: np.ndarray) -> np.ndarray:
    """[1, 80, 80, 3] float32 NHWC, BGR 0-255 (the converted models take NHWC; no normalisation)."""
    return crop_bgr.astype(np.float32)[None]


class PassiveLiveness:
    """Single-image passive liveness of one face: 0..1, 1 = live.

    Life cycle as the other stages: construct (cheap), `prepare()` loads and sha256-checks both models, `score()`
    runs them. Precisions default to the manifest's choice for this machine (the pair whose fused score stays
    within 0.05 of the upstream models'; see [minifasnet_fused] in models/manifest.toml).
    """

    name = "liveness"

    def __init__(self, manifest: Manifest, v2_precision: str = "", v1se_precision: str = "", threads: int = 2):
        self.manifest = manifest
        self.precisions = {"minifasnet_v2": v2_precision, "minifasnet_v1se": v1se_precision}
        self.threads = threads
        self.models: dict[str, TFLiteModel] = {}

    def prepare(self) -> "PassiveLiveness":
        for name, precision in self.precisions.items():
            if name not in self.models:
                self.models[name] = TFLiteModel(self.manifest.variant(name, precision), self.threads)
        return self

    @property
    def identity(self) -> dict:
        self.prepare()
        return {name: {"precision": m.variant.precision, "sha256": m.variant.sha256}
                for name, m in self.models.items()}

    def crops(self, image_rgb: np.ndarray, box) -> dict[str, np.ndarray]:
        """Each model's 80x80 BGR crop of the face (box [x, y, w, h] as the detector gives it)."""
        # Cropping and bilinear resizing work per channel, so cropping the RGB image and then swapping
        # channels gives exactly the crop of the BGR image, without converting the whole frame.
        return {name: np.ascontiguousarray(liveness_crop(image_rgb, box, scale)[..., ::-1])
                for name, scale in CROP_SCALES.items()}

    def probabilities(self, crops: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Each model's 3 class probabilities (softmax of its logits) for already cut BGR crops."""
        self.prepare()
        return {name: softmax(self.models[name].run(model_input(crops[name]))[0]) for name in CROP_SCALES}

    def details(self, image_rgb: np.ndarray, box) -> dict:
        """{"score": fused live score, "models": {name: {"live": class-1 probability, "probabilities": [3],
        "precision": ...}}}."""
        probabilities = self.probabilities(self.crops(image_rgb, box))
        return {
            "score": fuse(p[LIVE_CLASS] for p in probabilities.values()),
            "models": {name: {"live": float(p[LIVE_CLASS]), "probabilities": [float(v) for v in p],
                              "precision": self.models[name].variant.precision}
                       for name, p in probabilities.items()},
        }

    def score(self, image_rgb: np.ndarray, box) -> float:
        """Fused live score (0..1, 1 = live) of the face in `box` of an RGB image."""
        probabilities = self.probabilities(self.crops(image_rgb, box))
        return fuse(p[LIVE_CLASS] for p in probabilities.values())
