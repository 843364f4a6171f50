"""SFace embedder: aligned 112x112 RGB face -> L2-normalised 128-d vector.

With `flip`, the vector is the mean of the face's and its mirror image's unit vectors, L2-normalised again
(test-time augmentation: one more network run per face). Flipped vectors differ from plain ones, so the flip is
part of the embedder's identity: its precision reads e.g. "dynamic+flip". So is the alignment's eye source
(`eyes="mesh"`, vision/align.py): "dynamic+mesh-eyes", or "dynamic+flip+mesh-eyes" with both.
"""
from __future__ import annotations

import numpy as np

from .manifest import Manifest
from .runtime import TFLiteModel


FLIP_SUFFIX = "+flip"
MESH_EYES_SUFFIX = "+mesh-eyes"


class SFaceEmbedder:
    name = "sface"

    def __init__(self, manifest: Manifest, precision: str = "", threads: int = 2, flip: bool = False,
                 eyes: str = "detector"):
        self.manifest = manifest
        self.requested_precision = precision
        self.threads = threads
        self.flip = flip
        self.eyes = eyes  # where the crops' eye points come from (the aligner's): part of the identity
        self.model: TFLiteModel | None = None

    def prepare(self) -> "SFaceEmbedder":
        if self.model is None:
            self.model = TFLiteModel(self.manifest.variant("sface", self.requested_precision), self.threads)
        return self

    @property
    def identity(self) -> dict:
        """What produced the vectors: stores record it so that vectors of different models never mix."""
        variant = self.prepare().model.variant
        precision = (variant.precision + (FLIP_SUFFIX if self.flip else "")
                     + (MESH_EYES_SUFFIX if self.eyes == "mesh" else ""))
        return {"model": variant.model, "precision": precision, "sha256": variant.sha256}

    def embed(self, aligned_rgb: np.ndarray) -> np.ndarray:
        """128-d unit vector of one aligned face (RGB uint8, 112x112); normalisation is inside the graph."""
        return self.from_raw(self.embed_raw(aligned_rgb), aligned_rgb)

    def from_raw(self, raw: np.ndarray, aligned_rgb: np.ndarray) -> np.ndarray:
        """The face's unit vector given the network's output for the crop (with `flip`, the mirror is run too)."""
        vector = l2_normalise(raw)
        if self.flip:
            vector = l2_normalise(vector + l2_normalise(self.embed_raw(np.ascontiguousarray(aligned_rgb[:, ::-1]))))
        return vector

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

