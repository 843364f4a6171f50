"""Face records -> the pieces the contracts put in their JSON (crops, thumbnails, boxes, corner points).

Coordinates are pixels of the decoded image (EXIF orientation applied), origin top-left, y down.
"""
from __future__ import annotations

import base64
import math

import numpy as np

from ..imaging import encode_jpeg, encode_thumbnail
from ..vision.face import Face


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def crop_region(image: np.ndarray, face: Face) -> list[int]:
    """The face box clipped to the image, as whole pixels [x, y, width, height] (at least 1x1)."""
    height, width = image.shape[:2]
    x, y, w, h = (float(v) for v in face.box)
    left, top = int(max(0, math.floor(x))), int(max(0, math.floor(y)))
    right, bottom = int(min(width, math.ceil(x + w))), int(min(height, math.ceil(y + h)))
    left, top = min(left, width - 1), min(top, height - 1)
    return [left, top, max(1, right - left), max(1, bottom - top)]


def crop_jpeg(image: np.ndarray, face: Face) -> bytes:
    """The face box cut from the image (no margin), JPEG quality 90."""
    x, y, w, h = crop_region(image, face)
    return encode_jpeg(np.ascontiguousarray(image[y:y + h, x:x + w]))


def thumbnail_b64(face: Face) -> str:
    """The aligned 112x112 crop, as `faced search --json` gives it (the same bytes)."""
    return b64(encode_thumbnail(face.aligned))


def int_box(face: Face) -> list[int]:
    """[x, y, width, height] rounded to whole pixels (may reach outside the image for a cropped face)."""
    return [int(round(float(v))) for v in face.box]


def roll_radians(face: Face) -> float:
    """In-plane rotation of the face, in image coordinates (y down): the angle of the eye line, from the
    image-left eye to the image-right eye. The face mesh's eye line when the mesh ran (YuNet's eye landmarks
    follow a tilted head only part of the way: 8 of 20 degrees on a turned photo), else YuNet's."""
    if face.mesh is not None:
        return -math.radians(face.mesh.pose()["roll"])  # the mesh's roll is positive when the line rises
    (x1, y1), (x2, y2) = face.landmarks[0], face.landmarks[1]
    return math.atan2(float(y2 - y1), float(x2 - x1))


def rotated_corners(face: Face) -> list[tuple[float, float]]:
    """The face box turned about its centre by the eye line's angle: top-left, top-right, bottom-left,
    bottom-right (of the upright face), as contract 5's example orders them."""
    x, y, w, h = (float(v) for v in face.box)
    cx, cy = x + w / 2, y + h / 2
    cos, sin = math.cos(roll_radians(face)), math.sin(roll_radians(face))
    corners = []
    for dx, dy in ((-w / 2, -h / 2), (w / 2, -h / 2), (-w / 2, h / 2), (w / 2, h / 2)):
        corners.append((cx + dx * cos - dy * sin, cy + dx * sin + dy * cos))
    return corners
