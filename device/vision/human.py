"""Human check: is a detector candidate a human face, or an animal's (or a face-like thing)?

YuNet and BlazeFace both fire on dogs and cats that look at the camera (README "Detection"). SFace, the
embedder, was trained on human faces only; what it makes of an aligned crop separates the two: a logistic
regression on its output (the unit vector and the log of its length before normalisation) plus the two
detectors' scores gives the probability that the candidate is a human face. The weights are fitted by
tools/fit_human_check.py and live in models/manifest.toml under [sface.human_check] with their provenance.

The embedding computed here is the face's recognition embedding too (same aligned crop, same model), so
a caller that embeds every face pays nothing extra; a caller that only detects pays one SFace run per face.
"""
from __future__ import annotations

import numpy as np

from ..errors import ModelError
from .align import Aligner
from .embedder import SFaceEmbedder
from .face import Face


def human_features(raw_embedding: np.ndarray, detector_score: float, check_score: float) -> np.ndarray:
    """The classifier's input: SFace's unit vector (128), log of its raw length, YuNet's and BlazeFace's scores."""
    raw = np.asarray(raw_embedding, dtype=np.float64).reshape(-1)
    norm = max(float(np.linalg.norm(raw)), 1e-12)
    return np.concatenate([raw / norm, [np.log(norm), float(detector_score), float(check_score)]])


class HumanCheck:
    def __init__(self, params: dict, embedder: SFaceEmbedder, aligner: Aligner | None = None):
        if not params or "weights" not in params:
            raise ModelError("models/manifest.toml has no [sface.human_check]: fit it with "
                             "tools/fit_human_check.py, or set detector.human_check = false")
        self.weights = np.asarray(params["weights"], dtype=np.float64)
        self.bias = float(params["bias"])
        self.mean = np.asarray(params["mean"], dtype=np.float64)
        self.scale = np.asarray(params["scale"], dtype=np.float64)
        if not len(self.weights) == len(self.mean) == len(self.scale):
            raise ModelError("[sface.human_check] weights, mean and scale differ in length")
        self.embedder = embedder
        self.aligner = aligner or Aligner()

    def probability(self, features: np.ndarray) -> float:
        z = float(((features - self.mean) / self.scale) @ self.weights + self.bias)
        return float(1.0 / (1.0 + np.exp(-np.clip(z, -60.0, 60.0))))

    def score(self, image_rgb: np.ndarray, face: Face) -> float:
        """Probability that `face` is a human face; fills the face's aligned crop and embedding on the way."""
        if face.aligned is None:
            face.aligned = self.aligner.align(image_rgb, face)
        raw = self.embedder.embed_raw(face.aligned)
        face.embedding = self.embedder.from_raw(raw, face.aligned)
        check = face.check_score if face.check_score is not None else 0.0
        face.human_score = self.probability(human_features(raw, face.score, check))
        return face.human_score
