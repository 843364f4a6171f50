"""Short video clips made from still photos, for tests that play a clip through the detector (and, once the
camera module lands, as a camera source)."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from device.imaging import read_image_file

FRAME_SIZE = (640, 480)  # width, height: a common camera mode


def fit_frame(image_rgb: np.ndarray, size: tuple[int, int] = FRAME_SIZE) -> np.ndarray:
    """The photo scaled to fit the frame, centred on a black background (RGB)."""
    width, height = size
    scale = min(width / image_rgb.shape[1], height / image_rgb.shape[0])
    new = (max(1, round(image_rgb.shape[1] * scale)), max(1, round(image_rgb.shape[0] * scale)))
    small = cv2.resize(image_rgb, new, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    frame = np.zeros((height, width, 3), np.uint8)
    top, left = (height - new[1]) // 2, (width - new[0]) // 2
    frame[top:top + new[1], left:left + new[0]] = small
    return frame


def write_clip(photos: list[Path], path: Path, frames_per_photo: int = 3, fps: float = 10.0,
               size: tuple[int, int] = FRAME_SIZE) -> Path:
    """An MJPG .avi of the photos, each shown for `frames_per_photo` frames (OpenCV's VideoWriter)."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, size)
    if not writer.isOpened():
        raise RuntimeError(f"OpenCV cannot write {path}")
    try:
        for photo in photos:
            frame = cv2.cvtColor(fit_frame(read_image_file(str(photo)), size), cv2.COLOR_RGB2BGR)
            for _ in range(frames_per_photo):
                writer.write(frame)
    finally:
        writer.release()
    return path


def read_frames(path: Path):
    """Every frame of a clip, as RGB arrays."""
    capture = cv2.VideoCapture(str(path))
    try:
        while True:
            ok, frame = capture.read()
            if not ok:
                return
            yield cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
    finally:
        capture.release()
