"""Active liveness: does a tracked face move the way a living face does, over time?

A printed photo or a phone screen held to a camera can be moved, turned a little and scaled, but what it shows
stays one rigid picture: the eyes do not blink, the head does not turn inside the picture, the mouth and cheeks
do not change shape, and the face's own texture does not change once the picture's motion is taken out. The
camera loop feeds each frame of an undecided track (its face mesh, taken by the quality stage, and its aligned
112x112 crop) to one MotionEvidence per track; it measures, over the frames seen so far:

- blink: the range of the mesh's eye openness (a blink drops it from ~1 to near 0 for a frame or two);
- pose: the spread (10th to 90th percentile) of the head's yaw and pitch inside the picture;
- deformation: the mesh's shape change after removing translation, scale and rotation (Procrustes), as a
  fraction of the eye distance: talking, smiling and turning deform it, moving a flat picture does not;
- texture: the mean change of the aligned crop between frames (grey levels), which alignment makes blind to
  the picture's motion.

Each measure is compared with a threshold (MotionThresholds, measured: README "Active liveness"), and the
track is live as soon as one of blink, pose or deformation passes. Texture is measured and reported but is
not a sign on its own: a moving glare and the moiré of a screen change the crop as much as a real face does
(measured 4.7-10 grey levels on photo attacks, 1.2-18 on the real clip). No I/O here: the camera loop owns the per-track objects and the decision (device/camera/tracker.py).
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import cv2
import numpy as np

MAX_FRAMES = 120  # observations kept per track (a few seconds at camera rates)


@dataclass(frozen=True)
class MotionThresholds:
    blink: float = 0.45  # eye openness range (0..1)
    pose_deg: float = 8.0  # yaw or pitch spread (running median of 5 frames), p10..p90, degrees
    deformation: float = 0.075  # p90 Procrustes residual (RMS) / eye distance
    window_s: float = 2.0  # a track seen this long without passing is not live
    min_frames: int = 6  # frames before any verdict


class MotionEvidence:
    """Per-track accumulator; `verdict()` is None while undecided, else {"live", "measures", ...}."""

    def __init__(self, thresholds: MotionThresholds = MotionThresholds()):
        self.thresholds = thresholds
        self.times: deque = deque(maxlen=MAX_FRAMES)
        self.openness: deque = deque(maxlen=MAX_FRAMES)
        self.yaw: deque = deque(maxlen=MAX_FRAMES)
        self.pitch: deque = deque(maxlen=MAX_FRAMES)
        self.shapes: deque = deque(maxlen=MAX_FRAMES)
        self.texture: deque = deque(maxlen=MAX_FRAMES)
        self._last_crop: np.ndarray | None = None
        self.first_ts: float | None = None

    def add(self, ts: float, mesh, aligned: np.ndarray | None) -> None:
        """One frame of the track: `mesh` a vision.mesh.MeshResult (None when it did not run)."""
        if mesh is None:
            return
        if self.first_ts is None:
            self.first_ts = ts
        self.times.append(ts)
        self.openness.append(mesh.eye_openness())
        pose = mesh.pose()
        self.yaw.append(pose["yaw"])
        self.pitch.append(pose["pitch"])
        self.shapes.append(_normalised_shape(np.asarray(mesh.points, dtype=np.float64)[:, :2]))
        if aligned is not None:
            crop = cv2.GaussianBlur(cv2.cvtColor(aligned, cv2.COLOR_RGB2GRAY), (5, 5), 0).astype(np.float32)
            if self._last_crop is not None:
                self.texture.append(float(np.mean(np.abs(crop - self._last_crop))))
            self._last_crop = crop

    def measures(self) -> dict:
        if not self.times:
            return {"frames": 0, "seconds": 0.0, "blink": 0.0, "pose_deg": 0.0, "deformation": 0.0, "texture": 0.0}
        pose = max(_spread(self.yaw), _spread(self.pitch))
        return {"frames": len(self.times), "seconds": round(self.times[-1] - self.first_ts, 2),
                "blink": round(float(max(self.openness) - min(self.openness)), 3), "pose_deg": round(pose, 2),
                "deformation": round(_deformation(list(self.shapes)), 4),
                "texture": round(float(np.median(self.texture)) if self.texture else 0.0, 2)}

    def verdict(self) -> dict | None:
        """{"live": True} once natural motion is seen; {"live": False} once window_s passed without it; None
        before (too few frames or too little time)."""
        t = self.thresholds
        m = self.measures()
        if m["frames"] < t.min_frames:
            return None
        signs = []
        if m["blink"] >= t.blink:
            signs.append("blink")
        if m["pose_deg"] >= t.pose_deg:
            signs.append("pose")
        if m["deformation"] >= t.deformation:
            signs.append("deformation")
        if signs:
            return {"live": True, "signs": signs, **m}
        if m["seconds"] >= t.window_s:
            return {"live": False, "signs": [], **m}
        return None


def _spread(values) -> float:
    """p10..p90 of the series after a running median over SMOOTH frames: the mesh's pose estimate jitters by a few
    degrees from frame to frame on a still picture (measured up to 6 degrees p10..p90 raw on a moved photo),
    while a real head's turn lasts many frames."""
    series = np.asarray(values, dtype=np.float64)
    if len(series) < SMOOTH:
        return 0.0
    windows = np.lib.stride_tricks.sliding_window_view(series, SMOOTH)
    low, high = np.percentile(np.median(windows, axis=1), [10, 90])
    return float(high - low)


SMOOTH = 5


def _normalised_shape(points: np.ndarray) -> np.ndarray:
    """Mesh x, y without translation and scale (unit RMS radius)."""
    centred = points - points.mean(axis=0)
    return centred / max(float(np.sqrt((centred ** 2).sum(axis=1).mean())), 1e-9)


def _deformation(shapes: list[np.ndarray]) -> float:
    """p90 over frames of the RMS distance to the mean shape after rotating each shape onto it (orthogonal
    Procrustes), in units of the eye distance (~0.45 of the mesh's RMS radius; measured on the mesh template)."""
    if len(shapes) < 3:
        return 0.0
    reference = np.mean(shapes, axis=0)
    residuals = []
    for shape in shapes:
        u, _, vt = np.linalg.svd(shape.T @ reference)
        rotated = shape @ (u @ vt)
        residuals.append(float(np.sqrt(((rotated - reference) ** 2).sum(axis=1).mean())))
    return float(np.percentile(residuals, 90)) / EYE_DISTANCE_PER_RADIUS


EYE_DISTANCE_PER_RADIUS = 0.45
