"""Contract 4: unified face detection (POST /face/detect), `Authorization: Bearer KEY` first, else
`x-api-key`. Images and videos, as base64 in `img` or by `url` (which takes priority, as the contract says).

Media are read by a *source* (`pick_source`): a function of the request that yields frames (key, time in
seconds or None, RGB image). What the bytes are is decided by their magic numbers (device/api/fetch.sniff),
never by a name or an extension: an image gives one frame "0" with frame_time null; a video (MP4/MOV, AVI,
MKV/WebM; base64 in `img` is an extension of the contract, as is a `data:video/...;base64,` prefix) gives
`num_frames` sampled frames keyed by their frame index, with frame_time in seconds (device/api/video.py has
the sampling and the limits). URLs go through the allow-listed fetcher (device/api/fetch.py), off by default.

Decisions where the contract is loose:
- landmarks: 6 points per face, [x, y] whole pixels, in the contract's order Left Eye, Right Eye, Nose, Mouth
  Center, Left Mouth Corner, Right Mouth Corner, where left/right are the image's (the viewer's), as the
  contract's example has the left eye at the smaller x. For a frontal face that is faced's subject's right eye,
  left eye, nose, right mouth corner, left mouth corner; the mouth centre is the midpoint of the two corners.
- landmarks_str: the first four points "x1,y1:x2,y2:x3,y3:x4,y4"; region: [x, y, width, height].
- single_face: only the largest face by box area. Faces are ordered largest first.
- removed (videos): the regions [x, y, width, height] of the previous sampled frame's faces that no face of
  this frame continues, matched as the camera loop's tracker matches (greedy IoU >= tracking.iou, best pairs
  first, device/vision/boxes.match). Frame "0" and images: [].
- return_face_url: each face box is cut (JPEG) and served at an unguessable URL on this appliance,
  `{scheme}://{host}/faces/{token}.jpg` (the host the request was sent to), with the key, for
  api.face_url_ttl_s seconds (device/api/crops.py); crop_region is each crop's [x, y, width, height] in the
  frame and crop_landmarks the 6 points relative to it.
- No face is a success with empty lists. num_frames (1..100) is checked and ignored for images.
"""
from __future__ import annotations

import re

from contextlib import closing
from typing import Callable, Iterator

import numpy as np

from ..errors import InvalidInput
from ..imaging import ImageLimits, decode_base64
from ..vision.boxes import match
from . import auth, video
from .faces import crop_jpeg, crop_region
from .fetch import sniff
from .http import Call, Reply, Router

SHAPE = "contract4"
Frame = tuple[str, "float | None", np.ndarray]
_DATA_URI = re.compile(r"^data:(image|video)/[\w.+-]+;base64,", re.IGNORECASE)


def six_points(face) -> list[list[float]]:
    right_eye, left_eye, nose, mouth_right, mouth_left = (np.asarray(p, dtype=float) for p in face.landmarks)
    # Image-left first: for a frontal face the subject's right eye is on the image's left.
    if right_eye[0] > left_eye[0]:
        right_eye, left_eye, mouth_right, mouth_left = left_eye, right_eye, mouth_left, mouth_right
    centre = (mouth_right + mouth_left) / 2
    return [right_eye, left_eye, nose, centre, mouth_right, mouth_left]


def whole(points) -> list[list[int]]:
    return [[int(round(float(x))), int(round(float(y)))] for x, y in points]


def media_frames(call: Call, data: bytes, kind: str | None) -> Iterator[Frame]:
    """The frames of downloaded or decoded bytes: a video's sampled frames, else one image."""
    if kind == "video":
        settings = call.state.config.api
        deadline = call.admitted + settings.timeout_s
        with closing(video.frames(data, call.num_frames, settings, deadline)) as frames:
            yield from frames
    else:
        yield "0", None, call.engine.decode(data)


def image_source(call: Call) -> Iterator[Frame]:
    """`img`: base64 (or a data: URI) of an image or a video."""
    text = call.field("img", "string", required=True)
    config = call.state.config
    limit = max(config.images.max_bytes, config.api.max_video_bytes)
    data = decode_base64(_DATA_URI.sub("", text.strip(), count=1), ImageLimits(limit, config.images.max_pixels))
    return media_frames(call, data, sniff(data))


def url_source(call: Call) -> Iterator[Frame]:
    fetched = call.state.fetcher.fetch(call.body["url"].strip())
    return media_frames(call, fetched.data, fetched.kind)


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
        crops = call.state.crops
        result["face_urls"] = [f"{call.base_url}/faces/{crops.put(crop_jpeg(image, face))}.jpg" for face in faces]
        result["crop_region"] = regions
        result["crop_landmarks"] = [whole(np.asarray(p) - np.asarray(r[:2], dtype=float))
                                    for p, r in zip(points, regions)]
    return result


def detect_frames(call: Call, frames: Iterator[Frame], single: bool, urls: bool) -> dict:
    """Each frame's JSON; `removed` from the previous frame's faces that no face of this frame continues."""
    threshold = call.state.config.tracking.iou
    result, previous = {}, []
    for key, at, image in frames:
        frame = frame_json(call, image, at, single, urls)
        if at is not None:
            kept = {p for p, _ in match(previous, frame["region"], threshold)}
            frame["removed"] = [box for i, box in enumerate(previous) if i not in kept]
        previous = frame["region"]
        result[key] = frame
    return result


def register(router: Router) -> None:
    @router.route("POST", "/face/detect", shape=SHAPE, credential=auth.BEARER, pooled=True, body=True)
    def detect(call: Call):
        call.num_frames = call.field("num_frames", "integer", default=5, lo=1, hi=100)
        urls = call.field("return_face_url", "boolean", default=False)
        single = call.field("single_face", "boolean", default=False)
        source = pick_source(call)
        frames = detect_frames(call, source(call), single, urls)
        return {"error_code": 0, "error_msg": "SUCCESS", "faces_obj": frames}

    @router.route("GET", "/faces/{token}.jpg", shape=SHAPE, credential=auth.BEARER)
    def face_crop(call: Call):
        return Reply(raw=call.state.crops.get(call.params["token"]), content_type="image/jpeg",
                     headers={"Cache-Control": "no-store"})
