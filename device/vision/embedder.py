"""SFace embedder: aligned 112x112 RGB face -> L2-normalised 128-d vector."""
from __future__ import annotations

import numpy as np

from .manifest import Manifest
from .runtime import TFLiteModel


class SFaceEmbedder:
    name = "sface"

    def __init__(self, manifest: Manifest, precision: str = "", threads: int = 2):
        self.manifest = manifest
        self.requested_precision = precision
        self.threads = threads
        self.model: TFLiteModel | None = None

    def prepare(self) -> "SFaceEmbedder":
        if self.model is None:
            self.model = TFLiteModel(self.manifest.variant("sface", self.requested_precision), self.threads)
        return self

    @property
    def identity(self) -> dict:
        """What produced the vectors: stores record it so that vectors of different models never mix."""
        variant = self.prepare().model.variant
        return {"model": variant.model, "precision": variant.precision, "sha256": variant.sha256}

    def embed(self, aligned_rgb: np.ndarray) -> np.ndarray:
        """128-d unit vector of one aligned face (RGB uint8, 112x112); normalisation is inside the graph."""
        return l2_normalise(self.embed_raw(aligned_rgb))

    def embed_raw(self, aligned_rgb: np.ndarray) -> np.ndarray:
        """The network's 128-d output before L2 normalisation (its length says something about the input:
        the human check uses it)."""
        self.prepare()
        (raw,) = self.model.run(aligned_rgb.astype(np.float32)[None])[:1]
        return raw.reshape(-1).astype(np.float32)


def l2_normalise(vector: np.ndarray) -> np.ndarray:
    vector = np.asarray(vector, dtype=np.float32)
    norm = float(np.linalg.norm(vector))
    return vector / norm if norm > 0 else vector


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.dot(l2_normalise(a), l2_normalise(b)))
