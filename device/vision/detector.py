"""Face detectors: image -> Face records with box, 5 landmarks and score.

Back-ends share one interface (`prepare`, `detect`) so the pipeline does not care which one runs. YuNet is
the default. Its candidates are checked by a second, independently trained model (BlazeFace short-range
run on a crop around each candidate), because YuNet scores animal faces and clutter about as high as
small human faces: a threshold alone cannot both find crowd faces and reject a dog.
"""
from __future__ import annotations

import threading

import cv2
import numpy as np

from ..config import DetectorConfig
from .boxes import iou
from .face import Face
from .human import HumanCheck
from .manifest import Manifest
from .runtime import TFLiteModel, release_memory
from . import yunet_decode


# Overlap with a box of the previous frame at which a candidate counts as the same, already checked face.
KNOWN_IOU = 0.5


class YuNetDetector:
    name = "yunet"
    # Interpreters kept for different input sizes (least recently used dropped). Each holds its own tensor
    # arena (~15 MB at 640x512; ~100 MB at 1280x1024), so inputs are padded to multiples of SIZE_STEP (a few
    # sizes serve every photo) and the fine pass runs as overlapping TILE x TILE tiles through one interpreter.
    SIZES_KEPT = 3
    SIZE_STEP = 128
    TILE = 640
    # Tiles overlap by this much (pixels of the fine pass's copy): a face up to this size lies whole in some
    # tile, and larger faces are the first pass's.
    TILE_OVERLAP = 128

    def __init__(self, manifest: Manifest, config: DetectorConfig, threads: int = 2, embedder=None, aligner=None):
        """`embedder` and `aligner`: the pipeline's, shared so that the human check's crop and embedding are
        the face's."""
        self.manifest = manifest
        self.config = config
        self.threads = threads
        self.model: TFLiteModel | None = None
        self.checker: FaceCheck | None = None
        self.embedder = embedder
        self.aligner = aligner
        self.human: HumanCheck | None = None
        self._by_size: dict[tuple[int, int], TFLiteModel] = {}
        self._lock = threading.Lock()  # guards prepare and the per-size interpreter cache

    def prepare(self) -> "YuNetDetector":
        with self._lock:
            self._prepare()
        return self

    def _prepare(self) -> None:
        if self.model is None:
            variant = self.manifest.variant("yunet", self.config.precision)
            self.model = TFLiteModel(variant, self.threads)
            self.output_names = variant.info.get("outputs") or list(yunet_decode.OUTPUT_NAMES)
            self.resizable = bool(self.manifest.model("yunet").get("input", {}).get("resizable", False))
            self.fixed_hw = self.model.input_shape[1:3]
        if self.config.verify and self.checker is None:
            self.checker = FaceCheck(self.manifest, self.threads).prepare()
        if self.config.verify and self.config.human_check and self.human is None:
            from .embedder import SFaceEmbedder

            embedder = self.embedder or SFaceEmbedder(self.manifest, "", self.threads)
            self.human = HumanCheck(self.manifest.human_check(), embedder.prepare(), self.aligner)

    @property
    def precision(self) -> str:
        return self.model.variant.precision if self.model else ""

    def detect(self, image_rgb: np.ndarray, known: list | None = None) -> list[Face]:
        """Faces in an RGB image, largest first. `known`: boxes of faces that passed every check in the frame
        before (a camera's tracks); a candidate overlapping one by KNOWN_IOU is not asked the human check again
        (one SFace run per face per frame saved; a new face, an animal's included, is always asked)."""
        if self.model is None:
            self.prepare()
        bgr = cv2.cvtColor(image_rgb, cv2.COLOR_RGB2BGR)
        height, width = bgr.shape[:2]
        long_side = max(height, width)
        scale = min(1.0, self.config.max_side / long_side)
        boxes, marks, scores = self._candidates(bgr, scale)
        if self._wants_fine_pass(scale, boxes):
            more = self._tiled_candidates(bgr, min(1.0, self.config.fine_max_side / long_side))
            boxes, marks, scores = (np.concatenate([a, b]) for a, b in zip((boxes, marks, scores), more))
            keep = yunet_decode.nms(boxes, scores, self.config.nms_threshold)
            boxes, marks, scores = boxes[keep], marks[keep], scores[keep]
        faces = [
            Face(box=boxes[i].astype(np.float64), landmarks=marks[i].astype(np.float64), score=float(scores[i]))
            for i in range(len(scores))
            if boxes[i][2] >= self.config.min_face_px
        ]
        if self.checker is not None:
            faces = [face for face in faces if self._passes_check(image_rgb, face)]
        if self.human is not None:
            faces = [face for face in faces if any(iou(face.box, box) >= KNOWN_IOU for box in known or ())
                     or self.human.score(image_rgb, face) >= self.config.human_threshold]
        faces.sort(key=lambda face: face.area, reverse=True)
        return faces

    def _wants_fine_pass(self, scale: float, boxes: np.ndarray) -> bool:
        """A finer pass pays only on a downscaled image that may hold faces too small for the coarse one.

        One clearly visible face (a portrait, a person at a door) does not need it; no face, several faces
        or a small face suggest a group or a distant subject.
        """
        if self.config.fine_max_side <= 0 or scale >= 1.0:
            return False
        if self.config.fine_max_side <= self.config.max_side:
            return False
        if len(boxes) == 1 and boxes[0][2] * scale >= 48:
            return False
        return True

    def _tiled_candidates(self, bgr: np.ndarray, scale: float):
        """The fine pass: YuNet on overlapping tiles of a copy scaled by `scale` (faces in full-image pixels).
        A face touching a tile's inner edge is left to the neighbouring tile, which holds it whole."""
        height, width = bgr.shape[:2]
        scaled_hw = (max(1, round(height * scale)), max(1, round(width * scale)))
        if not self.resizable or max(scaled_hw) <= self.TILE:
            return self._candidates(bgr, scale)
        scaled = cv2.resize(bgr, (scaled_hw[1], scaled_hw[0]), interpolation=cv2.INTER_AREA)
        found = []
        for top in _tile_starts(scaled_hw[0], self.TILE, self.TILE_OVERLAP):
            for left in _tile_starts(scaled_hw[1], self.TILE, self.TILE_OVERLAP):
                tile = scaled[top:top + self.TILE, left:left + self.TILE]
                boxes, marks, scores = self._candidates(tile, 1.0, input_hw=(self.TILE, self.TILE))
                x0, y0, x1, y1 = boxes[:, 0], boxes[:, 1], boxes[:, 0] + boxes[:, 2], boxes[:, 1] + boxes[:, 3]
                inner = np.zeros(len(boxes), bool)  # touches an edge shared with another tile
                if left > 0:
                    inner |= x0 <= 2
                if top > 0:
                    inner |= y0 <= 2
                if left + tile.shape[1] < scaled_hw[1]:
                    inner |= x1 >= tile.shape[1] - 2
                if top + tile.shape[0] < scaled_hw[0]:
                    inner |= y1 >= tile.shape[0] - 2
                keep = ~inner
                offset = np.array([left, top], np.float32)
                found.append((boxes[keep] + np.concatenate([offset, [0, 0]]).astype(np.float32),
                              marks[keep] + offset, scores[keep]))
        boxes, marks, scores = (np.concatenate(parts) for parts in zip(*found))
        fx, fy = width / scaled_hw[1], height / scaled_hw[0]
        return (boxes * np.array([fx, fy, fx, fy], np.float32), marks * np.array([fx, fy], np.float32), scores)

    def _candidates(self, bgr: np.ndarray, scale: float, input_hw: tuple[int, int] | None = None):
        """YuNet's faces (after NMS) in full-image pixels, from a copy scaled by `scale` (run at `input_hw`
        when given, else at the scaled size padded to a multiple of SIZE_STEP)."""
        height, width = bgr.shape[:2]
        model = self.model
        if self.resizable:
            scaled_hw = (max(1, round(height * scale)), max(1, round(width * scale)))
            input_hw = input_hw or yunet_decode.padded_size(*scaled_hw, self.SIZE_STEP)
            model = self._model_for(input_hw)
        else:
            input_hw = self.fixed_hw
            scale = min(scale, input_hw[0] / height, input_hw[1] / width)
            scaled_hw = (max(1, round(height * scale)), max(1, round(width * scale)))
        scaled = bgr if scaled_hw == (height, width) else cv2.resize(
            bgr, (scaled_hw[1], scaled_hw[0]), interpolation=cv2.INTER_AREA
        )
        tensor = np.zeros((1, input_hw[0], input_hw[1], 3), np.float32)
        tensor[0, : scaled_hw[0], : scaled_hw[1]] = scaled
        outputs = dict(zip(self.output_names, model.run(tensor)))
        boxes, marks, scores = yunet_decode.decode(outputs, input_hw, self.config.score_threshold)
        keep = yunet_decode.nms(boxes, scores, self.config.nms_threshold)
        boxes, marks, scores = boxes[keep], marks[keep], scores[keep]
        # Map back with the exact per-axis factors used by the resize.
        fx, fy = width / scaled_hw[1], height / scaled_hw[0]
        boxes = boxes * np.array([fx, fy, fx, fy], np.float32)
        marks = marks * np.array([fx, fy], np.float32)
        return boxes, marks, scores

    def _model_for(self, input_hw: tuple[int, int]) -> TFLiteModel:
        """An interpreter allocated for this input size. Resizing one interpreter re-plans its whole graph
        (slower than the inference itself), so a camera's frame size and the fine pass keep their own."""
        with self._lock:
            model = self._by_size.pop(input_hw, None)
            if model is None:
                model = TFLiteModel(self.model.variant, self.threads)
                model.resize_input((1, input_hw[0], input_hw[1], 3))
            self._by_size[input_hw] = model  # most recently used last
            if len(self._by_size) > self.SIZES_KEPT:
                self._by_size.pop(next(iter(self._by_size)))
                release_memory()
            return model

    def _passes_check(self, image_rgb: np.ndarray, face: Face) -> bool:
        # Both models must agree: a dog's face can score 0.86 with YuNet but gets ~0.46 from BlazeFace,
        # a small human face scores ~0.86 and ~0.75 (README "Detection" has the evidence).
        face.check_score, face.check_eyes = self.checker.run(image_rgb, face.box)
        return float(np.sqrt(face.score * face.check_score)) >= self.config.accept_threshold


class FaceCheck:
    """BlazeFace short-range on a square crop 3x the candidate's size: does it see a face at the centre?

    The crop makes any candidate, however small in the photo, a close-range face for BlazeFace (whose
    short-range model is made for faces filling much of a 128x128 input).
    """

    CROP_FACTOR = 3.0
    INPUT = 128

    def __init__(self, manifest: Manifest, threads: int = 2):
        self.manifest = manifest
        self.threads = threads
        self.model: TFLiteModel | None = None

    def prepare(self) -> "FaceCheck":
        if self.model is None:
            self.model = TFLiteModel(self.manifest.variant("blazeface_short"), self.threads)
            self.anchors = blazeface_anchors(self.INPUT, ((8, 2), (16, 6)))
        return self

    def score(self, image_rgb: np.ndarray, box: np.ndarray) -> float:
        return self.run(image_rgb, box)[0]

    def run(self, image_rgb: np.ndarray, box: np.ndarray) -> tuple[float, np.ndarray | None]:
        """(score, eyes): BlazeFace's best score near the crop's centre and its two eye points (subject's
        right, left) in image pixels; (0.0, None) when it sees nothing there."""
        x, y, w, h = (float(v) for v in box)
        centre_x, centre_y = x + w / 2, y + h / 2
        zoom = self.INPUT / (max(w, h) * self.CROP_FACTOR)
        half = self.INPUT / 2
        matrix = np.array([[zoom, 0, half - centre_x * zoom], [0, zoom, half - centre_y * zoom]])
        crop = cv2.warpAffine(image_rgb, matrix, (self.INPUT, self.INPUT), flags=cv2.INTER_AREA
                              if zoom < 1 else cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        tensor = (crop.astype(np.float32) / 127.5 - 1.0)[None]
        scores, boxes, keypoints = decode_blazeface(*self.model.run(tensor), self.anchors, self.INPUT)
        # Only detections centred near the crop's centre speak for this candidate.
        near = np.all(np.abs(boxes[:, :2] - 0.5) < 0.15, axis=1)
        if not near.any():
            return 0.0, None
        best = int(np.argmax(np.where(near, scores, -1.0)))
        eyes = keypoints[best, :2] * self.INPUT
        eyes = (eyes - matrix[:, 2]) / zoom  # crop -> image pixels (the crop is a pure zoom and shift)
        return float(scores[best]), eyes.astype(np.float64)


def _tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Evenly spread starts of tiles of `tile` pixels covering `length`, neighbours overlapping by >= overlap."""
    if length <= tile:
        return [0]
    count = -(-(length - overlap) // (tile - overlap))
    return [round(i * (length - tile) / (count - 1)) for i in range(count)]


def blazeface_anchors(size: int, layers: tuple[tuple[int, int], ...]) -> np.ndarray:
    """Anchor centres (x, y in [0, 1]) of a BlazeFace model: per layer (stride, anchors per cell)."""
    centres = []
    for stride, per_cell in layers:
        cells = size // stride
        grid = (np.arange(cells, dtype=np.float32) + 0.5) / cells
        xs, ys = np.meshgrid(grid, grid)
        cell_centres = np.stack([xs.ravel(), ys.ravel()], axis=1)
        centres.append(np.repeat(cell_centres, per_cell, axis=0))
    return np.concatenate(centres)


def decode_blazeface(regressors: np.ndarray, classifiers: np.ndarray, anchors: np.ndarray, size: int):
    """(scores N, boxes N x 4 [cx, cy, w, h], keypoints N x 6 x 2), coordinates as fractions of the input."""
    raw = regressors.reshape(-1, 16) / size
    scores = _sigmoid(classifiers.reshape(-1))
    boxes = np.column_stack([raw[:, :2] + anchors, raw[:, 2:4]])
    keypoints = raw[:, 4:16].reshape(-1, 6, 2) + anchors[:, None, :]
    return scores, boxes, keypoints


class BlazeFaceDetector:
    """MediaPipe BlazeFace full-range on the whole image (letterboxed to 192x192): an alternative back-end.

    It is fast and fine for faces that fill a good part of the frame (a door camera), but finds few small
    faces (faced bench compares it with YuNet). BlazeFace gives eyes, nose tip, mouth centre and ears, not
    mouth corners: those come from the face mesh, so the 5 landmarks match YuNet's.
    """

    name = "blazeface"
    INPUT = 192

    def __init__(self, manifest: Manifest, config: DetectorConfig, threads: int = 2):
        self.manifest = manifest
        self.config = config
        self.threads = threads
        self.model: TFLiteModel | None = None
        self.mesh = None

    def prepare(self) -> "BlazeFaceDetector":
        if self.model is None:
            from .mesh import FaceMesh

            self.model = TFLiteModel(self.manifest.variant("blazeface_full"), self.threads)
            self.anchors = blazeface_anchors(self.INPUT, ((4, 1),))
            self.mesh = FaceMesh(self.manifest, self.threads).prepare()
        return self

    @property
    def precision(self) -> str:
        return self.model.variant.precision if self.model else ""

    def detect(self, image_rgb: np.ndarray, known: list | None = None) -> list[Face]:
        self.prepare()
        height, width = image_rgb.shape[:2]
        scale = self.INPUT / max(height, width)
        scaled = cv2.resize(image_rgb, (max(1, round(width * scale)), max(1, round(height * scale))),
                            interpolation=cv2.INTER_AREA)
        tensor = np.zeros((1, self.INPUT, self.INPUT, 3), np.float32)
        tensor[0, : scaled.shape[0], : scaled.shape[1]] = scaled.astype(np.float32) / 127.5 - 1.0
        scores, boxes, keypoints = decode_blazeface(*self.model.run(tensor), self.anchors, self.INPUT)
        keep = scores >= self.config.score_threshold
        scores, boxes, keypoints = scores[keep], boxes[keep] * (self.INPUT / scale), keypoints[keep] * (
            self.INPUT / scale)
        xywh = np.column_stack([boxes[:, :2] - boxes[:, 2:] / 2, boxes[:, 2:]]).astype(np.float32)
        faces = []
        for i in yunet_decode.nms(xywh, scores.astype(np.float32), self.config.nms_threshold):
            if xywh[i][2] < self.config.min_face_px:
                continue
            right_eye, left_eye, nose = keypoints[i][0], keypoints[i][1], keypoints[i][2]
            mesh = self.mesh.run(image_rgb, xywh[i], right_eye, left_eye)
            landmarks = np.vstack([right_eye, left_eye, nose, mesh.mouth_corners])
            faces.append(Face(box=xywh[i].astype(np.float64), landmarks=landmarks.astype(np.float64),
                              score=float(scores[i]), mesh=mesh))
        faces.sort(key=lambda face: face.area, reverse=True)
        return faces


def _sigmoid(values: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(values, -80, 80)))


DETECTORS = {"yunet": YuNetDetector, "blazeface": BlazeFaceDetector}


def make_detector(manifest: Manifest, config: DetectorConfig, threads: int = 2, embedder=None, aligner=None):
    if config.backend == "yunet":
        return YuNetDetector(manifest, config, threads, embedder=embedder, aligner=aligner)
    return DETECTORS[config.backend](manifest, config, threads)
