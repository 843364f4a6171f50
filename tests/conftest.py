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


# ------------------------------------------------------------------------------------------- HTTP API
class ApiServer:
    """`faced run` in a subprocess on 127.0.0.1 (a free port), with its own database, one API key (`key`,
    named `key_name`) and its log in `log_path`."""

    def __init__(self, tmp: Path, config: dict | None = None, env: dict | None = None):
        import json as _json
        import socket

        extra_env = env or {}
        self.tmp = tmp
        self.db = tmp / "faced.db"
        self.log_path = tmp / "server.log"
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.config_path = tmp / "faced.toml"
        lines = ["[api]", f"port = {self.port}"]
        lines += [f"{k} = {_json.dumps(v)}" for k, v in (config or {}).items()]
        self.config_path.write_text("\n".join(lines) + "\n")
        self.key_name = "tests"
        created = run_faced("--db", str(self.db), "keys", "create", "--name", self.key_name)
        assert created.returncode == 0, created.stderr
        self.key = created.stdout.strip().splitlines()[-1]
        env = {k: v for k, v in os.environ.items() if not k.startswith("FACED_")}
        self.tmpdir = tmp / "tmp"  # the server's own temporary folder (TMPDIR), for leftover checks
        self.tmpdir.mkdir()
        env["TMPDIR"] = str(self.tmpdir)
        env.update(extra_env)
        self.log = open(self.log_path, "wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "device.cli", "--config", str(self.config_path), "--db", str(self.db),
             "--log-level", "DEBUG", "run"], cwd=str(REPO), env=env, stdout=self.log, stderr=subprocess.STDOUT)
        self.wait()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait(self, seconds: float = 120) -> None:
        import time
        import urllib.request

        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"faced run exited: {self.log_path.read_text(errors='replace')[-2000:]}")
            try:
                with urllib.request.urlopen(self.url + "/health", timeout=2):
                    return
            except OSError:
                time.sleep(0.2)
        raise RuntimeError("faced run did not answer /health")

    def request(self, method: str, path: str, body=None, headers: dict | None = None, raw: bytes | None = None,
                timeout: float = 120):
        """(status, parsed JSON or text, headers (case-insensitive))."""
        import http.client
        import json as _json

        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        data = raw if raw is not None else (None if body is None else _json.dumps(body).encode())
        all_headers = {"Content-Type": "application/json", **(headers or {})}
        try:
            connection.request(method, path, body=data, headers=all_headers)
            response = connection.getresponse()
            text = response.read()
            try:
                value = _json.loads(text)
            except ValueError:
                value = text.decode("utf-8", "replace")
            return response.status, value, response.headers  # case-insensitive
        finally:
            connection.close()

    def post(self, path: str, body=None, headers: dict | None = None, **kwargs):
        return self.request("POST", path, body, headers, **kwargs)

    def get(self, path: str, headers: dict | None = None):
        return self.request("GET", path, None, headers)

    def faced(self, *args: str):
        """The CLI on the server's database."""
        return run_faced("--db", str(self.db), *args)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log.close()


@pytest.fixture(scope="module")
def api(request, tmp_path_factory, data):
    """One server per test module; a module may set API_CONFIG = {...} ([api] keys) for its own server."""
    server = ApiServer(tmp_path_factory.mktemp("api"), getattr(request.module, "API_CONFIG", None))
    yield server
    server.stop()


def b64file(path) -> str:
    import base64

    return base64.b64encode(Path(path).read_bytes()).decode("ascii")


# ------------------------------------------------------------------------------ media for URL inputs
class MediaServer:
    """A local HTTP server on 127.0.0.1 (a thread) that URL-input tests point the API at. It records every
    connection it accepts and every request (path, Host header), and the bytes it sent on /endless.

    GET /file/NAME      the bytes of `files[NAME]` (content type `types[NAME]`, default application/octet-stream)
    GET /redirect?to=U  302 to U
    GET /endless        an endless chunked stream of zeros behind an MP4 header (video/mp4)
    GET /trickle        a JPEG header, then one byte every 0.2 s, for ever (image/jpeg)
    """

    def __init__(self):
        import http.server
        import threading

        self.files: dict[str, bytes] = {}
        self.types: dict[str, str] = {}
        self.connections = 0
        self.requests: list[tuple[str, str]] = []
        self.endless_sent = 0
        self.endless_done = threading.Event()
        self.lock = threading.Lock()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                from urllib.parse import parse_qs, urlsplit

                with outer.lock:
                    outer.requests.append((self.path, self.headers.get("Host", "")))
                parts = urlsplit(self.path)
                try:
                    if parts.path.startswith("/file/") and parts.path[6:] in outer.files:
                        name = parts.path[6:]
                        self._send(200, outer.files[name], outer.types.get(name, "application/octet-stream"))
                    elif parts.path == "/redirect":
                        self.send_response(302)
                        self.send_header("Location", parse_qs(parts.query)["to"][0])
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                    elif parts.path == "/endless":
                        self._endless()
                    elif parts.path == "/trickle":
                        self.send_response(200)
                        self.send_header("Content-Type", "image/jpeg")
                        self.send_header("Content-Length", "100000")
                        self.end_headers()
                        self.wfile.write(b"\xff\xd8\xff\xe0")
                        import time

                        for _ in range(600):
                            self.wfile.write(b"\0")
                            self.wfile.flush()
                            time.sleep(0.2)
                    else:
                        self._send(404, b"not here", "text/plain")
                except OSError:
                    pass  # the client went away

            def _send(self, status, body, content_type):
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _endless(self):
                self.send_response(200)
                self.send_header("Content-Type", "video/mp4")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                chunk = b"\0\0\0\x18ftypmp42" + bytes(64 * 1024 - 12)
                try:
                    while outer.endless_sent < 1024 * 1024 * 1024:
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                        outer.endless_sent += len(chunk)
                finally:
                    outer.endless_done.set()

        class Server(http.server.ThreadingHTTPServer):
            daemon_threads = True

            def get_request(self):
                request = super().get_request()
                with outer.lock:
                    outer.connections += 1
                return request

        self.server = Server(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def media_server():
    server = MediaServer()
    yield server
    server.stop()


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
