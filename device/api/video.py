"""Videos for contract 4: sampled frames of an encoded clip (MP4/MOV, AVI, MKV/WebM, recognised by their bytes).

OpenCV reads the clip from a temporary file (prefix `faced-video-`, in the system's temporary folder) that is
removed when the frames have been read, also on an error or a timeout. Limits, each checked before any frame
is decoded: the encoded size (api.max_video_bytes, VIDEO_TOO_LARGE), the duration that the header states,
frame count / frame rate (api.max_video_seconds, VIDEO_TOO_LONG), and the frame size (api.max_video_pixels,
VIDEO_TOO_LARGE). A clip that OpenCV cannot open, or that ends before a frame its header promises (a
truncated file), is INVALID_VIDEO; one whose header counts no frame, VIDEO_NO_FRAMES.

Sampling: `num_frames` frames (fewer when the clip has fewer), at frame indices floor(i * N / num_frames) for
i = 0..num_frames-1, N the header's frame count: frame 0 first, evenly spaced. Each frame is keyed by its
index (as a string) and timed at index / fps seconds. Frames are decoded in order (grab, then retrieve only
the sampled ones): exact on every container, unlike seeking.
"""
from __future__ import annotations

import math
import os
import tempfile
import time
from typing import Iterator

import cv2
import numpy as np

from ..errors import Busy, FacedError

PREFIX = "faced-video-"


def sample_indices(count: int, wanted: int) -> list[int]:
    wanted = min(wanted, count)
    return sorted({(i * count) // wanted for i in range(wanted)})


def frames(data: bytes, num_frames: int, settings, deadline: float | None = None
           ) -> Iterator[tuple[str, float, np.ndarray]]:
    """(frame index as a string, time in seconds, RGB frame) of the sampled frames. `settings`: [api]."""
    if len(data) > settings.max_video_bytes:
        raise FacedError(f"the video is {len(data) / 2**20:.1f} MiB, over the {settings.max_video_bytes / 2**20:.1f}"
                         " MiB limit (api.max_video_bytes)", "VIDEO_TOO_LARGE")
    handle, path = tempfile.mkstemp(prefix=PREFIX, suffix=".video")
    capture = None
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
        capture = cv2.VideoCapture(path, cv2.CAP_FFMPEG)
        if not capture.isOpened():
            raise FacedError("the video cannot be opened: corrupt, truncated or in an unknown format",
                             "INVALID_VIDEO")
        count = capture.get(cv2.CAP_PROP_FRAME_COUNT)
        fps = capture.get(cv2.CAP_PROP_FPS)
        width, height = capture.get(cv2.CAP_PROP_FRAME_WIDTH), capture.get(cv2.CAP_PROP_FRAME_HEIGHT)
        if not math.isfinite(count) or count < 1:
            raise FacedError("the video holds no frame", "VIDEO_NO_FRAMES")
        if not math.isfinite(fps) or fps <= 0:
            raise FacedError("the video has no frame rate: its duration is unknown", "INVALID_VIDEO")
        count = int(count)
        seconds = count / fps
        if seconds > settings.max_video_seconds:
            raise FacedError(f"the video's header says it lasts {seconds:.0f} s, over the "
                             f"{settings.max_video_seconds:.0f} s limit (api.max_video_seconds)", "VIDEO_TOO_LONG")
        if width * height > settings.max_video_pixels:
            raise FacedError(f"the video's frames are {width:.0f}x{height:.0f} pixels, over the "
                             f"{settings.max_video_pixels} pixel limit (api.max_video_pixels)", "VIDEO_TOO_LARGE")
        wanted = sample_indices(count, num_frames)
        position = 0
        for index in wanted:
            while position <= index:
                if deadline is not None and time.monotonic() > deadline:
                    raise Busy("the video took longer than api.timeout_s to decode", "TIMEOUT")
                if not capture.grab():
                    raise FacedError(f"the video ends at frame {position} of the {count} its header counts: "
                                     "truncated or corrupt", "INVALID_VIDEO")
                position += 1
            ok, frame = capture.retrieve()
            if not ok or frame is None or frame.ndim != 3:
                raise FacedError(f"frame {index} of the video cannot be decoded", "INVALID_VIDEO")
            if frame.shape[0] * frame.shape[1] > settings.max_video_pixels:
                raise FacedError("a decoded frame is over api.max_video_pixels", "VIDEO_TOO_LARGE")
            yield str(index), round(index / fps, 3), cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
    finally:
        if capture is not None:
            capture.release()
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
