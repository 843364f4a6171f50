"""Calibrated match scores: cosine similarity -> a 0..1 score with a stated false-accept rate.

The map is monotonic and piecewise linear through knots fitted by `tools/evaluate.py calibrate` on
different-person pairs and stored in the manifest next to the embedder. By construction score 0.5, 0.6, 0.7,
0.8 and 0.9 sit at per-pair false-accept rates of about 1e-2, 1e-3, 1e-4, 1e-5 and 1e-6: each 0.1 of score is
ten times fewer false accepts. See README "Scores".
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import ModelError

# Score given to the cosine at each per-pair false-accept rate: score = 0.3 + 0.1 * -log10(FAR) (0.4..0.9).
FAR_KNOTS = (1e-1, 1e-2, 1e-3, 1e-4, 1e-5, 1e-6)


def score_for_far(far: float) -> float:
    return 0.3 + 0.1 * -np.log10(far)


@dataclass(frozen=True)
class Calibration:
    cosines: tuple[float, ...]  # knots, increasing
    scores: tuple[float, ...]

    @classmethod
    def from_manifest(cls, entry: dict) -> "Calibration":
        knots_cos, knots_score = entry.get("cosine"), entry.get("score")
        if not knots_cos or not knots_score or len(knots_cos) != len(knots_score):
            raise ModelError("the embedder has no score calibration in the manifest: run tools/evaluate.py "
                             "calibrate")
        if np.any(np.diff(knots_cos) <= 0) or np.any(np.diff(knots_score) < 0):
            raise ModelError("the manifest's score calibration is not monotonic")
        return cls(tuple(float(c) for c in knots_cos), tuple(float(s) for s in knots_score))

    def score(self, cosine: float | np.ndarray) -> float | np.ndarray:
        result = np.interp(cosine, self.cosines, self.scores)
        return float(result) if np.ndim(result) == 0 else result

    def cosine_for(self, score: float) -> float:
        """The cosine at which the calibrated score equals `score` (the inverse map, for thresholds)."""
        return float(np.interp(score, self.scores, self.cosines))
