"""MediaPipe's 468-point face mesh: eye openness, head pose, and mouth corners for BlazeFace faces.

The mesh runs on a square crop around a face, rotated so that the eyes are level (as MediaPipe does), and
its points are mapped back to image pixels. It is computed only when a caller asks for it.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .manifest import Manifest
from .runtime import TFLiteModel

INPUT = 192
ROI_SCALE = 1.5  # crop side relative to the face's size, as MediaPipe's face_detection_to_roi
REFINE_DEGREES = 5.0
MAX_RUNS = 3

# Mesh indices (MediaPipe topology). "Right" is the subject's right (the image's left on a frontal face).
RIGHT_EYE = {"outer": 33, "inner": 133, "upper": (160, 158), "lower": (144, 153)}
LEFT_EYE = {"outer": 263, "inner": 362, "upper": (385, 387), "lower": (380, 373)}
MOUTH_RIGHT, MOUTH_LEFT = 61, 291
NOSE_TIP = 1
CHEEK_RIGHT, CHEEK_LEFT = 234, 454
FOREHEAD, CHIN = 10, 152

# Eye aspect ratio (lid gap over eye width) of an open and of a closed eye: eyes_open maps this span to 0..1.
EAR_CLOSED, EAR_OPEN = 0.08, 0.22
# The mesh's forehead-chin line leans back on a level face; measured on frontal photos of ../shared/data
# (see README "Head pose"), this offset makes pitch 0 for a level face.
PITCH_OFFSET_DEG = 5.4


@dataclass
class MeshResult:
    points: np.ndarray  # 468 x 3: x, y in image pixels, z in the same scale (relative depth)
    presence: float  # the model's face-presence probability for the crop

    @property
    def mouth_corners(self) -> np.ndarray:
        return self.points[[MOUTH_RIGHT, MOUTH_LEFT], :2]

    def eye_centres(self) -> np.ndarray:
        """2 x 2: the subject's right then left eye centre (mean of each eye's corners), image pixels."""
        return np.vstack([_eye_centre(self.points, RIGHT_EYE), _eye_centre(self.points, LEFT_EYE)])

    def eye_openness(self) -> float:
        """0 (closed) .. 1 (open): the less open of the two eyes."""
        return float(min(_openness(self.points, RIGHT_EYE), _openness(self.points, LEFT_EYE)))

    def pose(self) -> dict:
        """Head pose in degrees. yaw > 0: the face turns towards the image's right (the subject's left);
        pitch > 0: the face tilts up; roll > 0: the head leans so its eye line rises to the image's right
        (counter-clockwise on the screen)."""
        p = self.points
        across = p[CHEEK_LEFT] - p[CHEEK_RIGHT]
        down = p[CHIN] - p[FOREHEAD]
        yaw = np.degrees(np.arctan2(across[2], np.hypot(across[0], across[1])))
        pitch = np.degrees(np.arctan2(down[2], np.hypot(down[0], down[1]))) - PITCH_OFFSET_DEG
        eyes = _eye_centre(p, LEFT_EYE) - _eye_centre(p, RIGHT_EYE)
        roll = np.degrees(np.arctan2(-eyes[1], eyes[0]))
        return {"yaw": round(float(yaw), 1), "pitch": round(float(pitch), 1), "roll": round(float(roll), 1)}


def _eye_centre(points: np.ndarray, eye: dict) -> np.ndarray:
    return points[[eye["outer"], eye["inner"]], :2].mean(axis=0)


def _openness(points: np.ndarray, eye: dict) -> float:
    width = np.linalg.norm(points[eye["outer"], :2] - points[eye["inner"], :2])
    gaps = [np.linalg.norm(points[u, :2] - points[d, :2]) for u, d in zip(eye["upper"], eye["lower"])]
    ratio = float(np.mean(gaps) / max(width, 1e-6))
    return float(np.clip((ratio - EAR_CLOSED) / (EAR_OPEN - EAR_CLOSED), 0.0, 1.0))


class FaceMesh:
    def __init__(self, manifest: Manifest, threads: int = 2):
        self.manifest = manifest
        self.threads = threads
        self.model: TFLiteModel | None = None

    def prepare(self) -> "FaceMesh":
        if self.model is None:
            self.model = TFLiteModel(self.manifest.variant("face_mesh"), self.threads)
        return self

    def of(self, image_rgb: np.ndarray, face) -> MeshResult:
        """The mesh of a detected face, computed once and kept on it (face.mesh). The face check's eyes set the
        crop's rotation where there are: they follow a tilted head better than YuNet's."""
        if face.mesh is None:
            eyes = face.eyes
            face.mesh = self.run(image_rgb, face.box, eyes[0], eyes[1])
        return face.mesh

    def run(self, image_rgb: np.ndarray, box: np.ndarray, eye_right: np.ndarray, eye_left: np.ndarray
            ) -> MeshResult:
        """Mesh of the face in `box` ([x, y, w, h]); the eyes (image pixels) set the crop's rotation.

        Give the face check's (BlazeFace's) eyes where there are: YuNet's landmarks understate a strong head
        tilt (~14 degrees reported for a face rolled by 60). When the mesh's own eye line disagrees with the
        crop by more than REFINE_DEGREES, the mesh runs again on a crop levelled by its own eyes, as
        MediaPipe's tracker re-derives its ROI, at most MAX_RUNS times in all.
        """
        self.prepare()
        x, y, w, h = (float(v) for v in box)
        centre = np.array([x + w / 2, y + h / 2])
        side = max(w, h) * ROI_SCALE
        angle = _angle(eye_right, eye_left)
        for _ in range(MAX_RUNS):
            result = self._run_crop(image_rgb, centre, side, angle)
            mesh_angle = _angle(_eye_centre(result.points, RIGHT_EYE), _eye_centre(result.points, LEFT_EYE))
            if abs(mesh_angle - angle) <= REFINE_DEGREES:
                break
            angle = mesh_angle
        return result

    def _run_crop(self, image_rgb: np.ndarray, centre: np.ndarray, side: float, angle: float) -> MeshResult:
        # Image -> crop: rotate about the centre to level the eyes, scale the ROI to INPUT, centre it.
        matrix = cv2.getRotationMatrix2D((float(centre[0]), float(centre[1])), float(angle), INPUT / side)
        matrix[:, 2] += INPUT / 2 - centre
        crop = cv2.warpAffine(image_rgb, matrix, (INPUT, INPUT), flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_REPLICATE)
        raw, presence = self.model.run((crop.astype(np.float32) / 255.0)[None])
        points = raw.reshape(-1, 3)[:468].astype(np.float64)
        inverse = cv2.invertAffineTransform(matrix)
        xy = points[:, :2] @ inverse[:, :2].T + inverse[:, 2]
        z = points[:, 2] * (side / INPUT)
        return MeshResult(points=np.column_stack([xy, z]), presence=float(1 / (1 + np.exp(-presence.ravel()[0]))))


def _angle(eye_right: np.ndarray, eye_left: np.ndarray) -> float:
    """Angle of the eye line in degrees, in OpenCV's rotation convention (positive = counter-clockwise)."""
    return float(np.degrees(np.arctan2(eye_left[1] - eye_right[1], eye_left[0] - eye_right[0])))
