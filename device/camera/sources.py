"""Frame sources behind one interface: `Source.frames(stop)` yields (timestamp, frame) until the source ends
or `stop` is set. Frames are RGB uint8 arrays (the engine's convention); timestamps are time.time() seconds.

- `picamera2`: the Raspberry Pi camera through Picamera2 (imported only when such a camera is configured;
  it comes from Raspberry Pi OS's python3-picamera2).
- `/dev/videoN` or a device number: a V4L2 device through OpenCV.
- `rtsp://`, `rtsps://`, `http://`, `https://`: a network stream through OpenCV (FFmpeg).
- anything else: a video file through OpenCV, played at its own frame rate (as a camera would deliver it);
  with `loop` it starts again at its end, otherwise the source ends.

Devices and streams that fail to open, or stop delivering frames, are opened again with back-off (1 s doubling
up to 30 s); `state` says what the source is doing: starting, running, reconnecting, ended, failed.
"""
from __future__ import annotations

import logging
import os
import threading
import time
from urllib.parse import urlsplit

import cv2
import numpy as np

from ..errors import ConfigError

log = logging.getLogger("faced.camera")
BACKOFF_MIN_S, BACKOFF_MAX_S = 1.0, 30.0
STREAM_SCHEMES = ("rtsp", "rtsps", "http", "https")


class Source:
    kind = "source"

    def __init__(self, spec: str):
        self.spec = spec
        self.state = "starting"
        self.error = ""
        self.fps: float | None = None  # the source's own rate when it says
        self.reconnects = 0

    @property
    def description(self) -> str:
        """The source for logs and /cameras, without credentials."""
        parts = urlsplit(self.spec)
        if parts.password is not None:
            return parts._replace(netloc=parts.netloc.replace(":" + parts.password + "@", ":***@", 1)).geturl()
        return self.spec

    def frames(self, stop: threading.Event):
        raise NotImplementedError


class CaptureSource(Source):
    """A V4L2 device or a network stream: read as fast as it delivers; reopen with back-off when it fails."""

    def __init__(self, spec: str, kind: str):
        super().__init__(spec)
        self.kind = kind

    def _open(self):
        target = int(self.spec) if self.spec.isdigit() else self.spec
        if self.kind == "v4l2":
            capture = cv2.VideoCapture(target, cv2.CAP_V4L2)
        else:
            capture = cv2.VideoCapture(target, cv2.CAP_FFMPEG)
        if not capture.isOpened():
            capture.release()
            return None
        fps = capture.get(cv2.CAP_PROP_FPS)
        self.fps = fps if 0 < fps < 1000 else None
        return capture

    def frames(self, stop: threading.Event):
        delay = BACKOFF_MIN_S
        while not stop.is_set():
            capture = self._open()
            if capture is None:
                self.state, self.error = "reconnecting", f"cannot open {self.description}"
            else:
                try:
                    self.state, self.error = "running", ""
                    while not stop.is_set():
                        ok, frame = capture.read()
                        if not ok or frame is None:
                            self.error = "the source stopped delivering frames"
                            break
                        delay = BACKOFF_MIN_S  # frames flow again: the next failure starts the back-off anew
                        yield time.time(), to_rgb(frame)
                finally:
                    capture.release()
                self.state = "reconnecting"
            if stop.is_set():
                break
            self.reconnects += 1
            log.warning("camera source %s: %s; trying again in %.0f s", self.description, self.error, delay)
            stop.wait(delay)
            delay = min(delay * 2, BACKOFF_MAX_S)


class FileSource(Source):
    """A video file played at its own frame rate (frames the reader cannot take in time are the camera loop's
    to drop, as with a real camera). Ends at the end of the file unless `loop`."""

    kind = "file"

    def __init__(self, spec: str, loop: bool = False, pace: bool = True):
        super().__init__(spec)
        self.loop = loop
        self.pace = pace
        self.plays = 0

    def frames(self, stop: threading.Event):
        if not os.path.isfile(self.spec):
            self.state, self.error = "failed", f"{self.spec} does not exist"
            return
        while not stop.is_set():
            capture = cv2.VideoCapture(self.spec)
            if not capture.isOpened():
                self.state, self.error = "failed", f"{self.spec} is not a video OpenCV can read"
                return
            fps = capture.get(cv2.CAP_PROP_FPS)
            self.fps = fps if 0 < fps < 1000 else 25.0
            self.state = "running"
            start, index = time.monotonic(), 0
            try:
                while not stop.is_set():
                    ok, frame = capture.read()
                    if not ok or frame is None:
                        break
                    if self.pace:
                        due = start + index / self.fps
                        wait = due - time.monotonic()
                        if wait > 0 and stop.wait(wait):
                            break
                    index += 1
                    yield time.time(), to_rgb(frame)
            finally:
                capture.release()
            self.plays += 1
            if not self.loop or index == 0:
                break
        if not stop.is_set():
            self.state = "ended"


class PiCameraSource(Source):
    """The Raspberry Pi camera (Picamera2). Imported only here, when configured."""

    kind = "picamera2"

    def __init__(self, spec: str = "picamera2", size: tuple[int, int] = (1280, 720)):
        super().__init__(spec)
        self.size = size
        try:
            from picamera2 import Picamera2  # noqa: F401
        except ImportError:
            raise ConfigError("camera source picamera2: the picamera2 module is not installed (on Raspberry Pi OS: "
                              "apt install python3-picamera2 and a venv made with --system-site-packages)") from None

    def frames(self, stop: threading.Event):
        from picamera2 import Picamera2

        delay = BACKOFF_MIN_S
        while not stop.is_set():
            camera = None
            try:
                camera = Picamera2()
                # libcamera's "RGB888" is B, G, R in memory: the same order as OpenCV's frames.
                camera.configure(camera.create_video_configuration(main={"format": "RGB888", "size": self.size}))
                camera.start()
                self.state, self.error = "running", ""
                while not stop.is_set():
                    frame = camera.capture_array()
                    delay = BACKOFF_MIN_S
                    yield time.time(), to_rgb(frame)
            except Exception as exc:  # the camera went away (cable, driver): open it again
                self.state, self.error = "reconnecting", f"{type(exc).__name__}: {exc}"
            finally:
                if camera is not None:
                    try:
                        camera.stop()
                        camera.close()
                    except Exception:
                        pass
            if stop.is_set():
                break
            self.reconnects += 1
            log.warning("camera source picamera2: %s; trying again in %.0f s", self.error, delay)
            stop.wait(delay)
            delay = min(delay * 2, BACKOFF_MAX_S)


def to_rgb(frame: np.ndarray) -> np.ndarray:
    if frame.ndim == 2:
        return cv2.cvtColor(frame, cv2.COLOR_GRAY2RGB)
    if frame.shape[2] == 4:
        return cv2.cvtColor(frame, cv2.COLOR_BGRA2RGB)
    return cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)


def open_source(spec: str, loop: bool = False, pace: bool = True) -> Source:
    """The source for a camera's `source` setting (checked at start-up)."""
    spec = spec.strip()
    if spec == "picamera2":
        return PiCameraSource(spec)
    if spec.startswith("/dev/video") or spec.isdigit():
        return CaptureSource(spec, "v4l2")
    scheme = urlsplit(spec).scheme.lower()
    if scheme in STREAM_SCHEMES:
        return CaptureSource(spec, "stream")
    if scheme and len(scheme) > 1:
        raise ConfigError(f"camera source {spec!r}: {scheme}:// is not supported (use rtsp://, http://, a device "
                          "such as /dev/video0, picamera2, or a video file)")
    if not os.path.isfile(spec):
        raise ConfigError(f"camera source {spec!r}: no such video file (or use picamera2, /dev/video0, rtsp://...)")
    return FileSource(spec, loop=loop, pace=pace)
