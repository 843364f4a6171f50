"""The Face record: one detected face and what each later stage adds to it."""
from __future__ import annotations

from dataclasses import dataclass, field
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
    # Later stages (liveness, ...) may add results here by name.
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def width(self) -> float:
        return float(self.box[2])

    @property
    def area(self) -> float:
        return float(self.box[2] * self.box[3])

    @property
    def eye_distance(self) -> float:
        return float(np.linalg.norm(self.landmarks[1] - self.landmarks[0]))

    def to_dict(self, decimals: int = 2, pose: bool = False) -> dict:
        """The stable JSON form of `faced detect --json`: box, score, landmarks, then what later stages
        added (quality, age, gender; pose and eyes_open when `pose`)."""
        result = {
            "box": [round(float(v), decimals) for v in self.box],
            "score": round(float(self.score), 4),
            "landmarks": [[round(float(x), decimals), round(float(y), decimals)] for x, y in self.landmarks],
        }
        if self.quality is not None:
            result["quality"] = self.quality.to_dict()
        if self.age is not None:
            result["age"] = int(round(self.age))
        if self.gender is not None:
            result["gender"] = self.gender
        if self.liveness is not None:
            result["liveness"] = self.liveness
        if pose and self.mesh is not None:
            result["pose"] = self.mesh.pose()
            result["eyes_open"] = round(self.mesh.eye_openness(), 3)
        result.update(self.extra)
        return result
