"""Contract 4: unified face detection (POST /face/detect), `Authorization: Bearer KEY` first, else
`x-api-key`. This version takes images (`img`: base64 or a data URI); `url` inputs (images and videos) come
with a later issue and are refused today with URL_INPUT_DISABLED in the contract's error shape.

Media are read by a *source* (`SOURCES`): a function of the request that yields frames (key, time in seconds
or None, RGB image). Images give one frame "0" with frame_time null; a video source will yield frames "0",
"5", ... from `num_frames`, and fill `removed` from a tracker; the per-frame JSON below does not change.

Decisions where the contract is loose:
- landmarks: 6 points per face, [x, y] whole pixels, in the contract's order Left Eye, Right Eye, Nose, Mouth
  Center, Left Mouth Corner, Right Mouth Corner, where left/right are the image's (the viewer's), as the
  contract's example has the left eye at the smaller x. For a frontal face that is faced's subject's right eye,
  left eye, nose, right mouth corner, left mouth corner; the mouth centre is the midpoint of the two corners.
- landmarks_str: the first four points "x1,y1:x2,y2:x3,y3:x4,y4"; region: [x, y, width, height].
- single_face: only the largest face by box area. Faces are ordered largest first.
- return_face_url: faced hosts no files, so face_urls are data URIs (JPEG) of the face boxes; crop_region is
  each crop's [x, y, width, height] in the image and crop_landmarks the 6 points relative to it.
- No face is a success with empty lists. num_frames (1..100) is checked and ignored for images.
"""
from __future__ import annotations

from typing import Callable, Iterator

import numpy as np

from ..errors import InvalidInput
from . import auth
from .detect_attributes import refuse_url
from .faces import b64, crop_jpeg, crop_region
from .http import Call, Router

SHAPE = "contract4"
Frame = tuple[str, "float | None", np.ndarray]


def six_points(face) -> list[list[float]]:
    right_eye, left_eye, nose, mouth_right, mouth_left = (np.asarray(p, dtype=float) for p in face.landmarks)
    # Image-left first: for a frontal face the subject's right eye is on the image's left.
    if right_eye[0] > left_eye[0]:
        right_eye, left_eye, mouth_right, mouth_left = left_eye, right_eye, mouth_left, mouth_right
    centre = (mouth_right + mouth_left) / 2
    return [right_eye, left_eye, nose, centre, mouth_right, mouth_left]


def whole(points) -> list[list[int]]:
    return [[int(round(float(x))), int(round(float(y)))] for x, y in points]


def image_source(call: Call) -> Iterator[Frame]:
    yield "0", None, call.image("img")


def url_source(call: Call) -> Iterator[Frame]:
    refuse_url(call)
    return iter(())


def pick_source(call: Call) -> Callable[[Call], Iterator[Frame]]:
    """`url` takes priority over `img` (the contract's rule)."""
    url = call.field("url", "string")
    if url is not None and url.strip():
        return url_source
    if call.body.get("img") is None:
        raise InvalidInput("Either 'url' or 'img' parameter must be provided", "MISSING_FIELD")
    return image_source


def frame_json(call: Call, image: np.ndarray, frame_time, single: bool, urls: bool) -> dict:
    faces = call.engine.detect(image, mesh=False)
    if single:
        faces = faces[:1]
    call.faces += len(faces)
    points = [six_points(face) for face in faces]
    result = {
        "landmarks": [whole(p) for p in points],
        "landmarks_str": [":".join(f"{x},{y}" for x, y in whole(p)[:4]) for p in points],
        "region": [[int(round(float(v))) for v in face.box] for face in faces],
        "removed": [],
        "frame_time": frame_time,
        "face_urls": None, "crop_region": None, "crop_landmarks": None,
    }
    if urls:
        regions = [crop_region(image, face) for face in faces]
        result["face_urls"] = ["data:image/jpeg;base64," + b64(crop_jpeg(image, face)) for face in faces]
        result["crop_region"] = regions
        result["crop_landmarks"] = [whole(np.asarray(p) - np.asarray(r[:2], dtype=float))
                                    for p, r in zip(points, regions)]
    return result


def register(router: Router) -> None:
    @router.route("POST", "/face/detect", shape=SHAPE, credential=auth.BEARER, pooled=True, body=True)
    def detect(call: Call):
        call.field("num_frames", "integer", default=5, lo=1, hi=100)
        urls = call.field("return_face_url", "boolean", default=False)
        single = call.field("single_face", "boolean", default=False)
        source = pick_source(call)
        frames = {key: frame_json(call, image, at, single, urls) for key, at, image in source(call)}
        return {"error_code": 0, "error_msg": "SUCCESS", "faces_obj": frames}
