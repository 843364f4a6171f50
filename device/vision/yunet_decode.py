"""YuNet output decoding, as OpenCV's face_detect.cpp does it (no I/O, no runtime)."""
from __future__ import annotations

from typing import Mapping

import numpy as np

STRIDES = (8, 16, 32)
# ONNX output order of YuNet 2023mar; converted TFLite files are mapped onto these names by the manifest.
OUTPUT_NAMES = tuple(f"{kind}_{s}" for kind in ("cls", "obj", "bbox", "kps") for s in STRIDES)
DIVISOR = 32


def padded_size(height: int, width: int, step: int = DIVISOR) -> tuple[int, int]:
    """Input size YuNet runs at for an image of height x width: each side rounded up to a multiple of `step`
    (itself a multiple of 32, YuNet's largest stride)."""
    return ((height - 1) // step + 1) * step, ((width - 1) // step + 1) * step


def decode(outputs: Mapping[str, np.ndarray], input_hw: tuple[int, int], score_threshold: float):
    """Candidates above score_threshold from raw outputs of one image run at input_hw (padded size).

    Returns (boxes Nx4 [x, y, w, h], landmarks Nx5x2, scores N), float32, in input-pixel coordinates,
    before non-maximum suppression.
    """
    pad_w = input_hw[1]
    boxes, marks, scores = [], [], []
    for stride in STRIDES:
        cols = pad_w // stride
        cls = np.asarray(outputs[f"cls_{stride}"], dtype=np.float32).reshape(-1)
        obj = np.asarray(outputs[f"obj_{stride}"], dtype=np.float32).reshape(-1)
        score = np.sqrt(np.clip(cls, 0, 1) * np.clip(obj, 0, 1))
        keep = np.nonzero(score >= score_threshold)[0]
        if keep.size == 0:
            continue
        bbox = np.asarray(outputs[f"bbox_{stride}"], dtype=np.float32).reshape(-1, 4)[keep]
        kps = np.asarray(outputs[f"kps_{stride}"], dtype=np.float32).reshape(-1, 10)[keep]
        col = (keep % cols).astype(np.float32)
        row = (keep // cols).astype(np.float32)
        cx = (col + bbox[:, 0]) * stride
        cy = (row + bbox[:, 1]) * stride
        w = np.exp(bbox[:, 2]) * stride
        h = np.exp(bbox[:, 3]) * stride
        boxes.append(np.stack([cx - w / 2, cy - h / 2, w, h], axis=1))
        lx = (col[:, None] + kps[:, 0::2]) * stride
        ly = (row[:, None] + kps[:, 1::2]) * stride
        marks.append(np.stack([lx, ly], axis=2))
        scores.append(score[keep])
    if not scores:
        return np.zeros((0, 4), np.float32), np.zeros((0, 5, 2), np.float32), np.zeros((0,), np.float32)
    return (np.concatenate(boxes).astype(np.float32), np.concatenate(marks).astype(np.float32),
            np.concatenate(scores).astype(np.float32))


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Indices kept by greedy non-maximum suppression (boxes as [x, y, w, h]), best score first."""
    order = np.argsort(-scores, kind="stable")
    x1, y1 = boxes[:, 0], boxes[:, 1]
    x2, y2 = x1 + boxes[:, 2], y1 + boxes[:, 3]
    area = np.maximum(boxes[:, 2], 0) * np.maximum(boxes[:, 3], 0)
    kept = []
    while order.size:
        i = order[0]
        kept.append(i)
        rest = order[1:]
        iw = np.maximum(0, np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]))
        ih = np.maximum(0, np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]))
        inter = iw * ih
        iou = inter / np.maximum(area[i] + area[rest] - inter, 1e-9)
        order = rest[iou <= iou_threshold]
    return np.array(kept, dtype=np.int64)
