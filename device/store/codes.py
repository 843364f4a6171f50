"""Each face's search code: the compact form of its embedding that the in-memory index scans."""
from __future__ import annotations

import numpy as np


def search_code(embedding: np.ndarray) -> bytes:
    """The face's 2-bit code for the in-memory search index, 32 bytes: 16 of sign bits (set where the value
    is positive), then 16 of magnitude bits (set on the half of the dimensions with the largest |value|)."""
    vector = np.asarray(embedding, dtype=np.float32).reshape(-1)
    magnitude = np.abs(vector)
    return np.packbits(vector > 0).tobytes() + np.packbits(magnitude > np.median(magnitude)).tobytes()
