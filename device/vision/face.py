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
    # Face check (second opinion on the detector's candidate), when it ran: BlazeFace's score and its two eye
    # points (subject's right, left; image pixels). BlazeFace's eyes follow a tilted head where YuNet's do not
    # (README "Head pose"), so roll and the mesh's crop come from them.
    check_score: float | None = None
    check_eyes: np.ndarray | None = None
    # Human check (human face, not an animal's), when it ran: probability in [0, 1].
    human_score: float | None = None
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
    def eyes(self) -> np.ndarray:
        """The eye points that best follow the head's roll: the face check's, else the detector's."""
        return self.check_eyes if self.check_eyes is not None else self.landmarks[:2]

    @property
    def eye_distance(self) -> float:
        return float(np.linalg.norm(self.landmarks[1] - self.landmarks[0]))
