"""The Face record: one detected face and what each later stage adds to it."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass
class Face:
    # Detector: box [x, y, w, h] and 5 landmarks (subject's right eye, left eye, nose, right and left mouth
    # corner) in pixels of the decoded image; detector confidence in [0, 1].
    box: np.ndarray
    landmarks: np.ndarray
    score: float
    # Face check (second opinion on the detector's candidate), when it ran.
    check_score: float | None = None
    # Alignment and embedding.
    aligned: np.ndarray | None = None  # 112x112x3 RGB uint8
    embedding: np.ndarray | None = None  # L2-normalised float32
    # Optional stages, filled only when a caller asks for them.
    mesh: Any = None  # vision.mesh.MeshResult
    quality: Any = None  # vision.quality.Quality
    age: float | None = None
    gender: str | None = None
    gender_confidence: float | None = None  # probability of `gender`, 0.5-1
    liveness: dict | None = None  # {"score": F or None, "live": bool, "codes": [...]}

    @property
    def width(self) -> float:
        return float(self.box[2])

    @property
    def area(self) -> float:
        return float(self.box[2] * self.box[3])

    @property
    def eye_distance(self) -> float:
        return float(np.linalg.norm(self.landmarks[1] - self.landmarks[0]))
