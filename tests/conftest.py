"""Shared fixtures: the face data of ../shared/data (or $FACED_TEST_DATA) and one real pipeline."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def data_root() -> Path:
    env = os.environ.get("FACED_TEST_DATA")
    return Path(env) if env else REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def data() -> Path:
    root = data_root()
    if not (root / "faces").is_dir():
        pytest.skip(f"face data not found at {root}: put ../shared/data beside the repository or set "
                    "FACED_TEST_DATA")
    return root


@pytest.fixture(scope="session")
def faces_dir(data) -> Path:
    return data / "faces"


@pytest.fixture(scope="session")
def pipeline():
    from device.config import load_config
    from device.vision.pipeline import Pipeline

    # Defaults only: the environment of the person running the tests must not change what is tested.
    return Pipeline(load_config(env={}))


def run_faced(*args: str, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run the real `faced` CLI in a subprocess (python -m device.cli, same code as the console script)."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("FACED_") or k == "FACED_TEST_DATA"}
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-m", "device.cli", *args], capture_output=True, text=True,
                          cwd=str(REPO), env=full_env, timeout=timeout)


# ------------------------------------------------------------------------------------- MQTT broker
def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Broker:
    """A real mosquitto on 127.0.0.1, started by the test (persistent sessions and retained messages survive
    stop() + start(), as with a broker restarted by its service manager)."""

    def __init__(self, folder: Path):
        import shutil

        self.binary = shutil.which("mosquitto") or ("/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists()
                                                    else None)
        self.folder = folder
        self.port = free_port()
        self.process = None
        self.url = f"mqtt://127.0.0.1:{self.port}"
        (folder / "mosquitto.conf").write_text(
            f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence true\n"
            f"persistence_location {folder}/\nautosave_interval 1\nmax_queued_messages 100000\n")

    def start(self) -> "Broker":
        import time

        self.process = subprocess.Popen([self.binary, "-c", str(self.folder / "mosquitto.conf")],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(100):
            try:
                import socket

                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("mosquitto did not start")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)


@pytest.fixture
def broker(tmp_path):
    import shutil

    if not (shutil.which("mosquitto") or Path("/usr/sbin/mosquitto").exists()):
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail("mosquitto is not installed: .ci/run installs it (apt-get install mosquitto)")
        pytest.skip("mosquitto is not installed (apt-get install mosquitto)")
    folder = tmp_path / "broker"
    folder.mkdir()
    server = Broker(folder).start()
    yield server
    server.stop()


class Subscriber:
    """A paho client that records every message under a topic filter (persistent session, QoS 1)."""

    def __init__(self, url: str, topic: str):
        import threading

        import paho.mqtt.client as mqtt

        self.messages: list[tuple[str, bytes, bool]] = []
        self.lock = threading.Lock()
        port = int(url.rsplit(":", 1)[1])
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"test-{port}-{id(self)}",
                                  clean_session=False)
        self.client.on_connect = lambda c, u, f, rc, p=None: c.subscribe(topic, qos=1)
        self.client.on_message = self._on_message
        self.client.reconnect_delay_set(1, 2)
        self.client.connect_async("127.0.0.1", port, 30)
        self.client.loop_start()

    def _on_message(self, client, userdata, message):
        with self.lock:
            self.messages.append((message.topic, message.payload, bool(message.retain)))

    def events(self) -> list[dict]:
        import json

        with self.lock:
            return [json.loads(p) for t, p, _ in self.messages if t.endswith("/events")]

    def payloads(self, suffix: str) -> list[str]:
        with self.lock:
            return [p.decode() for t, p, _ in self.messages if t.endswith(suffix)]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def wait_for(predicate, timeout: float = 60.0, interval: float = 0.2, what: str = "condition"):
    """Poll until predicate() is truthy (returns it); fails the test after `timeout` (a hang guard, not a
    timing assertion)."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    pytest.fail(f"gave up waiting for {what}")
