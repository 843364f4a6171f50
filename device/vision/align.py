"""Five-point similarity alignment to the 112x112 template the SFace/ArcFace family was trained on.

`Aligner` says where the five points come from: the detector's landmarks (the default), or with
`embedder.eyes = "mesh"` the face mesh's eye centres in place of the detector's eyes (nose and mouth corners
stay the detector's). The pipeline and the detector's human check share one aligner, so a face is aligned
once, the same way, whichever stage aligns it first.
"""
from __future__ import annotations

import cv2
import numpy as np

# The standard 112x112 ArcFace template (also OpenCV FaceRecognizerSF.alignCrop's), in faced's landmark
# order: subject's right eye (image left), left eye, nose tip, right mouth corner, left mouth corner.
TEMPLATE_112 = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]],
    dtype=np.float64,
)
ALIGNED_SIZE = 112


def similarity_transform(src: np.ndarray, dst: np.ndarray = TEMPLATE_112) -> np.ndarray:
    """2x3 matrix of the least-squares similarity (rotation, uniform scale, shift) mapping src onto dst.

    Umeyama's closed form: exact and deterministic, unlike a RANSAC estimate.
    """
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    src_mean, dst_mean = src.mean(axis=0), dst.mean(axis=0)
    src_c, dst_c = src - src_mean, dst - dst_mean
    cov = dst_c.T @ src_c / len(src)
    u, s, vt = np.linalg.svd(cov)
    d = np.eye(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        d[1, 1] = -1.0
    rotation = u @ d @ vt
    src_var = (src_c**2).sum() / len(src)
    scale = float(np.trace(np.diag(s) @ d) / src_var) if src_var > 0 else 1.0
    shift = dst_mean - scale * rotation @ src_mean
    return np.hstack([scale * rotation, shift[:, None]])


EYE_SOURCES = ("detector", "mesh")
# Below this face-presence probability the mesh's points are not trusted: the detector's eyes are used.
MIN_MESH_PRESENCE = 0.5


class Aligner:
    def __init__(self, eyes: str = "detector", mesh=None):
        """`eyes`: "detector" or "mesh"; `mesh`: the pipeline's FaceMesh (needed for "mesh")."""
        if eyes not in EYE_SOURCES or (eyes == "mesh" and mesh is None):
            raise ValueError(f"eyes must be one of {EYE_SOURCES}, and 'mesh' needs a face mesh")
        self.eyes = eyes
        self.mesh = mesh

    def points(self, image: np.ndarray, face) -> np.ndarray:
        """The five points the crop is aligned on (runs the mesh once per face when eyes come from it)."""
        landmarks = np.asarray(face.landmarks, dtype=np.float64).reshape(5, 2)
        if self.eyes == "detector":
            return landmarks
        mesh = self.mesh.of(image, face)
        if mesh.presence < MIN_MESH_PRESENCE:
            return landmarks
        return np.vstack([mesh.eye_centres(), landmarks[2:]])

    def align(self, image: np.ndarray, face) -> np.ndarray:
        """The face's 112x112 RGB crop."""
        return align_face(image, self.points(image, face))


def align_face(image: np.ndarray, landmarks: np.ndarray, size: int = ALIGNED_SIZE) -> np.ndarray:
    """Warp the face given by 5 landmarks (x, y) in `image` to a size x size crop on the template."""
    template = TEMPLATE_112 * (size / ALIGNED_SIZE)
    matrix = similarity_transform(np.asarray(landmarks, dtype=np.float64).reshape(5, 2), template)
    return cv2.warpAffine(image, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
