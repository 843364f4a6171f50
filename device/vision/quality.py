"""The one place that decides the quality codes and the 0-100 quality score of a face.

Every caller (CLI, HTTP contracts, enrolment, camera) maps these codes to its own words. Codes:

  FACE_NOT_FOUND        no face above the detector threshold (image level)
  TOO_MANY_FACES        more than one face where one is required (image level)
  FACE_TOO_SMALL        eye distance under min_eye_distance px (SFace's template has ~35 px between the eyes)
  FACE_TOO_CLOSE        face wider than max_face_fraction of the image
  FACE_CLOSE_TO_BORDER  box within border_margin (fraction of the image side) of an edge
  FACE_CROPPED          a landmark, or more than max_box_outside of the box, outside the image
  FACE_ANGLE_TOO_LARGE  |yaw| > max_yaw or |pitch| > max_pitch (face mesh)
  EYES_CLOSED           eye openness under min_eyes_open (face mesh)
  FACE_IS_OCCLUDED      best effort: the face mesh's own face-presence score under min_mesh_presence; it
                        catches hands, masks and objects over most of the face, not sunglasses or a scarf
  FACE_LOW_CONFIDENCE   the detector's score under liveness.min_detector_score (liveness is not trusted)
  FACE_BOX_DEGENERATE   a box whose height/width is implausible for a face (liveness is not trusted)
  FACE_NOT_LIVE         passive liveness score under liveness.threshold

The mesh-based codes are decided only when the mesh ran (callers ask for it); the others always are.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ..config import LivenessConfig, QualityConfig
from .face import Face
from .mesh import MeshResult

FACE_NOT_FOUND = "FACE_NOT_FOUND"
TOO_MANY_FACES = "TOO_MANY_FACES"
FACE_TOO_SMALL = "FACE_TOO_SMALL"
FACE_TOO_CLOSE = "FACE_TOO_CLOSE"
FACE_CLOSE_TO_BORDER = "FACE_CLOSE_TO_BORDER"
FACE_CROPPED = "FACE_CROPPED"
FACE_ANGLE_TOO_LARGE = "FACE_ANGLE_TOO_LARGE"
EYES_CLOSED = "EYES_CLOSED"
FACE_IS_OCCLUDED = "FACE_IS_OCCLUDED"
FACE_LOW_CONFIDENCE = "FACE_LOW_CONFIDENCE"
FACE_BOX_DEGENERATE = "FACE_BOX_DEGENERATE"
FACE_NOT_LIVE = "FACE_NOT_LIVE"

# Quality codes under which a passive liveness score means nothing: the crop would lack the face's
# surroundings (cropped, too close), hold too few pixels (too small), or show the face from an angle or with
# closed eyes that the anti-spoofing models were not trained on.
LIVENESS_GATES = (FACE_CROPPED, FACE_TOO_SMALL, FACE_TOO_CLOSE, FACE_ANGLE_TOO_LARGE, EYES_CLOSED)

# Order in which codes are reported: the most fundamental problem first.
CODE_ORDER = (FACE_NOT_FOUND, TOO_MANY_FACES, FACE_CROPPED, FACE_TOO_SMALL, FACE_TOO_CLOSE,
              FACE_CLOSE_TO_BORDER, FACE_ANGLE_TOO_LARGE, FACE_IS_OCCLUDED, EYES_CLOSED, FACE_LOW_CONFIDENCE,
              FACE_BOX_DEGENERATE, FACE_NOT_LIVE)


@dataclass
class Quality:
    score: int  # 0-100
    codes: list[str]
    factors: dict[str, float]  # what the score is made of, each 0..1


def image_codes(faces: list[Face], one_face_required: bool) -> list[str]:
    """Codes about the image as a whole (how many faces)."""
    if not faces:
        return [FACE_NOT_FOUND]
    if one_face_required and len(faces) > 1:
        return [TOO_MANY_FACES]
    return []


def assess(face: Face, image_shape: tuple[int, ...], config: QualityConfig,
           mesh: MeshResult | None = None, aligned: np.ndarray | None = None) -> Quality:
    """Quality codes and score of one face. `aligned` (the 112x112 crop) adds sharpness and exposure."""
    height, width = image_shape[:2]
    codes = set()
    x, y, w, h = (float(v) for v in face.box)
    if face.eye_distance < config.min_eye_distance:
        codes.add(FACE_TOO_SMALL)
    if w > config.max_face_fraction * width:
        codes.add(FACE_TOO_CLOSE)
    margin_x, margin_y = config.border_margin * width, config.border_margin * height
    if x < margin_x or y < margin_y or x + w > width - margin_x or y + h > height - margin_y:
        codes.add(FACE_CLOSE_TO_BORDER)
    inside_w = max(0.0, min(x + w, width) - max(x, 0.0))
    inside_h = max(0.0, min(y + h, height) - max(y, 0.0))
    outside = 1.0 - (inside_w * inside_h) / max(w * h, 1e-9)
    marks = face.landmarks
    marks_outside = np.any((marks[:, 0] < 0) | (marks[:, 1] < 0) | (marks[:, 0] >= width) | (marks[:, 1] >= height))
    if marks_outside or outside > config.max_box_outside:
        codes.add(FACE_CROPPED)
    pose = mesh.pose() if mesh is not None else landmark_pose(face)
    if mesh is not None:
        if abs(pose["yaw"]) > config.max_yaw or abs(pose["pitch"]) > config.max_pitch:
            codes.add(FACE_ANGLE_TOO_LARGE)
        if mesh.eye_openness() < config.min_eyes_open:
            codes.add(EYES_CLOSED)
        if mesh.presence < config.min_mesh_presence:
            codes.add(FACE_IS_OCCLUDED)
    factors = score_factors(face, pose, outside, aligned)
    score = 100.0 * float(np.prod([max(v, 0.02) ** WEIGHTS[k] for k, v in factors.items()]))
    return Quality(score=int(round(score)), codes=[c for c in CODE_ORDER if c in codes],
                   factors={k: round(v, 3) for k, v in factors.items()})


# Weights of the factors in the score (a weighted geometric mean: one bad factor pulls the score down).
WEIGHTS = {"size": 0.25, "pose": 0.3, "sharpness": 0.2, "exposure": 0.1, "visible": 0.15}


def score_factors(face: Face, pose: dict, outside: float, aligned: np.ndarray | None) -> dict[str, float]:
    """Each factor 0..1, named by what it measures.

    size       eye distance against SFace's template (35 px); smaller faces are upsampled and lose detail
    pose       frontalness: 1 at yaw = pitch = 0, 0 at 60 degrees of yaw or 50 of pitch
    sharpness  variance of the Laplacian of the aligned crop (blur, heavy compression)
    exposure   mean and spread of the aligned crop's brightness (too dark, too bright, flat)
    visible    share of the box inside the image
    """
    factors = {
        "size": float(np.clip(face.eye_distance / 35.0, 0.0, 1.0)),
        "pose": float(np.clip(1.0 - (pose["yaw"] / 60.0) ** 2 - (pose["pitch"] / 50.0) ** 2, 0.0, 1.0)),
        "visible": float(np.clip(1.0 - outside, 0.0, 1.0)),
    }
    if aligned is not None:
        grey = cv2.cvtColor(aligned, cv2.COLOR_RGB2GRAY)
        centre = grey[16:104, 16:96]  # the face itself, not the background at the crop's corners
        sharpness = float(cv2.Laplacian(centre, cv2.CV_64F).var())
        # log scale: 20 (a face blurred to mush) -> 0, 1000 (a crisp photo) -> 1
        factors["sharpness"] = float(np.clip((np.log10(max(sharpness, 1.0)) - 1.3) / 1.7, 0.0, 1.0))
        mean, spread = float(centre.mean()) / 255.0, float(centre.std()) / 255.0
        factors["exposure"] = float(np.clip(1.0 - abs(mean - 0.5) / 0.4, 0.0, 1.0) * np.clip(spread / 0.12, 0, 1))
    return factors


def landmark_pose(face: Face) -> dict:
    """Rough yaw and roll without the mesh. Yaw: the nose's offset from the eyes' midline (5 landmarks).
    Roll: the eye line of the face check (BlazeFace) where it ran, since YuNet's eye line understates a tilt
    (about half of it up to 30 degrees, ~15 at 60); README "Head pose" has the measured errors."""
    right_eye, left_eye, nose, mouth_right, mouth_left = face.landmarks
    eyes = left_eye - right_eye
    distance = max(float(np.linalg.norm(eyes)), 1e-6)
    check_right, check_left = face.eyes
    roll = float(np.degrees(np.arctan2(-(check_left[1] - check_right[1]), check_left[0] - check_right[0])))
    axis = eyes / distance
    midline = (right_eye + left_eye + mouth_right + mouth_left) / 4
    offset = float(np.dot(nose - midline, axis)) / distance  # about +-0.5 at a profile
    yaw = float(np.degrees(np.arcsin(np.clip(offset * 2.0, -1.0, 1.0))))
    return {"yaw": round(yaw, 1), "pitch": 0.0, "roll": round(roll, 1)}


def liveness_gates(face: Face, quality: Quality, config: LivenessConfig) -> list[str]:
    """Why a passive liveness score of this face would not be trusted (empty: it can be scored)."""
    codes = {c for c in quality.codes if c in LIVENESS_GATES}
    if face.score < config.min_detector_score:
        codes.add(FACE_LOW_CONFIDENCE)
    width, height = float(face.box[2]), float(face.box[3])
    if width <= 0 or height <= 0 or not config.min_box_aspect <= height / width <= config.max_box_aspect:
        codes.add(FACE_BOX_DEGENERATE)
    return [c for c in CODE_ORDER if c in codes]
