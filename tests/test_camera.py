"""Camera sources and the loop: a real MJPEG stream over HTTP that drops its connection (the source reconnects
and the camera keeps processing), a file source that ends, picamera2's absence as one clear error, and a
stand-in Pi camera behind the same interface (the only stand-in: no Pi camera here)."""
from __future__ import annotations

import sys
import threading
import time
import types
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import cv2
import pytest

from device.camera.sources import FileSource, PiCameraSource, open_source
from device.errors import ConfigError
from tests.conftest import wait_for

CLIP = "faces/face_recognition/examples/short_hamilton_clip.mp4"


def _jpeg_frames(path, count=60):
    capture = cv2.VideoCapture(str(path))
    frames = []
    while len(frames) < count:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(cv2.imencode(".jpg", frame)[1].tobytes())
    capture.release()
    return frames


@pytest.fixture
def mjpeg_server(data):
    """Serves the clip as an MJPEG stream; the first connection is cut after 30 frames."""
    frames = _jpeg_frames(data / CLIP)
    connections = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            connections.append(time.time())
            first = len(connections) == 1
            self.send_response(200)
            self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
            self.end_headers()
            sent = 0
            try:
                while not server.stopping:
                    for jpeg in frames:
                        self.wfile.write(b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: "
                                         + str(len(jpeg)).encode() + b"\r\n\r\n" + jpeg + b"\r\n")
                        sent += 1
                        time.sleep(1 / 30)
                        if first and sent >= 30:
                            return  # the camera "drops"
            except (BrokenPipeError, ConnectionResetError):
                pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.stopping = False
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/stream.mjpg", connections
    server.stopping = True
    server.shutdown()


class Collect:
    def __init__(self):
        self.decisions, self.departures = [], []

    def decided(self, camera, track, decision, ts):
        self.decisions.append(decision)

    def left(self, camera, track, ts):
        self.departures.append(track)


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    from device.config import load_config
    from device.engine import Engine

    path = tmp_path_factory.mktemp("camera") / "faced.db"
    with Engine(load_config(env={"FACED_DB": str(path)}), create=True) as engine:
        engine.create_collection("home")
        yield engine


def test_stream_that_drops_reconnects(engine, mjpeg_server):
    from device.camera.loop import Camera
    from device.config import CameraConfig

    url, connections = mjpeg_server
    camera = Camera("door", CameraConfig(source=url, liveness="off"), engine, Collect()).start()
    try:
        assert camera.source.kind == "stream"
        wait_for(lambda: camera.source.reconnects >= 1 and len(connections) >= 2, 60, what="a reconnection")
        processed = camera.processed
        wait_for(lambda: camera.state == "running" and camera.processed > processed + 5, 60,
                 what="frames after the reconnection")
        status = camera.status()
        assert status["reconnects"] >= 1 and status["frames"] >= status["processed"] > 0
    finally:
        camera.stop()


def test_file_source_ends_and_camera_reports_it(engine, data):
    from device.camera.loop import Camera
    from device.config import CameraConfig

    sink = Collect()
    camera = Camera("door", CameraConfig(source=str(data / CLIP), liveness="off"), engine, sink)
    camera.source.pace = False  # as fast as it decodes: the loop then drops frames, newest wins
    camera.start()
    try:
        wait_for(lambda: camera.state == "ended" and not camera.tracker.tracks, 120, what="the clip's end")
        status = camera.status()
        assert status["frames"] == 275 and status["processed"] + status["dropped"] == 275
        assert len(sink.departures) == len(sink.decisions)  # every decided track also left
        assert camera.snapshot()[:2] == b"\xff\xd8"
    finally:
        camera.stop()


def test_sources_are_checked_at_start_up(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "picamera2", None)  # as on a PC: not installed
    with pytest.raises(ConfigError, match="picamera2 module is not installed"):
        open_source("picamera2")
    with pytest.raises(ConfigError, match="no such video file"):
        open_source(str(tmp_path / "missing.mp4"))
    with pytest.raises(ConfigError, match="ftp:// is not supported"):
        open_source("ftp://host/x")
    assert open_source("/dev/video0").kind == "v4l2" and open_source("rtsp://h/s").kind == "stream"


def test_pi_camera_behind_the_same_interface(monkeypatch, data):
    """A stand-in Picamera2 (the one allowed: no Pi camera here) delivering the clip's frames in libcamera's
    RGB888 layout (B, G, R bytes) gives RGB frames like every other source."""
    frames = []
    capture = cv2.VideoCapture(str(data / CLIP))
    for _ in range(3):
        frames.append(capture.read()[1])
    capture.release()

    class Picamera2:
        def create_video_configuration(self, main):
            assert main["format"] == "RGB888"
            return main

        def configure(self, config):
            pass

        def start(self):
            pass

        def capture_array(self):
            return frames[0]

        def stop(self):
            pass

        def close(self):
            pass

    monkeypatch.setitem(sys.modules, "picamera2", types.SimpleNamespace(Picamera2=Picamera2))
    source = open_source("picamera2")
    assert isinstance(source, PiCameraSource)
    stop = threading.Event()
    ts, frame = next(source.frames(stop))
    stop.set()
    assert source.state == "running" and frame.shape == frames[0].shape
    assert (frame[..., 0] == frames[0][..., 2]).all()  # red first


def test_file_source_loops(data):
    source = FileSource(str(data / CLIP), loop=True, pace=False)
    stop = threading.Event()
    count = 0
    for _ in source.frames(stop):
        count += 1
        if count == 300:
            stop.set()
    assert count == 300 and source.plays >= 1 and source.state == "running"  # went past the end: it looped
