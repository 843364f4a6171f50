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


def write_photo_attack(photo: Path, path: Path, seconds: float = 3.0, fps: float = 15.0, screen: bool = False,
                       size: tuple[int, int] = FRAME_SIZE) -> Path:
    """A "photo attack": the still photo held to the camera, moved (a few % of the frame) and scaled (+-6%)
    smoothly over `seconds`, with a little sensor noise. With `screen`, the photo is shown on a simulated phone
    screen: a dark bezel, a moiré pattern (the screen's pixel grid beating with the camera's) and a glare
    highlight that drifts across the screen as the phone moves against the light."""
    rng = np.random.default_rng(7)
    width, height = size
    base = fit_frame(read_image_file(str(photo)), (int(width * 0.7), int(height * 0.7)))
    if screen:
        bh, bw = base.shape[:2]
        yy, xx = np.mgrid[0:bh, 0:bw].astype(np.float32)
        moire = 10.0 * np.sin(2 * np.pi * (xx * 0.23 + yy * 0.07)) * np.sin(2 * np.pi * yy * 0.19)
        base = np.clip(base.astype(np.float32) * 0.92 + moire[..., None], 0, 255).astype(np.uint8)
        base = cv2.copyMakeBorder(base, 14, 14, 10, 10, cv2.BORDER_CONSTANT, value=(12, 12, 12))
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, size)
    if not writer.isOpened():
        raise RuntimeError(f"OpenCV cannot write {path}")
    frames = int(round(seconds * fps))
    try:
        for index in range(frames):
            phase = 2 * np.pi * index / max(frames - 1, 1)
            scale = 1.0 + 0.06 * np.sin(phase)
            dx, dy = 0.04 * width * np.sin(phase * 0.7), 0.03 * height * np.cos(phase * 0.9)
            matrix = cv2.getRotationMatrix2D((base.shape[1] / 2, base.shape[0] / 2), 2.0 * np.sin(phase), scale)
            matrix[0, 2] += (width - base.shape[1]) / 2 + dx
            matrix[1, 2] += (height - base.shape[0]) / 2 + dy
            frame = cv2.warpAffine(base, matrix, size, borderValue=(70, 80, 90)).astype(np.float32)
            if screen:
                gx, gy = width * (0.3 + 0.4 * index / frames), height * 0.35
                yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
                glare = 90.0 * np.exp(-(((xx - gx) / (0.12 * width)) ** 2 + ((yy - gy) / (0.2 * height)) ** 2))
                frame += glare[..., None]
            frame += rng.normal(0, 2.0, frame.shape)
            writer.write(cv2.cvtColor(np.clip(frame, 0, 255).astype(np.uint8), cv2.COLOR_RGB2BGR))
    finally:
        writer.release()
    return path
