"""The daemon end to end: a real mosquitto, the real models, the real clip as a camera, `faced run` as a
subprocess; events checked field by field, delivery through broker outages and SIGKILL, last will, sd_notify,
SIGTERM, /health, /cameras, /events, the snapshot and the event stream."""
from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

from tests.conftest import REPO, Subscriber, free_port, run_faced, wait_for

CLIP = "faces/face_recognition/examples/short_hamilton_clip.mp4"
LIN = "faces/face_recognition/examples/lin-manuel-miranda.png"
TS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


@pytest.fixture(scope="module")
def enrolled(tmp_path_factory, data):
    """A database with one collection holding Lin-Manuel Miranda (made once; each test gets a copy)."""
    from device.config import load_config
    from device.engine import Engine

    path = tmp_path_factory.mktemp("enrolled") / "faced.db"
    with Engine(load_config(env={"FACED_DB": str(path)}), create=True) as engine:
        engine.create_collection("home")
        result = engine.add_person("home", "Lin-Manuel Miranda", [engine.photo_file(str(data / LIN))])
    assert result.person_id
    return path, result.person_id


class Daemon:
    def __init__(self, tmp_path: Path, db: Path, cameras: str = "", mqtt_url: str = "", env: dict | None = None,
                 device: str = "test"):
        self.port = free_port()
        config = tmp_path / "faced.toml"
        config.write_text(cameras)
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("FACED_", "NOTIFY_", "WATCHDOG_"))}
        self.env.update({"FACED_DB": str(db), "FACED_API_PORT": str(self.port), "FACED_CONFIG": str(config),
                         "FACED_EVENTS_DEVICE_ID": device, "FACED_MQTT_URL": mqtt_url, **(env or {})})
        self.log = tmp_path / f"daemon-{uuid.uuid4().hex[:6]}.log"
        self.process = None
        # The daemon's endpoints are keyed like the management endpoints.
        created = run_faced("--db", str(db), "keys", "create", "--name", f"daemon-{uuid.uuid4().hex[:6]}")
        assert created.returncode == 0, created.stderr
        self.key = created.stdout.strip().splitlines()[-1]

    def start(self) -> "Daemon":
        self.log_handle = self.log.open("w")
        self.process = subprocess.Popen([sys.executable, "-m", "device.cli", "--log-level", "info", "run"],
                                        cwd=str(REPO), env=self.env, stdout=self.log_handle, stderr=subprocess.STDOUT)
        wait_for(lambda: self.get("/health") or self._dead(), 120, what="the daemon's /health")
        return self

    def _dead(self):
        if self.process.poll() is not None:
            pytest.fail(f"the daemon exited: {self.log.read_text()[-2000:]}")

    def request(self, path: str) -> urllib.request.Request:
        return urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", headers={"x-api-key": self.key})

    def get(self, path: str):
        try:
            with urllib.request.urlopen(self.request(path), timeout=5) as response:
                body = response.read()
                return json.loads(body) if response.headers.get_content_type() == "application/json" else body
        except OSError:
            return None

    def kill(self) -> None:
        self.process.kill()
        self.process.wait(10)

    def terminate(self) -> float:
        start = time.monotonic()
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(30)
        return time.monotonic() - start

    def close(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


@pytest.fixture
def daemons():
    started: list[Daemon] = []
    yield started
    for daemon in started:
        daemon.close()


def _copy(enrolled, tmp_path) -> Path:
    from device.store.db import Store

    target = tmp_path / "faced.db"
    with Store(enrolled[0]) as store:
        store.backup(target)
    return target


def _camera(data, loop: bool = False, liveness: str = "passive") -> str:
    return (f'[cameras.door]\nsource = "{data / CLIP}"\ncollection = "home"\nliveness = "{liveness}"\n'
            f"loop = {'true' if loop else 'false'}\n")


def test_end_to_end_one_event_per_track(tmp_path, data, enrolled, broker, daemons):
    person_id = enrolled[1]
    subscriber = Subscriber(broker.url, "faced/test/#")
    try:
        daemon = Daemon(tmp_path, _copy(enrolled, tmp_path), _camera(data), broker.url)
        daemons.append(daemon.start())
        done = wait_for(lambda: (lambda h: h if h["cameras"]["door"]["state"] == "ended" and
                                 h["outbox"]["depth"] == 0 and daemon.get("/cameras")["cameras"][0]["tracks"] == 0
                                 else None)(daemon.get("/health")), 120, what="the clip to end and events to go out")
        assert done["broker"]["connected"] is True and done["outbox"]["dropped"] == 0
        wait_for(lambda: len(subscriber.events()) >= daemon.get("/health")["broker"]["acknowledged"] - 2, 20,
                 what="the subscriber to receive the events")
        events = list({e["event_id"]: e for e in subscriber.events()}.values())
        camera = daemon.get("/cameras")["cameras"][0]
        assert camera["state"] == "ended" and camera["processed"] > 0 and camera["source_fps"] == pytest.approx(29.97)
        snapshot = daemon.get("/cameras/door/snapshot.jpg")
        history = daemon.get("/events?limit=1000")["events"]
        recognized_history = daemon.get("/events?type=recognized&camera=door")["events"]
        assert daemon.terminate() < 5.0
    finally:
        subscriber.close()

    assert [e["seq"] for e in sorted(events, key=lambda e: e["seq"])] == list(range(1, len(events) + 1))
    by_track: dict[int, list[dict]] = {}
    for event in sorted(events, key=lambda e: e["seq"]):
        by_track.setdefault(event["track_id"], []).append(event)
    recognized = [e for e in events if e["type"] == "recognized"]
    assert 1 <= len(recognized) <= 3, recognized
    assert any(e["type"] == "unknown" for e in events)
    for track_id, track_events in by_track.items():
        # exactly one decision, then `left`
        assert [e["type"] for e in track_events][-1] == "left", track_events
        assert len(track_events) == 2 and track_events[0]["type"] in ("recognized", "unknown", "spoof")
    for event in events:
        assert set(event) >= {"event_id", "seq", "type", "camera", "track_id", "person_id", "person_name", "score",
                              "liveness", "box", "ts"}
        assert uuid.UUID(event["event_id"]).version == 4
        assert event["camera"] == "door" and TS.match(event["ts"])
        assert len(event["box"]) == 4 and all(isinstance(v, int) for v in event["box"])
    for event in recognized:
        assert event["person_id"] == person_id and event["person_name"] == "Lin-Manuel Miranda"
        assert 0.7 <= event["score"] <= 1.0
        assert event["liveness"]["live"] is True and 0.5 <= event["liveness"]["score"] <= 1.0
        assert event["evidence"] >= 3
        import base64

        assert base64.b64decode(event["thumbnail"])[:2] == b"\xff\xd8"  # a JPEG
    for event in events:
        if event["type"] == "unknown":
            assert event["person_id"] is None and event["person_name"] is None
        if event["type"] == "left":
            decision = by_track[event["track_id"]][0]
            assert event["person_id"] == decision["person_id"] and "thumbnail" not in event
    # availability and presence, retained
    assert subscriber.payloads("/availability")[0] == "online"
    assert "present" in subscriber.payloads(f"/person/{person_id}/state")
    # the history holds the same events, without thumbnails, newest first
    assert [e["seq"] for e in history] == sorted((e["seq"] for e in events), reverse=True)
    assert all("thumbnail" not in e for e in history)
    assert {e["event_id"] for e in recognized_history} == {e["event_id"] for e in recognized}
    assert snapshot[:2] == b"\xff\xd8"


def _contiguous(subscriber) -> list[int]:
    seen, order = set(), []
    for event in subscriber.events():
        if event["event_id"] not in seen:
            seen.add(event["event_id"])
            order.append(event["seq"])
    return order


def test_outage_and_sigkill_lose_nothing_and_keep_order(tmp_path, data, enrolled, broker, daemons):
    """Last will on SIGKILL, online on restart; then the broker stops ~20 s while a looping clip plays, the
    daemon is SIGKILLed and restarted meanwhile, the broker comes back: every event arrives, in seq order."""
    db = _copy(enrolled, tmp_path)
    subscriber = Subscriber(broker.url, "faced/test/#")
    try:
        daemon = Daemon(tmp_path, db, _camera(data, loop=True, liveness="off"), broker.url).start()
        daemons.append(daemon)
        wait_for(lambda: subscriber.payloads("/availability")[-1:] == ["online"], 30, what="online")
        wait_for(lambda: len(subscriber.events()) >= 2, 60, what="first events")
        daemon.kill()  # last will
        wait_for(lambda: subscriber.payloads("/availability")[-1:] == ["offline"], 30, what="the last will")
        daemon = Daemon(tmp_path, db, _camera(data, loop=True, liveness="off"), broker.url).start()
        daemons.append(daemon)
        wait_for(lambda: subscriber.payloads("/availability")[-1:] == ["online"], 30, what="online again")

        broker.stop()
        outage = time.monotonic()
        wait_for(lambda: daemon.get("/health")["outbox"]["depth"] >= 3, 60, what="events queued in the outbox")
        daemon.kill()  # during the outage: the outbox is on disk
        daemon = Daemon(tmp_path, db, _camera(data, loop=True, liveness="off"), broker.url).start()
        daemons.append(daemon)
        health = daemon.get("/health")
        assert health["broker"]["connected"] is False and health["outbox"]["depth"] >= 3
        time.sleep(max(0.0, 20.0 - (time.monotonic() - outage)))
        queued = daemon.get("/health")["outbox"]["depth"]
        broker.start()
        wait_for(lambda: daemon.get("/health")["broker"]["connected"], 60, what="the daemon to reconnect")
        daemon.terminate()  # what it produced up to here is in the outbox or delivered
        daemon = Daemon(tmp_path, db, "", broker.url).start()  # no camera: only drains the outbox
        daemons.append(daemon)
        wait_for(lambda: daemon.get("/health")["outbox"]["depth"] == 0, 60, what="the outbox to drain")
        from device.store.db import Store

        with Store(db) as store:
            last = store.connection.execute("SELECT value FROM event_counters WHERE name = 'seq'").fetchone()[0]
        wait_for(lambda: len(set(_contiguous(subscriber))) >= last, 30, what="every event at the subscriber")
        daemon.terminate()
    finally:
        subscriber.close()
    order = _contiguous(subscriber)
    assert queued >= 3
    assert order == list(range(1, last + 1)), order  # every seq, once, in order (repeats dropped by event_id)


def test_sd_notify_sigterm_keeps_outbox_and_health(tmp_path, data, enrolled, daemons):
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    address = str(tmp_path / "notify.sock")
    notify.bind(address)
    notify.settimeout(0.5)
    db = _copy(enrolled, tmp_path)
    closed_port = free_port()  # nothing listens there: the broker is "down" for the whole run
    daemon = Daemon(tmp_path, db, _camera(data, loop=True), f"mqtt://127.0.0.1:{closed_port}",
                    env={"NOTIFY_SOCKET": address, "WATCHDOG_USEC": "1000000"})
    daemons.append(daemon.start())
    messages: list[str] = []

    def receive():
        try:
            messages.append(notify.recv(4096).decode())
        except socket.timeout:
            pass
        return any("WATCHDOG=1" in m for m in messages) and any("READY=1" in m for m in messages)

    wait_for(receive, 60, interval=0, what="READY and WATCHDOG")
    ready = next(m for m in messages if "READY=1" in m)
    assert "STATUS=" in ready and "door" in ready
    health = wait_for(lambda: (lambda h: h if h["outbox"]["depth"] > 0 else None)(daemon.get("/health")), 60,
                      what="queued events")
    assert health["status"] == "ok" and health["broker"]["connected"] is False
    assert health["cameras"]["door"]["state"] == "running" and health["cameras"]["door"]["fps"] >= 0
    cameras = daemon.get("/cameras")["cameras"]
    assert cameras[0]["name"] == "door" and cameras[0]["last_frame_age_s"] is not None
    assert cameras[0]["dropped"] >= 0 and cameras[0]["frames"] >= cameras[0]["processed"]
    took = daemon.terminate()
    assert daemon.process.returncode == 0 and took < 5.0
    while True:
        try:
            messages.append(notify.recv(4096).decode())
        except socket.timeout:
            break
    assert any("STOPPING=1" in m for m in messages)
    from device.store.db import Store

    with Store(db) as store:
        kept = store.connection.execute("SELECT count(*) FROM event_outbox").fetchone()[0]
    assert kept >= health["outbox"]["depth"]
    notify.close()


def test_event_stream_and_filters(tmp_path, data, enrolled, broker, daemons):
    daemon = Daemon(tmp_path, _copy(enrolled, tmp_path), _camera(data, loop=True, liveness="off"), broker.url)
    daemons.append(daemon.start())
    request = urllib.request.urlopen(daemon.request("/events/stream"), timeout=60)
    assert request.headers.get_content_type() == "text/event-stream"
    received = []
    while len(received) < 2:
        line = request.readline().decode()
        if line.startswith("data: "):
            received.append(json.loads(line[6:]))
    request.close()
    assert all(TS.match(e["ts"]) and e["camera"] == "door" for e in received)
    page = daemon.get("/events?limit=1")
    assert len(page["events"]) == 1 and page["next_offset"] == 1
    assert daemon.get("/events?since=2000-01-01T00:00:00Z&camera=nowhere")["events"] == []
    assert daemon.get("/events?type=bogus") is None  # 400
    assert daemon.get("/cameras/nowhere/snapshot.jpg") is None  # 404
    daemon.terminate()
